"""The cluster's ``/metrics``: every shard's Prometheus samples merged into one exposition.

Each shard reports the models it owns (their series carry a ``model`` label, and a model lives on
one shard only, so those series never meet) and a few totals of its own (``tbptt_models``). The
merge keeps every family once, in the order first seen, and each series (name and labels) once:
series that several shards report are summed (a count of models, a counter without a model label,
a histogram's buckets), except ``*_created`` (a counter's creation time), which keeps the
earliest. ``tbptt_shard_up{shard}`` says which shards answered (1) or not (0): a shard that is
down leaves its models' series out of this scrape instead of failing the whole of it.

>>> shard_0 = b'# HELP tbptt_models Models held by the service.\\n# TYPE tbptt_models gauge\\ntbptt_models 2.0\\n'
>>> shard_1 = b'# HELP tbptt_models Models held by the service.\\n# TYPE tbptt_models gauge\\ntbptt_models 1.0\\n'
>>> print(merge_expositions([shard_0, shard_1, None]).decode(), end="")
# HELP tbptt_models Models held by the service.
# TYPE tbptt_models gauge
tbptt_models 3.0
# HELP tbptt_shard_up Whether the shard answered this scrape (1) or not (0).
# TYPE tbptt_shard_up gauge
tbptt_shard_up{shard="0"} 1.0
tbptt_shard_up{shard="1"} 1.0
tbptt_shard_up{shard="2"} 0.0
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]  # a sample's name and its sorted labels


def merge_expositions(expositions: Sequence[bytes | None]) -> bytes:
    """One exposition from the shards' (``None``: shard ``i`` did not answer)."""
    families: dict[str, Metric] = {}
    series: dict[str, dict[SeriesKey, Sample]] = {}
    for text in expositions:
        if text is None:
            continue
        for family in text_string_to_metric_families(text.decode()):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                series[family.name] = {}
            merged = series[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                known = merged.get(key)
                if known is None:
                    merged[key] = sample
                elif sample.name.endswith("_created"):  # when it was created: the earliest
                    merged[key] = known._replace(value=min(known.value, sample.value))
                else:
                    merged[key] = known._replace(value=known.value + sample.value)
    up = GaugeMetricFamily("tbptt_shard_up", "Whether the shard answered this scrape (1) or not (0).", labels=["shard"])
    for index, text in enumerate(expositions):
        up.add_metric([str(index)], 0.0 if text is None else 1.0)
    for name, family in families.items():
        family.samples = list(series[name].values())
    return generate_latest(_Fixed([*families.values(), up]))  # type: ignore[arg-type]


class _Fixed:
    """A collector that yields the merged families as they are."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families
