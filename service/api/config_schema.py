"""The JSON schema of a model's ``config`` in the OpenAPI, read off ``ForecasterConfig``'s fields.

The service refuses a config field the library does not know (422 naming it), so the schema
says which fields there are (``additionalProperties: false``), each with its JSON type, its
choices where it has a fixed set, a number's fixed bounds (``tbptt_online.config.INT_BOUNDS``
and ``REAL_BOUNDS``, the ones the library checks), ``k2``'s ``"adaptive"``, and its default. The
library still checks every value (the other reals' ranges, and rules between fields such as
k1 <= k2, and the memory budgets): a config the schema allows can be refused with 422 naming the field.

>>> schema = config_json_schema()
>>> schema["additionalProperties"], schema["properties"]["cell"]["enum"]
(False, ['gru', 'lstm', 'rnn'])
>>> schema["properties"]["clip_norm"]["anyOf"], schema["properties"]["season_length"]["default"]
([{'type': 'number'}, {'type': 'null'}], 'auto')
>>> schema["properties"]["hidden_size"]
{'type': 'integer', 'minimum': 1, 'maximum': 4096, 'default': 32}
>>> schema["properties"]["interval_level"]
{'type': 'number', 'minimum': 0.5, 'maximum': 0.999, 'default': 0.9}
>>> schema["properties"]["truncation_bias"]
{'type': 'number', 'exclusiveMinimum': 0.0, 'maximum': 1.0, 'default': 0.1}
>>> schema["properties"]["k2"]["anyOf"]
[{'type': 'integer', 'minimum': 1, 'maximum': 100000}, {'enum': ['adaptive']}]
>>> type_problem({"interval_level": None, "k2": "adaptive"}), type_problem({"hidden_size": True})
(('interval_level', 'null is not a number'), ('hidden_size', 'true is not a number'))
>>> type_problem({"k2": "8"}), type_problem({"cell": 3})
(None, ('cell', '3 is not "gru" or "lstm" or "rnn"'))
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tbptt_online import ForecasterConfig
from tbptt_online.config import CELLS, DTYPES, INT_BOUNDS, LOSSES, MODES, OPEN_LOW, OPTIMIZERS, REAL_BOUNDS
from tbptt_service.errors import quoted

JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string", "None": "null"}
CHOICES = {"cell": CELLS, "mode": MODES, "optimizer": OPTIMIZERS, "loss": LOSSES, "dtype": DTYPES}


def field_schema(name: str, annotation: str, default: Any) -> dict[str, Any]:
    """One field: its choices, or its JSON type(s) (any value where a part of the type has no JSON
    name, e.g. ``list[int]``: the library checks it), and its default."""
    schema: dict[str, Any]
    if name in CHOICES:
        schema = {"enum": list(CHOICES[name])}
    elif name == "k2":  # a window, or "adaptive"
        low, high = INT_BOUNDS[name]
        schema = {"anyOf": [{"type": "integer", "minimum": low, "maximum": high}, {"enum": ["adaptive"]}]}
    else:
        parts = [part.strip() for part in annotation.split("|")]
        if all(part in JSON_TYPES for part in parts):
            types = [{"type": JSON_TYPES[part]} for part in parts]
            for kind in types:
                if kind["type"] == "integer" and name in INT_BOUNDS:
                    kind["minimum"], kind["maximum"] = INT_BOUNDS[name]
                if kind["type"] == "number" and name in REAL_BOUNDS:
                    low, high = REAL_BOUNDS[name]
                    kind["exclusiveMinimum" if name in OPEN_LOW else "minimum"], kind["maximum"] = low, high
            schema = types[0] if len(types) == 1 else {"anyOf": types}
        else:
            schema = {}
    if default is not dataclasses.MISSING:
        schema["default"] = default
    return schema


_IS = {  # (an integer written 1e19 is the library's to refuse by its bounds; a string not a choice, too)
    "integer": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "null": lambda v: v is None,
}
_NAMES = {
    "integer": "a number",
    "number": "a number",
    "boolean": "true or false",
    "string": "a string",
    "null": "null",
}


def type_problem(config: dict[str, Any]) -> tuple[str, str] | None:
    """The first field of ``config`` (JSON as parsed) whose value is not of a JSON type its schema allows, and why,
    with the value as JSON writes it; None where every one is (the library then checks the values). A config
    error quoted the value as Python does (``interval_level=None``, ``'0.9'``, ``True``; a hostile test, session 57).
    """
    properties = config_json_schema()["properties"]
    for name, value in config.items():
        schema = properties.get(name)
        if schema is None:
            continue  # (an unknown field: the library names it)
        kinds = schema.get("anyOf", [schema])
        if any(kind == {} or _allows(kind, value) for kind in kinds):
            continue
        wanted = [_NAMES[kind["type"]] if "type" in kind else " or ".join(map(quoted, kind["enum"])) for kind in kinds]
        return name, f"{quoted(value)} is not {' or '.join(wanted)}"
    return None


def _allows(kind: dict[str, Any], value: Any) -> bool:
    if "enum" in kind:
        return isinstance(value, str)
    return "type" not in kind or _IS[kind["type"]](value)


def config_json_schema() -> dict[str, Any]:
    """The ``config`` object of ``POST /v1/models``: ForecasterConfig's fields, no others."""
    properties = {
        f.name: field_schema(f.name, str(f.type), f.default) for f in dataclasses.fields(ForecasterConfig) if f.init
    }
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "description": "ForecasterConfig fields; those left out take the library's defaults.",
    }
