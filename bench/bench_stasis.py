"""The Stasis service under load: concurrent calls through the ARI test double, offline backends.

A real ``stasis run`` process with the offline backends (espeak-ng TTS, the knowledge-base LLM, and
DTMF input: each caller keys ``1#``/``2#``/``3#``, mapped to questions by ``dtmf_N`` prompts) serves
calls placed on the ARI double.  Measured:

- per-turn overhead: from the moment the caller's recording ended (the double's clock) to the play
  request of the reply, minus the backend time the call log records for that turn (LLM + TTS):
  what the service itself adds — event dispatch, ARI round trips, scheduling, logging, call-log
  queueing; for 1 call (the baseline) and for N concurrent calls all keying at the same instant
  (a worst-case burst: the latency includes queueing behind the other N−1 turns);
- the service's CPU time per turn under that load (burst-independent);
- memory per call: the service's RSS with N calls in progress minus its idle RSS, over N;
- the service's CPU while idle (ARI connected, prompts and knowledge base watched).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from tests.stasis.ari_double import AriDouble
from tests.util import wait_until

from stasis.calllog import CallLog

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = ("Сколько стоит доставка по Москве?", "Какие у вас тарифы?", "Когда работает офис?")
KEYS = tuple(f"dtmf:{i}#" for i in range(1, len(QUESTIONS) + 1))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    fields = raw[raw.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _overheads(ari: AriDouble, calllog: Path, channels: list[str]) -> list[float]:
    """Per turn: (first play after the recording finished) − (recording finished) − backend time, in ms."""
    log = CallLog(calllog, readonly=True)
    out: list[float] = []
    try:
        marks = sorted(ari.marks)
        for ch in channels:
            detail = log.get_call(ch)
            assert detail is not None, ch
            mine = [(t, kind) for t, kind, c in marks if c == ch]
            heard = [t for t, kind in mine if kind == "heard"]
            for turn, t0 in zip(detail.turns, heard, strict=False):
                if turn.llm_ms is None:
                    continue  # the goodbye turn: no reply
                t1 = next(t for t, kind in mine if kind == "play" and t > t0)
                backend = (turn.stt_ms or 0) + (turn.llm_ms or 0) + (turn.tts_ms or 0)
                out.append((t1 - t0) * 1000 - backend)
    finally:
        log.close()
    return out


def _ended(calllog: Path, channels: list[str]) -> bool:
    log = CallLog(calllog, readonly=True)
    try:
        return all((d := log.get_call(ch)) is not None and d.end_reason is not None for ch in channels)
    finally:
        log.close()


def _place(ari: AriDouble, n: int, *, speak: bool) -> list[str]:
    channels = [ari.place_call(f"7900{i:07d}", f"Абонент {i}") for i in range(n)]
    if speak:
        for ch in channels:
            ari.hear(ch, *KEYS, "dtmf:9#")
    return channels


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main(quick: bool) -> None:
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed: apt-get install espeak-ng sox libsox-fmt-base")
        return
    n_calls = 20 if quick else 100
    idle_seconds = 1.0 if quick else 5.0
    tmp = Path(tempfile.mkdtemp(prefix="bench-stasis-"))
    shutil.copytree(REPO / "config", tmp / "config")
    prompts = orjson.loads((tmp / "config" / "prompts.json").read_bytes())
    prompts.update({f"dtmf_{i}": q for i, q in enumerate(QUESTIONS, 1)} | {"dtmf_9": "до свидания"})
    (tmp / "config" / "prompts.json").write_bytes(orjson.dumps(prompts))
    ari = AriDouble(time_scale=0.001, silence_timeout=60).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_", "JOURNAL_"))}
    env.update(
        PROMPTS_PATH=str(tmp / "config" / "prompts.json"),
        PROMPTS_STATUS_DIR=str(tmp / "status"),
        ARI_URL=ari.url,
        ARI_PASSWORD="secret",
        MAX_CALLS=str(n_calls + 10),
        STT_BACKEND="none",
        TTS_BACKEND="espeak",
        SOUNDS_DIR=str(tmp / "sounds"),
        CALLLOG_PATH=str(tmp / "calls.sqlite3"),
        FILLER_AFTER_MS="60000",
        LOG_LEVEL="INFO",
    )
    calllog = tmp / "calls.sqlite3"
    profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    command = [sys.executable, *profile, "-m", "stasis.cli", "run"]
    proc = subprocess.Popen(command, env=env, cwd=tmp, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: ari.connected_clients == 1, timeout=30, message="service connected to ARI")
        # warm-up: pre-synthesis done, every reply's audio cached, code paths warm
        warm = _place(ari, 1, speak=True)
        wait_until(lambda: _ended(calllog, warm), timeout=60, message="warm-up call")

        time.sleep(0.5)  # let the process settle before measuring its idle state
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(idle_seconds)
        idle_cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
        rss_idle = _rss_kib(proc.pid)

        base = _place(ari, 1, speak=True)
        wait_until(lambda: _ended(calllog, base), timeout=60, message="baseline call")
        baseline = _overheads(ari, calllog, base)

        # N calls in progress at once (all listening), then all speak at once
        many = _place(ari, n_calls, speak=False)
        wait_until(lambda: all(ari.channels[ch].recordings for ch in many), timeout=60, message="all listening")
        rss_busy = _rss_kib(proc.pid)
        cpu0, started = _cpu_seconds(proc.pid), time.monotonic()
        for ch in many:
            ari.hear(ch, *KEYS, "dtmf:9#")
        wait_until(lambda: all(ari.channels[ch].gone for ch in many), timeout=300, interval=0.02, message="all hung up")
        wall = time.monotonic() - started
        cpu_per_turn = (_cpu_seconds(proc.pid) - cpu0) / (n_calls * (len(KEYS) + 1)) * 1000
        wait_until(lambda: _ended(calllog, many), timeout=60, interval=0.1, message="all calls logged")
        loaded = _overheads(ari, calllog, many)
    finally:
        proc.terminate()
        proc.wait(30)
        ari.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    b_med = statistics.median(baseline)
    rows = [
        ("per-turn overhead, 1 call (baseline)", f"{b_med:.1f} ms median", "1.00×"),
        (
            f"per-turn overhead, {n_calls} concurrent calls",
            f"{statistics.median(loaded):.1f} ms median, p95 {_pct(loaded, 0.95):.1f} ms",
            f"{statistics.median(loaded) / b_med:.2f}×",
        ),
        (f"turns answered ({n_calls} calls × {len(QUESTIONS)})", f"{len(loaded)} in {wall:.1f} s", ""),
        ("service CPU per turn under load", f"{cpu_per_turn:.1f} ms", "incl. greeting/goodbye share"),
        (
            "memory per call in progress",
            f"{(rss_busy - rss_idle) / n_calls:.0f} KiB",
            f"idle RSS {rss_idle / 1024:.0f} MiB",
        ),
        ("CPU while idle", f"{idle_cpu:.2f} % of one core", f"over {idle_seconds:.0f} s"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':<40}  ratio / note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<40}  {note}")
