"""tbptt_online.client: a Python client of the tbptt-online HTTP service (httpx, no torch).

The core library knows no HTTP and does not import this subpackage; this subpackage
imports only httpx and the standard library.

>>> from tbptt_online.client import Client, AsyncClient, ApiError, NotFound
>>> issubclass(NotFound, ApiError)
True
"""

from tbptt_online.client.async_client import AsyncClient
from tbptt_online.client.errors import (
    ApiError,
    ClientError,
    Conflict,
    NotFound,
    TransportFailure,
    Unauthorized,
    UnexpectedAnswer,
    Unprocessable,
)
from tbptt_online.client.results import (
    Forecast,
    ForecastPage,
    ForecastStep,
    HorizonCoverage,
    Interval,
    MemberStats,
    ModelInfo,
    ObservationResult,
    SeriesPage,
    SeriesStats,
    SeriesStatsPage,
    UpdateStats,
)
from tbptt_online.client.retry import RetryPolicy
from tbptt_online.client.sync_client import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "Conflict",
    "Forecast",
    "ForecastPage",
    "ForecastStep",
    "HorizonCoverage",
    "Interval",
    "MemberStats",
    "ModelInfo",
    "NotFound",
    "ObservationResult",
    "RetryPolicy",
    "SeriesPage",
    "SeriesStats",
    "SeriesStatsPage",
    "TransportFailure",
    "Unauthorized",
    "UnexpectedAnswer",
    "Unprocessable",
    "UpdateStats",
]
