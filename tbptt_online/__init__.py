"""tbptt_online: an online truncated-BPTT forecaster over many series (no HTTP here).

>>> from tbptt_online import Forecaster, ForecasterConfig
>>> f = Forecaster(ForecasterConfig(hidden_size=8, k1=4, k2=8))
>>> rs = f.observe_many([("a", 1.0), ("b", [2.0]), ("a", None)])
>>> [(r.series, r.step) for r in rs]
[('a', 1), ('b', 1), ('a', 2)]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tbptt_online.openmp import prefer_short_spin

prefer_short_spin()  # before torch loads libgomp, unless the user chose (see openmp.py)

# Exports load on first use, so ``tbptt_online.client`` (httpx only) never imports torch.
_EXPORTS = {
    "ConfigValueError": "config",
    "Forecast": "results",
    "Forecaster": "forecaster",
    "ForecasterConfig": "config",
    "ForecasterView": "view",
    "Prediction": "results",
    "SeriesStats": "results",
    "StepResult": "results",
    "TruncationReport": "advisor",
    "UpdateRecord": "results",
    "UpdateStats": "results",
}

if TYPE_CHECKING:
    from tbptt_online.advisor import TruncationReport
    from tbptt_online.config import ConfigValueError, ForecasterConfig
    from tbptt_online.forecaster import Forecaster
    from tbptt_online.results import Forecast, Prediction, SeriesStats, StepResult, UpdateRecord, UpdateStats
    from tbptt_online.view import ForecasterView


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tbptt_online' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tbptt_online.{_EXPORTS[name]}"), name)


__all__ = [
    "ConfigValueError",
    "Forecast",
    "Forecaster",
    "ForecasterConfig",
    "ForecasterView",
    "Prediction",
    "SeriesStats",
    "StepResult",
    "TruncationReport",
    "UpdateRecord",
    "UpdateStats",
]
__version__ = "0.1.0"
