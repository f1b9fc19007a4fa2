"""The ``series_path`` URL convertor: a series name in a route, whatever characters it holds.

Starlette's ``path`` convertor is the regex ``.*``, and a route's regex is compiled without
``re.DOTALL``: ``.`` stops at a newline, so a series named ``"a\\nb"`` (a valid JSON string,
accepted when written) answered 404 on its statistics, forecast, recent values and delete.
``series_path`` matches every character, newlines included; it is registered on import, before
the routes that name it are compiled.

>>> from starlette.routing import compile_path
>>> regex, path_format, _ = compile_path("/series/{series:series_path}/forecast")
>>> regex.match("/series/a\\nb/forecast")["series"], path_format
('a\\nb', '/series/{series}/forecast')
"""

from __future__ import annotations

from starlette.convertors import PathConvertor, register_url_convertor


class SeriesPathConvertor(PathConvertor):
    regex = "(?s:.*)"  # any character, a newline too; '/' included as for 'path'


register_url_convertor("series_path", SeriesPathConvertor())

# What a route names its series with: "/models/{model}/series/" + SERIES + "/forecast".
SERIES = "{series:series_path}"
