"""Several hosts through Redis: a save on host a → the new sha published by the consumer on host c.

One run, one real ``redis-server`` on loopback TCP, N simulated hosts on this machine (a config dir,
a status dir and a state dir each, a ``promptwatch sync`` agent per host), ``promptwatch watch --json``
consumers on host a (the local inotify path, measured in the same rounds) and host c.  Latency is
``loaded_at`` of the consumer's line minus the moment of the save on host a (the
durable, atomic ``atomic_write`` the panel and ``promptwatch write`` make: the time is taken just before
its ``os.replace``, as in ``bench_reload``).  Rounds are
spaced so that saves never coalesce; a round missing its deadline counts as lost.

Baseline, measured in the same run: the same save read by a consumer polling every 1.5 s (the seed's
interval) on host a; without Redis the other hosts would never see it at all.  Also: the CPU of an
idle agent (blocking ``XREAD``: it should wake once per heartbeat, nothing else).
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import orjson

from bench.bench_reload import contention_note, cpu_ns, loadavg, make_document, rename_clock, save, sched, wakeups
from promptwatch import sha256_hex

REPO = Path(__file__).resolve().parent.parent
PROMPTWATCH = Path(sys.executable).parent / "promptwatch"
TARGET_P99_MS = 20.0
ROUND_DEADLINE = 5.0
SIZE = 4 * 1024


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Consumer:
    """A ``promptwatch watch --json`` process whose lines are read by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO)
        self.lines: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.first = self.lines.get(timeout=20)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(orjson.loads(raw))

    def loaded(self, sha: str, deadline: float) -> float | None:
        """``loaded_at`` of the line that reports ``sha``; None at the deadline."""
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line["ok"] and line["sha256"] == sha:
                return float(line["loaded_at"])
        return None

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Hosts:
    """A redis-server and N hosts with their agents."""

    def __init__(self, root: Path, count: int) -> None:
        self.root = root
        self.port = _free_port()
        self.redis = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(root), "--logfile", str(root / "redis.log")],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._wait_redis()
        self.names = [chr(ord("a") + i) for i in range(count)]
        self.agents: list[subprocess.Popen[bytes]] = []
        self.consumers: list[Consumer] = []
        self._logs: list[IO[Any]] = []
        doc = make_document(SIZE, "start")
        for name in self.names:
            (self.config(name)).mkdir(parents=True)
            (self.config(name) / "prompts.json").write_bytes(doc)
        for name in self.names:
            log = open(root / f"agent-{name}.log", "w")  # noqa: SIM115 - closed in close()
            self._logs.append(log)
            self.agents.append(
                subprocess.Popen([str(PROMPTWATCH), "sync"], env=self.env(name), stderr=log, stdout=subprocess.DEVNULL)
            )
        for name in self.names:
            self._wait(lambda n=name: (self.status(n) / ".sync.json").exists(), f"agent of host {name}")

    def _wait_redis(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    @staticmethod
    def _wait(pred: Any, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.01)

    def config(self, name: str) -> Path:
        return self.root / name / "config"

    def status(self, name: str) -> Path:
        return self.root / name / "status"

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTS_", "NOTIFY_SOCKET", "STATE_DIR"))}
        env.update(
            PROMPTS_PATH=str(self.config(name) / "prompts.json"),
            PROMPTS_STATUS_DIR=str(self.status(name)),
            STATE_DIRECTORY=str(self.root / name / "state"),
            PROMPTS_HOST=name,
            PROMPTS_REDIS_URL=self.url,
            PROMPTS_NAMESPACE="bench",
            PROMPTWATCH_ENV_FILE=str(self.root / "none.env"),
        )
        return env

    def consumer(self, name: str, *extra: str) -> Consumer:
        path = self.config(name) / "prompts.json"
        argv = [str(PROMPTWATCH), "watch", str(path), "--json", "--service", f"bench-{name}", *extra]
        c = Consumer(argv, self.env(name))
        self.consumers.append(c)
        return c

    def close(self) -> None:
        for c in self.consumers:
            c.stop()
        for agent in self.agents:
            agent.terminate()
        for agent in self.agents:
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.wait(10)
            if agent.poll() is None:
                agent.kill()
                agent.wait()
        for log in self._logs:
            log.close()
        self.redis.kill()
        self.redis.wait()


def measure(hosts: Hosts, rounds: int) -> tuple[list[float], list[float], int, str]:
    """Saves on host a: (latency to host a's consumer, to host c's consumer, rounds lost, contention note).

    The note sets each round's latency beside the time the threads on the path (agents a and c, the
    consumer on c, redis-server) spent waiting for a free core (schedstat): the machine's share.
    """
    local = hosts.consumer("a")
    remote = hosts.consumer("c")
    path_pids = [hosts.agents[0].pid, hosts.agents[2].pid, remote.proc.pid, hosts.redis.pid]
    target = hosts.config("a") / "prompts.json"
    near: list[float] = []
    far: list[float] = []
    waits: list[float] = []
    lost = 0
    for i in range(rounds):
        data = make_document(SIZE, f"{len(hosts.names)}-{i}")
        sha = sha256_hex(data)
        _, wait0 = sched(path_pids)
        t0 = save(target, data)
        deadline = time.monotonic() + ROUND_DEADLINE
        got_near = local.loaded(sha, deadline)
        got_far = remote.loaded(sha, deadline)
        _, wait1 = sched(path_pids)
        if got_near is None or got_far is None:
            lost += 1
        else:
            near.append((got_near - t0) * 1000)
            far.append((got_far - t0) * 1000)
            waits.append((wait1 - wait0) / 1e9)
        time.sleep(0.03)  # spacing: saves never coalesce
    note = contention_note([x / 1000 for x in far], waits, TARGET_P99_MS) if far else ""
    return near, far, lost, note


def measure_poll(hosts: Hosts, rounds: int) -> list[float]:
    """The baseline: host a's consumer polling every 1.5 s, saves spread over the interval."""
    poller = hosts.consumer("a", "--mode", "poll", "--interval-ms", "1500")
    target = hosts.config("a") / "prompts.json"
    out: list[float] = []
    for i in range(rounds):
        data = make_document(SIZE, f"poll-{i}")
        t0 = save(target, data)
        got = poller.loaded(sha256_hex(data), time.monotonic() + 4.0)
        if got is not None:
            out.append((got - t0) * 1000)
        time.sleep(random.uniform(0.0, 1.5))  # a random phase against the poller for the next save
    return out


def idle_cpu(pid: int, seconds: float) -> tuple[float, float]:
    """(% of one core, wakeups per second) of ``pid`` over ``seconds`` of nothing happening."""
    c0, w0, t0 = cpu_ns(pid), wakeups(pid), time.monotonic()
    time.sleep(seconds)
    c1, w1, t1 = cpu_ns(pid), wakeups(pid), time.monotonic()
    return (c1 - c0) / 1e9 / (t1 - t0) * 100, (w1 - w0) / (t1 - t0)


def main(quick: bool) -> None:
    rounds = 30 if quick else 200
    poll_rounds = 6 if quick else 20
    results: list[tuple[int, list[float], list[float], int, str]] = []
    poll: list[float] = []
    idle: tuple[float, float] = (0.0, 0.0)
    for count in (3, 10):
        with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp, rename_clock():
            hosts = Hosts(Path(tmp), count)
            try:
                near, far, lost, note = measure(hosts, rounds)
                results.append((count, near, far, lost, note))
                if count == 3:
                    for c in list(hosts.consumers):
                        c.stop()
                    hosts.consumers.clear()
                    time.sleep(1.0)  # the consumers' exits are status changes the agent publishes: let them pass
                    idle = idle_cpu(hosts.agents[2].pid, 3.0 if quick else 10.0)
                    poll = measure_poll(hosts, poll_rounds)
            finally:
                hosts.close()

    print(f"save on host a → new sha published by a consumer (4 KiB, {rounds} saves; load {loadavg()})")

    def row(label: str, values: list[float], lost: int | str = "", verdict: str = "") -> None:
        print(f"{label:<52}{_pct(values, 50):>8.2f}ms{_pct(values, 99):>8.2f}ms{lost:>6}  {verdict}")

    print(f"{'path':<52}{'p50':>10}{'p99':>10}{'lost':>6}")
    for count, near, far, lost, _note in results:
        row(f"host a, its own consumer (inotify), {count} hosts", near, lost)
        verdict = ("✔" if _pct(far, 99) <= TARGET_P99_MS else "✘") if count == 3 else ""
        row(f"host c through Redis, {count} hosts", far, lost, verdict)
    if poll:
        row("host a, consumer polling every 1.5 s (baseline)", poll)
        near3, far3 = results[0][1], results[0][2]
        speedup = statistics.median(poll) / statistics.median(far3)
        extra = statistics.median(far3) - statistics.median(near3)
        print(f"host c through Redis (3 hosts) vs the 1.5 s poll: {speedup:.0f}× faster (median); the Redis hop")
        print(f"adds {extra:.2f} ms to the local inotify path (median)")
    print(f"target: p99 ≤ {TARGET_P99_MS:g} ms for 3 hosts")
    for count, _near, _far, _lost, note in results:
        print(f"{count} hosts, host c: {note}")
    print(f"idle agent: {idle[0]:.3f} % of one core, {idle[1]:.2f} wakeups/s (heartbeat every 5 s, blocking XREAD)")
