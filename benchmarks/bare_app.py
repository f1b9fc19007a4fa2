"""The ceiling for the HTTP benchmark: a FastAPI app whose routes do nothing.

It has the service's two hot paths (POST observations, GET forecast) with the same
paths and is served the way ``tbptt-online serve`` serves the service (``uvicorn.run``
with the same loop and HTTP implementation), so the difference between the two is the
service's own work: parsing, validation, the model worker, the journal, serialising.

    python -m benchmarks.bare_app --port 8001

>>> import asyncio, httpx
>>> async def post() -> dict:
...     transport = httpx.ASGITransport(app=app)
...     async with httpx.AsyncClient(transport=transport, base_url="http://bare") as client:
...         return (await client.post("/v1/models/default/observations", content=b"not even JSON")).json()
>>> asyncio.run(post())
{'results': [], 'update_count': 0}
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI

app = FastAPI(title="bare", openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/v1/models/{model}/observations")
async def post_observations(model: str) -> dict:
    """Neither reads nor parses the body: the cost of HTTP, routing and a JSON answer."""
    return {"results": [], "update_count": 0}


@app.get("/v1/models/{model}/series/{series}/forecast")
async def get_forecast(model: str, series: str, horizon: int = 1) -> dict:
    return {"model": model, "series": series, "horizon": horizon, "forecast": []}


@app.get("/readyz")
async def readyz() -> dict:
    return {"status": "ready"}


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=30)


if __name__ == "__main__":
    main()
