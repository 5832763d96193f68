"""Admin panel: save → every consumer applied (p50/p99), and GET /api/prompts throughput with and without
If-None-Match.

The panel is served by uvicorn on loopback; consumers are real ``promptwatch watch`` processes.  Baselines in
the same run: consumers polling the mtime every 1.5 s (the old approach) for the save, and ``/healthz`` (the
framework's floor) for the GETs.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import uvicorn

from adminapi import AdminSettings, create_app
from promptwatch import read_statuses

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789abcdef"


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _wait(pred: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark setup timed out")
        time.sleep(0.01)


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(REPO / "config", root / "config")
        self.prompts = root / "config" / "prompts.json"
        self.status_dir = root / "status"
        self.status_dir.mkdir()
        settings = AdminSettings(  # type: ignore[call-arg]
            _env_file=None,
            prompts_path=self.prompts,
            prompts_status_dir=self.status_dir,
            state_dir=root / "state",
            calllog_path=root / "calls.sqlite3",
            admin_token=TOKEN,
        )
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None, access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        _wait(lambda: self.server.started, 20)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        self.consumers: list[subprocess.Popen[bytes]] = []

    def start_consumers(self, n: int, *extra: str) -> None:
        env = {**os.environ, "PROMPTS_STATUS_DIR": str(self.status_dir)}
        for i in range(n):
            self.consumers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "promptwatch.cli", "watch", str(self.prompts), "--json",
                     "--service", f"bench-{len(self.consumers)}-{i}", *extra],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        want = {p.pid for p in self.consumers}
        _wait(lambda: want <= {s.pid for s in read_statuses(self.status_dir, path=self.prompts)}, 20)

    def stop_consumers(self) -> None:
        for p in self.consumers:
            p.terminate()
        for p in self.consumers:
            p.wait(timeout=15)
        self.consumers.clear()

    def saves(self, rounds: int, *, jitter: float = 0.0) -> tuple[list[float], list[float]]:
        """(client round trip ms of PUT ?wait_ms, slowest consumer's apply latency ms) per save.

        ``jitter``: wait a random 0..jitter s before each save, so that saves land at random phases of
        a polling consumer's interval (as an operator's would), not right after its last poll.
        """
        doc = orjson.loads(self.prompts.read_bytes())
        rng = random.Random(0)
        round_trip: list[float] = []
        applied: list[float] = []
        for i in range(rounds):
            if jitter:
                time.sleep(rng.uniform(0, jitter))
            body = {**doc, "greeting": f"Здравствуйте! Версия {time.time_ns()}-{i}"}
            start = time.perf_counter()
            r = self.client.put("/api/prompts", params={"wait_ms": 5000}, json=body)
            round_trip.append((time.perf_counter() - start) * 1000)
            result = r.json()
            if r.status_code != 200 or not result["all_applied"]:
                raise RuntimeError(f"save {i} not applied everywhere: {r.status_code} {result}")
            applied.append(max(c["latency_ms"] for c in result["consumers"]))
        return round_trip, applied

    def get_rate(self, path: str, n: int, headers: dict[str, str] | None = None, expect: int = 200) -> float:
        for _ in range(20):
            self.client.get(path, headers=headers)
        start = time.perf_counter()
        for _ in range(n):
            r = self.client.get(path, headers=headers)
            if r.status_code != expect:
                raise RuntimeError(f"GET {path}: {r.status_code}")
        return n / (time.perf_counter() - start)

    def close(self) -> None:
        self.stop_consumers()
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


def main(quick: bool) -> None:
    consumers = 3
    rounds = 10 if quick else 60
    poll_rounds = 4 if quick else 16
    gets = 300 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="bench-adminapi-") as tmp:
        bench = Bench(Path(tmp))
        try:
            bench.start_consumers(consumers)
            rt, applied = bench.saves(rounds)
            bench.stop_consumers()
            bench.start_consumers(consumers, "--mode", "poll", "--interval-ms", "1500")
            poll_rt, poll_applied = bench.saves(poll_rounds, jitter=1.5)
            bench.stop_consumers()
            etag = bench.client.get("/api/prompts").headers["etag"]
            full = bench.get_rate("/api/prompts", gets)
            cached = bench.get_rate("/api/prompts", gets, {"If-None-Match": etag}, expect=304)
            health = bench.get_rate("/healthz", gets)
        finally:
            bench.close()

    print(f"save → all {consumers} consumers applied (PUT ?wait_ms, real `promptwatch watch` processes)")
    print(f"{'consumers':<26}{'saves':>6}{'apply p50':>12}{'apply p99':>12}{'PUT p50':>11}{'PUT p99':>11}")
    for name, n, a, r in [
        ("inotify (default)", rounds, applied, rt),
        ("poll 1.5 s (baseline)", poll_rounds, poll_applied, poll_rt),
    ]:
        print(f"{name:<26}{n:>6}{_pct(a, 50):>10.1f}ms{_pct(a, 99):>10.1f}ms{_pct(r, 50):>9.1f}ms{_pct(r, 99):>9.1f}ms")
    speedup = statistics.median(poll_rt) / statistics.median(rt)
    print(f"save→applied round trip: inotify is {speedup:.0f}× faster than the 1.5 s poll baseline (median)")
    print()
    print(f"GET throughput, one keep-alive client, {gets} requests each")
    print(f"{'request':<34}{'req/s':>10}{'vs /healthz':>13}")
    for name, rate in [
        ("GET /healthz (baseline)", health),
        ("GET /api/prompts → 200", full),
        ("GET /api/prompts If-None-Match → 304", cached),
    ]:
        print(f"{name:<34}{rate:>10.0f}{rate / health:>12.2f}×")
    print(f"304 vs 200: {cached / full:.2f}×")
