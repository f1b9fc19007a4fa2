"""service: the HTTP service around tbptt_online (FastAPI; no autograd here).

Four rooms, and every import points down them (``api -> host -> storage``):

- ``cli/``: the command line (``tbptt-online serve``, the CSV feeder, ``forecast``, ``models``).
- ``api/``: the HTTP face: the app and its lifespan, routes, schemas, middleware, the dashboard.
- ``host/``: owns the models: the registry, one worker per model (micro-batches, snapshots),
  admission, forecasts, checkpoint cuts and rebuilds from storage.
- ``storage/``: knows no models: the event log, the journal interface, checkpoint files,
  the recovery order, the accepted observation record.

``settings`` (environment) and ``errors`` (the API's error types) are used by all.
"""
