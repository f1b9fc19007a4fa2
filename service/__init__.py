"""service: the HTTP face of tbptt_online (FastAPI; no autograd here).

Layers, one concept per file: ``settings`` (environment), ``schemas`` (the JSON
shapes), ``routes/*`` (HTTP -> calls), ``deps`` (per-request resources),
``model_worker`` (the one thread that owns a model and micro-batches its
observations), ``admission`` (per-request checks before anything is applied),
``registry`` (the models by name), ``app`` (the factory and its lifespan) and
``cli`` (``tbptt-online serve``).
"""
