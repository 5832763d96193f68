"""``promptwatch sync``: the agent as a service (systemd ``Type=notify``) or one reconciliation (``--once``).

READY=1 is sent after the first reconciliation, so a host that was down has caught up before the units
ordered after it (the bot, the panel) start and report ready.  Redis being down does not block the
start: the host runs on its own files and the STATUS= line says it is not distributing.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from ..systemd import notify, watchdog_interval
from .agent import SyncAgent
from .factory import SyncSettings, open_agent

__all__ = ["run_sync", "status_line"]

logger = logging.getLogger("promptwatch.sync")

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STATUS_PERIOD = 5.0


def status_line(agent: SyncAgent) -> str:
    versions = " ".join(f"{k}=v{v}" for k, v in sorted(agent.state.versions().items())) or "no documents yet"
    if not agent.connected:
        return f"NOT distributing (host {agent.host}): {agent.last_error}; {versions}"
    if agent.errors:
        return f"host {agent.host}: {next(iter(agent.errors.values()))}"
    conflicts = f"; {len(agent.conflicts)} conflict(s), see the log" if agent.conflicts else ""
    return f"distributing as host {agent.host} via {agent.redis_url}; {versions}{conflicts}"


def run_sync(settings: SyncSettings, file: Path | None, *, once: bool) -> int:
    """Exit status: 0, or 1 when ``--once`` could not reach Redis or a document was refused."""
    agent = open_agent(settings, file)
    if once:
        ok = agent.reconcile_once()
        print(status_line(agent))
        return 0 if ok else 1
    # Signals are blocked in every thread (the agent's threads inherit the mask) and taken here one by one.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        agent.start()
        try:
            notify(f"READY=1\nSTATUS={status_line(agent)}")
            ping = watchdog_interval()
            period = min(ping, STATUS_PERIOD) if ping else STATUS_PERIOD
            last = ""
            while True:
                received = signal.sigtimedwait(_SIGNALS, period)
                if received is not None and received.si_signo != signal.SIGHUP:
                    break
                if received is not None:  # SIGHUP: look at everything again now
                    agent.reconcile_once()
                line = status_line(agent)
                parts = (["WATCHDOG=1"] if ping else []) + ([f"STATUS={line}"] if line != last else [])
                if parts:
                    notify("\n".join(parts))
                last = line
            notify("STOPPING=1")
        finally:
            agent.close()
    finally:
        while signal.sigpending() & set(_SIGNALS):
            signal.sigwait(_SIGNALS)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return 0
