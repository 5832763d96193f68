"""Prometheus metrics of the Stasis service (optional: ``METRICS_PORT``).

Active calls, calls by end reason, per-stage turn latency (stt, llm, tts), ARI connection, prompt
reloads and the loaded prompts sha256 (as a label of an info gauge).  A private registry, so several
services (or tests) in one process never clash.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["Metrics"]

logger = logging.getLogger("stasis.metrics")

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.active_calls = Gauge("stasis_active_calls", "Calls in progress", registry=self.registry)
        self.calls = Counter("stasis_calls", "Finished calls by end reason", ["reason"], registry=self.registry)
        self.stage = Histogram(
            "stasis_turn_stage_seconds", "Turn latency per stage", ["stage"], buckets=_BUCKETS, registry=self.registry
        )
        self.ari_connected = Gauge("stasis_ari_connected", "1 while the ARI event socket is up", registry=self.registry)
        self.reloads = Counter("stasis_prompts_reloads", "Prompts reloads applied", ["source"], registry=self.registry)
        self.prompts = Gauge("stasis_prompts_info", "Loaded prompts (sha256)", ["sha256"], registry=self.registry)
        self._sha: str | None = None
        self._server: Any = None
        self._thread: Any = None
        self.port: int | None = None

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage.labels(stage).observe(seconds)

    def call_ended(self, reason: str) -> None:
        self.calls.labels(reason).inc()

    def prompts_loaded(self, sha256: str, source: str) -> None:
        if self._sha is not None:
            self.prompts.remove(self._sha)
        self._sha = sha256
        self.prompts.labels(sha256).set(1)
        if source != "startup":
            self.reloads.labels(source).inc()

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` (0 picks a free port); returns the port."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.port = int(self._server.server_address[1])
        logger.info("metrics on http://%s:%d/metrics", host, self.port)
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None
