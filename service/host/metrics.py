"""ServiceMetrics: the Prometheus metrics of one app, in a registry of its own.

A registry per app (not the process-global one) lets several apps live in one
process, as they do in tests. Counters and histograms are recorded where things
happen (the model worker, the forecast route); the models' own counters (updates,
loss, gradient norm, series) are read from their latest snapshots at scrape time.

>>> m = ServiceMetrics()
>>> m.record_batch("default", requests=3, observations=7, seconds=0.01, updated=False)
>>> b"tbptt_batches_total{model=\\"default\\"} 1.0" in m.exposition()
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000)
REQUEST_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.observations = Counter(
            "tbptt_observations", "Observations applied (idempotent repeats excluded).", ["model"], registry=r
        )
        self.batches = Counter("tbptt_batches", "Micro-batches applied (one observe_many each).", ["model"], registry=r)
        self.batch_observations = Histogram(
            "tbptt_batch_observations",
            "Observations per applied micro-batch.",
            ["model"],
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "tbptt_batch_requests",
            "Requests merged into one micro-batch.",
            ["model"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "tbptt_rejected_requests",
            "Observation requests refused by the worker, by status.",
            ["model", "status"],
            registry=r,
        )
        self.apply_seconds = Histogram(
            "tbptt_update_seconds",
            "Time to apply one micro-batch: the forward step plus any TBPTT update it ran (updated=true).",
            ["model", "updated"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.forecast_seconds = Histogram(
            "tbptt_forecast_seconds",
            "Time to compute one forecast from a snapshot.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        # a checkpoint that failed was an ERROR line alone: /readyz stayed ready and the log was never pruned, so
        # recovery time and disk use grew unseen (an operator's hostile test, session 58)
        self.checkpoint_failures = Counter(
            "tbptt_checkpoint_failures",
            "Checkpoints that could not be written (the event log keeps every record; it is not pruned meanwhile).",
            registry=r,
        )
        self.checkpoint_written = Gauge(
            "tbptt_checkpoint_last_written_timestamp_seconds",
            "Unix time of the last checkpoint written (0: none since start); alert where it falls far behind.",
            registry=r,
        )

    def record_checkpoint(self, written: bool) -> None:
        """A checkpoint written (the time now) or one that failed (counted)."""
        if written:
            self.checkpoint_written.set_to_current_time()
        else:
            self.checkpoint_failures.inc()

    def record_batch(self, model: str, *, requests: int, observations: int, seconds: float, updated: bool) -> None:
        self.observations.labels(model).inc(observations)
        self.batches.labels(model).inc()
        self.batch_observations.labels(model).observe(observations)
        self.batch_requests.labels(model).observe(requests)
        self.apply_seconds.labels(model, "true" if updated else "false").observe(seconds)

    def record_rejection(self, model: str, status: int) -> None:
        self.rejected.labels(model, str(status)).inc()

    def record_forecast(self, model: str, seconds: float) -> None:
        self.forecast_seconds.labels(model).observe(seconds)

    def watch_models(self, snapshots: Callable[[], Mapping[str, Any]]) -> None:
        """Report the models' own counters, read from ``snapshots()`` at each scrape."""
        self.registry.register(_ModelStateCollector(snapshots))

    def forget_model(self, model: str) -> None:
        """Drop a deleted model's labelled series."""
        for metric in (
            self.observations,
            self.batches,
            self.batch_observations,
            self.batch_requests,
            self.rejected,
            self.apply_seconds,
            self.forecast_seconds,
        ):
            metric.remove_by_labels({"model": model})

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ModelStateCollector:
    def __init__(self, snapshots: Callable[[], Mapping[str, Any]]) -> None:
        self.snapshots = snapshots

    def describe(self) -> list[Metric]:
        return []  # collected lazily: the models change at run time

    def collect(self) -> Iterator[Metric]:
        updates = CounterMetricFamily("tbptt_updates", "TBPTT updates that changed the weights.", labels=["model"])
        skipped = CounterMetricFamily(
            "tbptt_skipped_updates", "Updates skipped for a non-finite loss, gradient or weight.", labels=["model"]
        )
        loss = GaugeMetricFamily("tbptt_last_loss", "Loss of the latest update attempt.", labels=["model"])
        grad = GaugeMetricFamily(
            "tbptt_last_grad_norm", "Gradient norm (before clipping) of the latest update attempt.", labels=["model"]
        )
        series = GaugeMetricFamily("tbptt_series", "Series held by the model.", labels=["model"])
        guard = CounterMetricFamily(
            "tbptt_guard_events", "Instability guards that fired, by kind (guards.py).", labels=["model", "kind"]
        )
        lr = GaugeMetricFamily(
            "tbptt_learning_rate", "Learning rate in force (after the guards' back-offs).", labels=["model"]
        )
        window = GaugeMetricFamily("tbptt_truncation_window", "K_t: the window of the last update.", labels=["model"])
        bias = GaugeMetricFamily(
            "tbptt_truncation_relative_bias",
            "Estimated relative truncation bias of the window in force.",
            labels=["model"],
        )
        measured = GaugeMetricFamily(
            "tbptt_truncation_measured_bias",
            "Relative truncation bias of the window in force, measured on the probe's windows.",
            labels=["model"],
        )
        recommended = GaugeMetricFamily("tbptt_truncation_recommended_k2", "The advisor's k2.", labels=["model"])
        too_short = GaugeMetricFamily(
            "tbptt_truncation_too_short",
            "1 when the window cannot reach a dependency found in the data (a wall), else 0.",
            labels=["model"],
        )
        biased = GaugeMetricFamily(
            "tbptt_truncation_biased",
            "1 when the window's estimated relative truncation bias is not below truncation_bias, else 0.",
            labels=["model"],
        )
        dependency = GaugeMetricFamily(
            "tbptt_dependency_length", "Longest significant lag over the followed series.", labels=["model"]
        )
        models = GaugeMetricFamily("tbptt_models", "Models held by the service.")
        snapshots = dict(self.snapshots())
        for name, snapshot in snapshots.items():
            stats = snapshot.updates
            updates.add_metric([name], stats.updates)
            skipped.add_metric([name], stats.skipped)
            if stats.last_loss is not None:
                loss.add_metric([name], stats.last_loss)
            if stats.last_grad_norm is not None:
                grad.add_metric([name], stats.last_grad_norm)
            series.add_metric([name], snapshot.series_count)
            for kind in ("explosions", "divergences", "blowups", "rollbacks"):
                guard.add_metric([name, kind], getattr(stats, kind))
            if stats.lr is not None:
                lr.add_metric([name], stats.lr)
            if stats.last_window is not None:
                window.add_metric([name], stats.last_window)
            report = getattr(snapshot, "truncation", None)
            if report is not None:
                if report.relative_bias is not None:
                    bias.add_metric([name], report.relative_bias)
                if report.measured_bias is not None:
                    measured.add_metric([name], report.measured_bias)
                recommended.add_metric([name], report.recommended_k2)
                too_short.add_metric([name], float(report.too_short))
                biased.add_metric([name], float(report.biased))
                dependency.add_metric([name], max(report.dependencies.values(), default=0))
        models.add_metric([], len(snapshots))
        yield from (
            updates,
            skipped,
            loss,
            grad,
            series,
            guard,
            lr,
            window,
            bias,
            measured,
            recommended,
            too_short,
            biased,
            dependency,
            models,
        )
