r"""What a series may be named: the rule every write of a name is held to (a request's, an imported checkpoint's).

A series name is a path segment of its routes (``/series/{series:path}/forecast``), shown by the CLI's
tables and the dashboard, and written to logs: :func:`series_name_problem` says why a name cannot be one,
or None. Names are checked when written (a batch, an import); a state journaled before a rule existed is
recovered as it was, its names served, read and deleted, never created anew. The library
(``Forecaster.validate``) checks a name's type and length alone: the rest is about routes and screens.

The request body's fast path (``observation_body.plain_observations``) accepts only names this rule takes
(``showable``, ``has_dot_segment``, the suffixes), and leaves every other to the full validation, which
names the problem through :func:`series_name_problem`.

>>> series_name_problem("web-1/cpu") is None
True
>>> print(series_name_problem("evil\u202egnp.exe")[:40])
"evil\u202egnp.exe" holds U+202E at 4: a
"""

from __future__ import annotations

import re

from tbptt_service.errors import quoted

# A series name is a path segment of its routes ('/series/{series:path}/forecast'): one ending
# in a route's suffix could not be read back, so it is refused when written.
RESERVED_SERIES_SUFFIXES = ("/forecast", "/recent")
# A name that is a dot segment, or holds one between its slashes, is changed in a URL by every client
# (RFC 3986's dot-segment removal, browsers even for '%2E'): '/series/./forecast' is read as
# '/series/forecast', and '/series/zz/../hr/forecast' as the forecast of 'hr' (a hostile test,
# session 47). Refused when written, as the suffixes are.
DOT_SEGMENT_NAMES = frozenset({".", ".."})


def has_dot_segment(name: str) -> bool:
    """Whether ``name`` is '.' or '..' or holds one as a part between slashes ('x/..', 'a/./b')."""
    return "." in name and any(part in DOT_SEGMENT_NAMES for part in name.split("/"))


# C0 and C1 controls and DEL, the line and paragraph separators, and the bidirectional formatting characters:
# "a\x00b", "line\nbreak" and "\u202eevil" were taken, stored and served (a hostile test, session 60: F9);
# ``feed``'s table printed a name holding a newline across two lines, and U+202E reverses what follows it on
# a terminal or a page. Refused when written since session 61.
UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
UNSHOWABLE_RULE = (
    "a series name must hold no control character (U+0000-U+001F, U+007F-U+009F), line or paragraph separator "
    "(U+2028, U+2029) or bidirectional formatting character (U+061C, U+200E, U+200F, U+202A-U+202E, "
    "U+2066-U+2069): each garbles what a terminal, a table or the dashboard shows of it"
)
_ASCII_UNSHOWABLE = bytes(range(32)) + b"\x7f"


def _escaped(character: re.Match[str]) -> str:
    return f"\\u{ord(character.group()):04x}"


def showable(names: str) -> bool:
    r"""Whether ``names`` (one name, or many joined) holds none of ``UNSHOWABLE``: for ASCII text a byte
    deletion (5,000 names of 15 characters: 0.09 ms, against 0.4 ms for the pattern's search).

    >>> showable("web-1/cpu"), showable("a\nb"), showable("caf\u00e9"), showable("\u2066x")
    (True, False, True, False)
    """
    if names.isascii():
        raw = names.encode("ascii")
        return len(raw.translate(None, _ASCII_UNSHOWABLE)) == len(raw)
    return UNSHOWABLE.search(names) is None


def series_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a series' name (its routes could not read it back), or None. JSON cannot
    carry a lone surrogate, but an imported checkpoint could: such a name made the model's series list
    answer 500 for good (it cannot be encoded), and could be neither read nor deleted (a hostile test,
    session 50)."""
    if has_dot_segment(name):
        return (
            f"{quoted(name)} is or holds a URL dot segment: a series name must not be '.' or '..', nor hold one "
            "between slashes (clients remove such a segment from its routes, which would read another resource)"
        )
    if name.endswith(RESERVED_SERIES_SUFFIXES):
        return (
            f"{quoted(name)} ends in {name[name.rfind('/') :]!r}: a series name must not end in "
            f"{' or '.join(map(repr, RESERVED_SERIES_SUFFIXES))} (its routes could not tell it from the suffix)"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as error:
        shown = name.encode("utf-8", "backslashreplace").decode()  # (the answer that names it must be encodable)
        return f"{quoted(shown)} holds a lone surrogate at {error.start}: a series name is Unicode text"
    bad = UNSHOWABLE.search(name)
    if bad is not None:
        shown = UNSHOWABLE.sub(_escaped, quoted(name))  # (the answer must not hold it either: U+202E, a DEL)
        return f"{shown} holds U+{ord(bad.group()):04X} at {bad.start()}: {UNSHOWABLE_RULE}"
    return None
