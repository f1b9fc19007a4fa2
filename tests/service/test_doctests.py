"""The examples in service/'s docstrings run, each module imported by its installed name
(``tbptt_service``): pytest's ``--doctest-modules`` would import the folder as ``service``, a second copy
of every module beside the one the rest of the suite uses."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tbptt_service

# every module but ``python -m``'s entry (importing it runs the command line)
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(tbptt_service.__path__, "tbptt_service.")
    if not info.name.endswith(".__main__")
)


def test_every_subpackage_is_walked() -> None:
    assert {"tbptt_service.api.app", "tbptt_service.host.model_worker", "tbptt_service.storage.log_store"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_module_docstring_examples_pass(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (printed above)"
