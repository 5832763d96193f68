"""Save-to-reload latency, fan-out and idle CPU: promptwatch against the seed's 1.5 s mtime poll thread.

Latency is measured from ``time.time()`` taken just before the ``os.replace`` of a save made with
:func:`promptwatch.atomic_write` itself (lock, temp file in the target's directory, fsync, rename,
directory fsync: what the admin API does) to the moment the new value is published:
``Snapshot.loaded_at`` for HotPrompts, the ``loaded_at`` of the ``promptwatch watch --json`` line
for subprocesses, and the assignment of ``self.prompts`` for the seed's thread.  All on the same clock (``time.time``).

Measured side by side in one run, for a 4 KiB and a 1 MiB document (valid: ``system_prompt`` is
padded), each round a new content, rounds spaced so that reloads never coalesce, every wait bounded
by a deadline (a round that misses it is counted as lost, not timed):

* floors: the kernel's inotify event (a raw ``inotify(7)`` read through ctypes) and watchdog's
  event delivery alone (an observer with an empty handler);
* HotPrompts in inotify mode (in this process), split into event delivery and the worker's part;
* ``promptwatch watch --json`` subprocesses: 1, and 16 at once (save → the LAST of the 16 applied);
* poll mode (HotPrompts, 1500 ms) and the seed's thread (mtime every 1.5 s, read *then* record the
  mtime), run concurrently.  Saves are spaced ``interval * (1 + 1/N)`` apart so their phase against
  the poller sweeps the interval evenly.  Because the mean over N phases is only known to within
  ``interval / 2N``, the verdict uses the decomposition ``period / 2 + reaction`` (reaction = the
  check that saw the change → published), which is what "mean ≤ interval/2 + 5 ms" constrains;
* idle CPU of a watching process (CPU time from ``/proc/PID/task/*/schedstat`` over idle seconds).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

import promptwatch.atomic
from promptwatch import HotPrompts, Snapshot, atomic_write
from promptwatch.schema import parse_document, sha256_hex
from promptwatch.watch import _EVENTS

KIB = 1024
MIB = 1024 * 1024
SIZES = {"4 KiB": 4 * KIB, "1 MiB": MIB}
INTERVAL = 1.5  # the seed's PROMPTS_RELOAD_INTERVAL_MS=1500, and promptwatch's default
ROUND_DEADLINE = 5.0
FANOUT = 16
TARGET_P99_MS = {"4 KiB": 5.0, "1 MiB": 25.0}
POLL_SLACK_MS = 5.0
IDLE_CPU_TARGET_PCT = 0.1  # "near zero": at most 0.1 % of one core

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- documents and saves


def make_document(size: int, tag: str) -> bytes:
    """A valid prompts document of exactly ``size`` bytes, unique per ``tag``."""
    head = orjson.dumps({"greeting": f"Hello, round {tag}", "fillers": ["One moment…", "Let me check."]})
    skeleton = b'{"system_prompt":"",' + head[1:]
    pad = size - len(skeleton)
    if pad < 1:
        raise ValueError(f"size {size} too small")
    text = (b"You are the Metrotech voice assistant. Be brief and polite. " * (pad // 60 + 1))[:pad]
    data = b'{"system_prompt":"' + text + b'",' + head[1:]
    assert len(data) == size
    return data


class _RenameClock:
    """Stands in for the ``os`` module inside :mod:`promptwatch.atomic` while the benchmark runs:
    everything is ``os``, except that ``replace`` first notes ``time.time()`` (per thread)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def replace(self, src: Any, dst: Any, **dir_fds: Any) -> None:
        self._local.t0 = time.time()
        os.replace(src, dst, **dir_fds)

    @property
    def t0(self) -> float:
        t0: float = self._local.t0
        return t0


_CLOCK = _RenameClock()


@contextlib.contextmanager
def rename_clock() -> Iterator[None]:
    original = vars(promptwatch.atomic)["os"]
    setattr(promptwatch.atomic, "os", _CLOCK)  # noqa: B010 - the module's global, for the bench only
    try:
        yield
    finally:
        setattr(promptwatch.atomic, "os", original)  # noqa: B010


def save(target: Path, data: bytes) -> float:
    """Save as the admin API does (:func:`promptwatch.atomic_write`: lock, temp file, fsync, rename,
    directory fsync); return ``time.time()`` taken just before its ``os.replace``."""
    assert vars(promptwatch.atomic)["os"] is _CLOCK, "save() runs inside rename_clock()"
    atomic_write(target, data)
    return float(_CLOCK.t0)


def spacing(lo: float = 0.02, hi: float = 0.04) -> None:
    """Pause between rounds so that consecutive reloads never coalesce (spacing only, not correctness)."""
    time.sleep(random.uniform(lo, hi))


# ---------------------------------------------------------------- statistics and output


@dataclass
class Result:
    name: str
    size: str
    samples: list[float] = field(default_factory=list)  # seconds
    lost: int = 0
    target: str = ""
    verdict: str = ""
    note: str = ""
    cpu_per_save: float = float("nan")  # ms of CPU the watcher spent per save (all its threads)

    def q(self, p: float) -> float:
        s = sorted(self.samples)
        if not s:
            return float("nan")
        k = (len(s) - 1) * p
        f = int(k)
        c = min(f + 1, len(s) - 1)
        return (s[f] + (s[c] - s[f]) * (k - f)) * 1000

    @property
    def p50(self) -> float:
        return self.q(0.50)

    @property
    def p99(self) -> float:
        return self.q(0.99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) * 1000 if self.samples else float("nan")


def fmt_ms(v: float) -> str:
    if v != v:  # nan
        return "-"
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:.0f}"


def print_table(rows: list[Result], seed: dict[str, Result]) -> None:
    header = (
        f"{'measurement':<44} {'size':>5} {'n':>4} {'lost':>4} {'p50':>8} {'p99':>8} {'mean':>8}"
        f"  {'target':<26} {'result':<6} {'p50 vs seed':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ref = seed.get(r.size)
        ratio = ""
        end_to_end = not r.name.startswith(("floor", "  of which"))
        if end_to_end and ref is not None and r.samples and ref.samples and r is not ref:
            x = ref.p50 / r.p50 if r.p50 > 0 else float("inf")
            ratio = f"{x:,.0f}x faster" if x >= 10 else f"{x:.2f}x"
        print(
            f"{r.name:<44} {r.size:>5} {len(r.samples):>4} {r.lost:>4} {fmt_ms(r.p50):>8} {fmt_ms(r.p99):>8}"
            f" {fmt_ms(r.mean):>8}  {r.target:<26} {r.verdict:<6} {ratio:>11}"
        )
        if r.note:
            print(f"    {r.note}")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------- floors: kernel inotify, watchdog


IN_MOVED_TO = 0x80
_EVENT = struct.Struct("iIII")


class RawInotify:
    """The kernel's inotify, read directly (ctypes): the floor for any inotify-based watcher."""

    def __init__(self, target: Path) -> None:
        self.name = target.name.encode()
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, str(target.parent).encode(), IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        self.wake_r, self.wake_w = os.pipe()
        self.cond = threading.Condition()
        self.seen: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self.wake_r in ready:
                return
            buf = os.read(self.fd, 65536)
            now = time.time()
            off = 0
            while off < len(buf):
                _wd, mask, _cookie, length = _EVENT.unpack_from(buf, off)
                name = buf[off + 16 : off + 16 + length].rstrip(b"\0")
                off += 16 + length
                if mask & IN_MOVED_TO and name == self.name:
                    with self.cond:
                        self.seen.append(now)
                        self.cond.notify_all()

    def wait_after(self, t0: float, timeout: float) -> float | None:
        with self.cond:
            ok = self.cond.wait_for(lambda: bool(self.seen) and self.seen[-1] >= t0, timeout)
            return self.seen[-1] if ok else None

    def close(self) -> None:
        os.write(self.wake_w, b"x")
        self.thread.join()
        for fd in (self.fd, self.wake_r, self.wake_w):
            os.close(fd)


class _Delivery(FileSystemEventHandler):
    def __init__(self, target: Path) -> None:
        self.target = str(target)
        self.cond = threading.Condition()
        self.seen: list[float] = []

    def dispatch(self, event: FileSystemEvent) -> None:
        if os.fsdecode(getattr(event, "dest_path", "") or b"") == self.target:
            now = time.time()
            with self.cond:
                self.seen.append(now)
                self.cond.notify_all()

    def wait_after(self, t0: float, timeout: float) -> float | None:
        with self.cond:
            ok = self.cond.wait_for(lambda: bool(self.seen) and self.seen[-1] >= t0, timeout)
            return self.seen[-1] if ok else None


@contextlib.contextmanager
def watchdog_floor(target: Path) -> Iterator[_Delivery]:
    """watchdog's event delivery alone: the same observer and event filter HotPrompts uses."""
    handler = _Delivery(target)
    observer = InotifyObserver()
    observer.schedule(handler, str(target.parent), event_filter=_EVENTS)
    observer.start()
    try:
        yield handler
    finally:
        observer.stop()
        observer.join()


def measure_floor(kind: str, size_name: str, rounds: int, workdir: Path) -> Result:
    target = workdir / f"floor-{kind}-{size_name.replace(' ', '')}" / "prompts.json"
    target.parent.mkdir()
    target.write_bytes(make_document(SIZES[size_name], "start"))
    name = "floor: kernel inotify event (raw read)" if kind == "raw" else "floor: watchdog event delivery"
    res = Result(name, size_name)
    cm: Any = contextlib.closing(RawInotify(target)) if kind == "raw" else watchdog_floor(target)
    me, main_tid = [os.getpid()], frozenset({threading.get_native_id()})
    with cm as watcher:
        cpu0 = sched(me, main_tid)[0]
        for i in range(rounds):
            t0 = save(target, make_document(SIZES[size_name], f"{kind}{i}"))
            t1 = watcher.wait_after(t0, ROUND_DEADLINE)
            if t1 is None:
                res.lost += 1
            else:
                res.samples.append(t1 - t0)
            spacing()
        res.cpu_per_save = (sched(me, main_tid)[0] - cpu0) / 1e6 / rounds
    return res


# ---------------------------------------------------------------- HotPrompts, in this process


def _tap_notify(hp: HotPrompts, log: list[float]) -> None:
    """Record when the watcher hints (wraps the watcher's notify; timing only, behaviour unchanged)."""
    watcher = hp._watcher
    assert watcher is not None
    original = watcher.notify

    def tapped(source: str, urgent: bool) -> None:
        if urgent:
            log.append(time.time())
        original(source, urgent)

    watcher.notify = tapped


def _has_sha(sha: str, snap: Snapshot) -> bool:
    return snap.sha256 == sha


def _first_after(times: list[float], t0: float) -> float | None:
    return next((t for t in list(times) if t >= t0), None)


def measure_hot_inotify(size_name: str, rounds: int, workdir: Path) -> tuple[Result, Result, Result]:
    target = workdir / f"hot-inotify-{size_name.replace(' ', '')}" / "prompts.json"
    target.parent.mkdir()
    target.write_bytes(make_document(SIZES[size_name], "start"))
    total = Result("HotPrompts inotify (in-process)", size_name)
    hint = Result("  of which rename → watcher hint", size_name)
    worker = Result("  of which hint → published (worker)", size_name)
    hints: list[float] = []
    waits: list[float] = []
    me, main_tid = [os.getpid()], frozenset({threading.get_native_id()})
    with HotPrompts(target, mode="inotify") as hp:
        _tap_notify(hp, hints)
        cpu0 = sched(me, main_tid)[0]
        for i in range(rounds):
            data = make_document(SIZES[size_name], f"hot{i}")
            sha = sha256_hex(data)
            w0 = sched(me, main_tid)[1]
            t0 = save(target, data)
            snap = hp.wait_for(partial(_has_sha, sha), ROUND_DEADLINE)
            if snap is None:
                total.lost += 1
            else:
                total.samples.append(snap.loaded_at - t0)
                waits.append((sched(me, main_tid)[1] - w0) / 1e9)
                th = _first_after(hints, t0)
                if th is not None and th <= snap.loaded_at:
                    hint.samples.append(th - t0)
                    worker.samples.append(snap.loaded_at - th)
            spacing()
        total.cpu_per_save = (sched(me, main_tid)[0] - cpu0) / 1e6 / rounds
    target_ms = TARGET_P99_MS[size_name]
    total.target = f"p99 <= {target_ms:g} ms"
    total.verdict = "PASS" if total.samples and total.p99 <= target_ms and not total.lost else "FAIL"
    total.note = "watcher threads: " + contention_note(total.samples, waits, target_ms)
    return total, hint, worker


def measure_parse_cost(size_name: str, repeat: int) -> tuple[float, float, float]:
    """Median ms of the worker's CPU steps on one document: read, sha256, parse+validate."""
    data = make_document(SIZES[size_name], "parse")
    with tempfile.NamedTemporaryFile(dir=None) as f:
        f.write(data)
        f.flush()
        reads, hashes, parses = [], [], []
        for _ in range(repeat):
            a = time.perf_counter()
            with open(f.name, "rb") as g:
                raw = g.read(MIB + 1)
            b = time.perf_counter()
            sha256_hex(raw)
            c = time.perf_counter()
            parse_document(raw)
            d = time.perf_counter()
            reads.append(b - a)
            hashes.append(c - b)
            parses.append(d - c)
    return (statistics.median(reads) * 1000, statistics.median(hashes) * 1000, statistics.median(parses) * 1000)


# ---------------------------------------------------------------- the seed's poll thread, faithfully


class SeedAgent:
    """The seed's ``Agent`` hot reload (002): poll the mtime every interval; on change read the
    file, *then* record the mtime (the lost-update window is kept, as proposed).

    Instrumentation only: ``prompts`` is a property whose setter records the publish time, and the
    time of the last mtime check is remembered; the logic is the seed's.
    """

    def __init__(self, path: Path, interval: float = INTERVAL) -> None:
        self._published: list[tuple[float, float, Any]] = []  # (check time, publish time, prompts)
        self._cond = threading.Condition()
        self._last_check = 0.0
        self._stopped = False
        self.prompts_path = str(path)
        self.prompts = self._load_prompts_from_file(self.prompts_path)
        self._prompts_mtime = self._get_mtime(self.prompts_path)
        self._hot_reload = True
        self._reload_interval = interval
        self._thread = threading.Thread(target=self._watch_prompts_loop, daemon=True)
        self._thread.start()

    @property
    def prompts(self) -> Any:
        return self._prompts

    @prompts.setter
    def prompts(self, value: Any) -> None:
        self._prompts = value
        now = time.time()
        with self._cond:
            self._published.append((self._last_check, now, value))
            self._cond.notify_all()

    def _get_mtime(self, path: str) -> float:
        self._last_check = time.time()
        try:
            return os.path.getmtime(path)
        except Exception:
            return -1.0

    def _load_prompts_from_file(self, path: str) -> dict[str, Any]:
        with open(path, encoding="utf-8") as f:
            result: dict[str, Any] = json.load(f)
            return result

    def reload_prompts(self) -> None:
        self.prompts = self._load_prompts_from_file(self.prompts_path)
        self._prompts_mtime = self._get_mtime(self.prompts_path)

    def _watch_prompts_loop(self) -> None:
        while not self._stopped:  # the seed: ``while True`` (a daemon thread); stoppable here
            try:
                m = self._get_mtime(self.prompts_path)
                if m > 0 and m != self._prompts_mtime:
                    self.reload_prompts()
            except Exception:
                pass
            time.sleep(self._reload_interval)

    def wait_for_greeting(self, greeting: str, timeout: float) -> tuple[float, float] | None:
        with self._cond:
            ok = self._cond.wait_for(lambda: self._published[-1][2].get("greeting") == greeting, timeout)
            return self._published[-1][:2] if ok else None

    def close(self) -> None:
        self._stopped = True
        self._thread.join()


def seed_process(path: str) -> None:
    """A process running only the seed's agent thread (for its idle CPU); exits when stdin closes."""
    SeedAgent(Path(path))
    print("ready", flush=True)
    sys.stdin.read()


# ---------------------------------------------------------------- poll mode and seed, concurrently


@dataclass
class PollTrack:
    res: Result
    reaction: list[float] = field(default_factory=list)  # check that saw the change → published
    checks: list[float] = field(default_factory=list)


def _poll_rounds(track: PollTrack, target: Path, size: int, rounds: int, run_round: Callable[[int], bool]) -> None:
    step = INTERVAL * (1 + 1 / rounds)
    next_at = time.monotonic() + random.uniform(0, INTERVAL)
    for i in range(rounds):
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # schedule only: the phase sweep; each round waits on its own condition
        next_at = time.monotonic() + step
        if not run_round(i):
            track.res.lost += 1


def poll_track_hot(size_name: str, rounds: int, workdir: Path, out: dict[str, PollTrack]) -> None:
    target = workdir / f"poll-hot-{size_name.replace(' ', '')}" / "prompts.json"
    target.parent.mkdir()
    size = SIZES[size_name]
    target.write_bytes(make_document(size, "start"))
    track = PollTrack(Result(f"HotPrompts poll ({INTERVAL * 1000:.0f} ms)", size_name))
    out[f"hot {size_name}"] = track
    hints: list[float] = []
    with HotPrompts(target, mode="poll", interval=INTERVAL) as hp:
        _tap_notify(hp, hints)

        def one(i: int) -> bool:
            data = make_document(size, f"poll{i}")
            sha = sha256_hex(data)
            t0 = save(target, data)
            snap = hp.wait_for(lambda s: s.sha256 == sha, INTERVAL * 2 + ROUND_DEADLINE)
            if snap is None:
                return False
            track.res.samples.append(snap.loaded_at - t0)
            th = _first_after(hints, t0)
            if th is not None:
                track.reaction.append(snap.loaded_at - th)
            return True

        _poll_rounds(track, target, size, rounds, one)
        track.checks = list(hints)


def poll_track_seed(size_name: str, rounds: int, workdir: Path, out: dict[str, PollTrack]) -> None:
    target = workdir / f"poll-seed-{size_name.replace(' ', '')}" / "prompts.json"
    target.parent.mkdir()
    size = SIZES[size_name]
    target.write_bytes(make_document(size, "start"))
    track = PollTrack(Result(f"seed: mtime poll thread ({INTERVAL * 1000:.0f} ms)", size_name))
    out[f"seed {size_name}"] = track
    agent = SeedAgent(target)
    try:

        def one(i: int) -> bool:
            tag = f"seed{i}"
            t0 = save(target, make_document(size, tag))
            got = agent.wait_for_greeting(f"Hello, round {tag}", INTERVAL * 2 + ROUND_DEADLINE)
            if got is None:
                return False
            checked, published = got
            track.res.samples.append(published - t0)
            track.reaction.append(published - checked)
            return True

        _poll_rounds(track, target, size, rounds, one)
    finally:
        agent.close()


def measure_poll(rounds: int, workdir: Path) -> dict[str, PollTrack]:
    out: dict[str, PollTrack] = {}
    threads = [
        threading.Thread(target=fn, args=(size_name, rounds, workdir, out), daemon=True)
        for size_name in SIZES
        for fn in (poll_track_hot, poll_track_seed)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key, track in out.items():
        r = track.res
        if not r.samples or not track.reaction:
            r.verdict = "FAIL"
            continue
        reaction = statistics.fmean(track.reaction) * 1000
        # Expected wait for a save at a uniformly random time: half the poll period.
        period = INTERVAL * 1000 + (reaction if key.startswith("seed") else 0.0)
        expected = period / 2 + reaction
        sweep = INTERVAL * 1000 / (2 * rounds)
        r.note = (
            f"mean {r.mean:.0f} ms (phase sweep of {rounds}: +/-{sweep:.0f} ms); reaction (check → published) "
            f"mean {reaction:.2f} ms (median {statistics.median(track.reaction) * 1000:.2f});"
            f" expected mean for random save times = period/2 + reaction = {expected:.1f} ms"
        )
        if key.startswith("hot"):
            limit = INTERVAL * 1000 / 2 + POLL_SLACK_MS
            r.target = f"mean <= {limit:.0f} ms (int/2+5)"
            r.verdict = "PASS" if expected <= limit and not r.lost else "FAIL"
        else:
            r.target = "baseline"
    return out


# ---------------------------------------------------------------- subprocess watchers: 1 and 16


def _watch_cmd(target: Path, mode: str) -> list[str]:
    script = Path(sys.executable).parent / "promptwatch"
    code = "import sys; from promptwatch.cli import main; sys.exit(main())"
    base = [str(script)] if script.exists() else [sys.executable, "-c", code]
    return [*base, "watch", str(target), "--json", "--mode", mode]


class Watchers:
    """``promptwatch watch FILE --json`` subprocesses, their JSON lines collected by reader threads."""

    def __init__(self, target: Path, count: int, mode: str, status_dir: Path) -> None:
        env = {**os.environ, "PROMPTS_STATUS_DIR": str(status_dir)}
        env.pop("PROMPTS_WATCH_MODE", None)
        self.cond = threading.Condition()
        self.loaded: list[dict[str, float]] = [{} for _ in range(count)]  # per process: sha → loaded_at
        self.procs: list[subprocess.Popen[bytes]] = []
        self.readers: list[threading.Thread] = []
        try:
            for _ in range(count):
                self.procs.append(
                    subprocess.Popen(
                        _watch_cmd(target, mode),
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                        env=env,
                    )
                )
        except BaseException:
            self.close()
            raise
        self.readers = [threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(count)]
        for t in self.readers:
            t.start()

    def _read(self, i: int) -> None:
        stdout = self.procs[i].stdout
        assert stdout is not None
        for line in stdout:
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if rec.get("ok"):
                with self.cond:
                    self.loaded[i].setdefault(rec["sha256"], rec["loaded_at"])
                    self.cond.notify_all()

    def wait_all(self, sha: str, timeout: float) -> list[float] | None:
        with self.cond:
            if self.cond.wait_for(lambda: all(sha in d for d in self.loaded), timeout):
                return [d[sha] for d in self.loaded]
        return None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for t in self.readers:
            t.join(5)


def measure_fanout(count: int, size_name: str, rounds: int, workdir: Path, gap: tuple[float, float]) -> Result:
    d = workdir / f"fanout{count}-{size_name.replace(' ', '')}"
    target = d / "prompts.json"
    target.parent.mkdir()
    size = SIZES[size_name]
    first = make_document(size, "start")
    target.write_bytes(first)
    name = f"fan-out: last of {count} watch processes" if count > 1 else "promptwatch watch subprocess (1)"
    res = Result(name, size_name)
    spread: list[float] = []
    w = Watchers(target, count, "inotify", d / "status")
    try:
        if w.wait_all(sha256_hex(first), 60.0) is None:
            raise RuntimeError(f"{count} watchers did not start within 60 s")
        time.sleep(0.5)  # let the startup re-read settle before timing
        cpu0 = sched(w.pids)[0]
        waits: list[float] = []
        for i in range(rounds):
            data = make_document(size, f"fan{count}-{i}")
            w0 = sched(w.pids)[1]
            t0 = save(target, data)
            got = w.wait_all(sha256_hex(data), ROUND_DEADLINE)
            if got is None:
                res.lost += 1
            else:
                res.samples.append(max(got) - t0)
                spread.append(statistics.median(got) - t0)
                waits.append((sched(w.pids)[1] - w0) / 1e9 / count)
            spacing(*gap)
        cpu_per_save = (sched(w.pids)[0] - cpu0) / 1e6 / rounds
        res.cpu_per_save = cpu_per_save / count
    finally:
        w.close()
    target_ms = TARGET_P99_MS[size_name]
    res.target = f"p99 <= {target_ms:g} ms"
    res.verdict = "PASS" if res.samples and res.p99 <= target_ms and not res.lost else "FAIL"
    ncpu = os.cpu_count() or 1
    res.note = (
        f"CPU per save (all threads, whole round): {cpu_per_save / count:.2f} ms in each process,"
        f" {cpu_per_save:.1f} ms for all {count} = {cpu_per_save / min(ncpu, count):.1f} ms of all {ncpu} cores;"
        f" per process " + contention_note(res.samples, waits, target_ms)
    )
    if count > 1 and spread:
        s = sorted(spread)
        res.note += f"; median process of {count}: p50 {s[len(s) // 2] * 1000:.2f} ms"
    return res


# ---------------------------------------------------------------- idle CPU


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` in ns (schedstat), or from ``/proc/PID/stat`` ticks."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        return total
    except OSError:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def sched(pids: list[int], exclude: frozenset[int] = frozenset()) -> tuple[int, int]:
    """(CPU ns, run-queue wait ns) summed over every thread of ``pids`` but ``exclude`` (schedstat).

    The run-queue wait is time a thread was ready to run but no core was free: on a shared
    2-core machine, the share of latency that other processes' CPU use adds.
    """
    cpu = wait = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                if int(task) in exclude:
                    continue
                with contextlib.suppress(OSError):
                    fields = Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()
                    cpu += int(fields[0])
                    wait += int(fields[1])
    return cpu, wait


def contention_note(lat: list[float], waits: list[float], limit_ms: float) -> str:
    """How much run-queue wait the rounds over the target had, against the others."""
    over = [w for x, w in zip(lat, waits, strict=True) if x * 1000 > limit_ms]
    under = [w for x, w in zip(lat, waits, strict=True) if x * 1000 <= limit_ms]
    slowest = max(range(len(lat)), key=lat.__getitem__)
    worst = f"; slowest round {lat[slowest] * 1000:.1f} ms with {waits[slowest] * 1000:.1f} ms of waiting"
    if not over:
        return f"no round over {limit_ms:g} ms" + worst
    return (
        f"{len(over)} rounds over {limit_ms:g} ms: their threads waited for a free core"
        f" {statistics.fmean(over) * 1000:.2f} ms on average (median {statistics.median(over) * 1000:.2f}),"
        f" the other rounds' {statistics.fmean(under) * 1000 if under else float('nan'):.2f} ms" + worst
    )


def wakeups(pid: int) -> int:
    n = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    n += int(line.split()[1])
    return n


IdleMeasure = Callable[[float], list[tuple[str, float, float]]]


def start_idle(stack: contextlib.ExitStack, workdir: Path) -> IdleMeasure:
    """Start the idle watchers (ours in both modes, the seed's) on a file nobody writes; the
    returned function measures their CPU over a window.  Started early: a freshly started Python
    process keeps using CPU at each wakeup for its first tens of seconds."""
    d = workdir / "idle"
    d.mkdir()
    target = d / "prompts.json"
    target.write_bytes(make_document(4 * KIB, "idle"))
    sha = sha256_hex(target.read_bytes())
    ino = Watchers(target, 1, "inotify", d / "status")
    stack.callback(ino.close)
    poll = Watchers(target, 1, "poll", d / "status")
    stack.callback(poll.close)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    seed = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from bench.bench_reload import seed_process; seed_process(sys.argv[1])",
            str(target),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )

    def stop_seed() -> None:
        if seed.stdin is not None:
            seed.stdin.close()
        try:
            seed.wait(5)
        except subprocess.TimeoutExpired:
            seed.kill()
            seed.wait()

    stack.callback(stop_seed)
    for w in (ino, poll):
        if w.wait_all(sha, 60.0) is None:
            raise RuntimeError("idle watcher did not start")
    assert seed.stdout is not None
    ready: list[bytes] = []
    reader = threading.Thread(target=lambda: ready.append(seed.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(60.0)
    if not ready or ready[0].strip() != b"ready":
        raise RuntimeError("seed process did not start")
    return partial(
        _measure_idle,
        target,
        {
            "promptwatch watch, inotify mode": ino.pids[0],
            f"promptwatch watch, poll mode ({INTERVAL * 1000:.0f} ms)": poll.pids[0],
            "seed: process with the mtime poll thread": seed.pid,
        },
    )


def _measure_idle(target: Path, pids: dict[str, int], seconds: float) -> list[tuple[str, float, float]]:
    # Idle means: past start-up work, and no write for a while (the poller re-checks a file
    # modified within 2 s of a check, by design).
    time.sleep(max(0.0, target.stat().st_mtime + 3.0 - time.time()))
    before = {k: (cpu_ns(p), wakeups(p)) for k, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)  # the measurement window itself
    elapsed = time.monotonic() - t0
    after = {k: (cpu_ns(p), wakeups(p)) for k, p in pids.items()}
    return [
        (k, (after[k][0] - before[k][0]) / 1e9 / elapsed * 100, (after[k][1] - before[k][1]) / elapsed) for k in pids
    ]


# ---------------------------------------------------------------- main


def main(quick: bool) -> None:
    import watchdog.version

    floor_rounds = 30 if quick else 150
    hot_rounds = {"4 KiB": 60 if quick else 300, "1 MiB": 30 if quick else 150}
    poll_rounds = 8 if quick else 30
    fan_rounds = {"4 KiB": 12 if quick else 60, "1 MiB": 6 if quick else 30}
    single_rounds = {"4 KiB": 20 if quick else 150, "1 MiB": 10 if quick else 60}
    idle_seconds = 3.0 if quick else 10.0

    print(
        f"cpus {os.cpu_count()}, load average at start {loadavg()}; python {sys.version.split()[0]}, "
        f"watchdog {watchdog.version.VERSION_STRING}; clock time.time(); {'quick' if quick else 'full'} run"
    )
    rows: list[Result] = []
    costs: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as tmp, rename_clock():
        workdir = Path(tmp)
        for size_name in SIZES:
            costs[size_name] = measure_parse_cost(size_name, 20 if quick else 50)
        # Event-driven measurements first, alone: they are the millisecond-sensitive ones.
        for size_name in SIZES:
            rows.append(measure_floor("raw", size_name, floor_rounds, workdir))
            rows.append(measure_floor("watchdog", size_name, floor_rounds, workdir))
            rows.extend(measure_hot_inotify(size_name, hot_rounds[size_name], workdir))
        load_mid = loadavg()
        for size_name in SIZES:
            rows.append(measure_fanout(1, size_name, single_rounds[size_name], workdir, (0.02, 0.04)))
        for size_name in SIZES:
            gap = (0.1, 0.15) if size_name == "4 KiB" else (0.25, 0.35)
            rows.append(measure_fanout(FANOUT, size_name, fan_rounds[size_name], workdir, gap))
        # The slow pollers, four at once (HotPrompts poll and the seed, both sizes); the idle
        # watchers are started first, so they are past their start-up when their CPU is measured.
        with contextlib.ExitStack() as idle_stack:
            measure_idle = start_idle(idle_stack, workdir)
            poll = measure_poll(poll_rounds, workdir)
            idle = measure_idle(idle_seconds)
        rows.extend(poll[k].res for k in ("hot 4 KiB", "seed 4 KiB", "hot 1 MiB", "seed 1 MiB") if k in poll)
    load_end = loadavg()

    seed = {k.split(" ", 1)[1]: poll[k].res for k in poll if k.startswith("seed")}
    for r in rows:
        if r.name.startswith("floor"):
            r.target = "reference"
    order = sorted(rows, key=lambda r: (list(SIZES).index(r.size), 0))
    print("\nSave-to-reload latency, ms (time.time() before os.replace → new value published)")
    print_table(order, seed)

    print("\nWhere the HotPrompts inotify time goes (medians, ms)")
    for size_name in SIZES:
        by = {r.name: r for r in rows if r.size == size_name}
        raw = by["floor: kernel inotify event (raw read)"]
        wd = by["floor: watchdog event delivery"]
        hot = by["HotPrompts inotify (in-process)"]
        hint = by["  of which rename → watcher hint"]
        worker = by["  of which hint → published (worker)"]
        rd, hs, ps = costs[size_name]
        print(
            f"  {size_name}: kernel event {raw.p50:.3f}; watchdog delivery {wd.p50:.3f}"
            f" ({wd.p50 / raw.p50:.1f}x the kernel); HotPrompts total {hot.p50:.3f}"
            f" ({hot.p50 / wd.p50:.1f}x watchdog, {hot.p50 / raw.p50:.1f}x the kernel) ="
            f" hint {hint.p50:.3f} + worker {worker.p50:.3f};"
            f" worker CPU steps alone: read {rd:.3f} + sha256 {hs:.3f} + parse/validate {ps:.3f}"
        )

    print("\nCPU per save spent by one watcher, all its threads (ms; the writer's thread excluded)")
    for size_name in SIZES:
        by = {r.name: r for r in rows if r.size == size_name}
        c_raw = by["floor: kernel inotify event (raw read)"].cpu_per_save
        c_wd = by["floor: watchdog event delivery"].cpu_per_save
        c_hot = by["HotPrompts inotify (in-process)"].cpu_per_save
        c_cli = by["promptwatch watch subprocess (1)"].cpu_per_save
        print(
            f"  {size_name}: kernel inotify reader {c_raw:.2f}; watchdog observer {c_wd:.2f};"
            f" HotPrompts {c_hot:.2f}; promptwatch watch process {c_cli:.2f} (+ status file, JSON line)."
            f"  {FANOUT} watchers before the last publishes need about {FANOUT} x {c_hot:.2f} / {os.cpu_count()}"
            f" cores = {FANOUT * c_hot / (os.cpu_count() or 1):.1f} ms of a free machine"
        )

    print(f"\nIdle CPU over {idle_seconds:.0f} s of no writes (all threads of the process)")
    print(
        f"  {'process':<46} {'CPU % of a core':>16} {'wakeups/s':>10} {'CPU/wakeup':>11}"
        f"  {'target':<22} {'result':<6} vs seed"
    )
    seed_cpu = idle[-1][1]
    for name, pct, wk in idle:
        is_seed = name.startswith("seed")
        verdict = "" if is_seed else ("PASS" if pct <= IDLE_CPU_TARGET_PCT else "FAIL")
        target = "baseline" if is_seed else f"<= {IDLE_CPU_TARGET_PCT:g} % (near zero)"
        vs = "" if is_seed or seed_cpu <= 0 else f"{pct / seed_cpu:.2f}x"
        per_wake = f"{pct / 100 / wk * 1e6:.0f} us" if wk > 0 else "-"
        print(f"  {name:<46} {pct:>15.4f}% {wk:>10.1f} {per_wake:>11}  {target:<22} {verdict:<6} {vs}")
    print(f"\nload average: start/after event-driven rounds/end: see above / {load_mid} / {load_end}")
