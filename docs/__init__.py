"""Documentation assets and the script that regenerates them (``python -m docs.make_tour``)."""
