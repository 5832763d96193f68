"""Prometheus metrics of one admin app, in its own registry (several apps may live in one process)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["AdminMetrics"]

ConsumerCounts = Callable[[], tuple[int, int]]
"""Returns (in sync, out of sync) for the live consumers of the prompts."""


class _ConsumerCollector(Collector):
    def __init__(self, counts: ConsumerCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        in_sync, out_of_sync = self._counts()
        family = GaugeMetricFamily(
            "adminapi_consumers", "Live consumers of the prompts, by whether they run the sha on disk", labels=["state"]
        )
        family.add_metric(["in_sync"], in_sync)
        family.add_metric(["out_of_sync"], out_of_sync)
        yield family


class AdminMetrics:
    """Saves, failures, conflicts, apply latency, and consumers in sync (read at scrape time)."""

    def __init__(self, consumer_counts: ConsumerCounts) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.saves = Counter("adminapi_saves", "Prompts written by the panel", ["origin"], registry=self.registry)
        self.save_failures = Counter(
            "adminapi_save_failures", "Saves refused or failed, by reason", ["reason"], registry=self.registry
        )
        self.conflicts = Counter(
            "adminapi_conflicts", "Saves refused because the prompts changed meanwhile (412)", registry=self.registry
        )
        self.apply_latency = Histogram(
            "adminapi_apply_latency_seconds",
            "From a save to a consumer reporting the new sha256",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.registry.register(_ConsumerCollector(consumer_counts))
