"""Several hosts simulated on one machine: a config dir, a status dir and a state dir per host, each with
its ``promptwatch sync`` agent and a ``promptwatch watch`` consumer (real processes, real inotify)."""

from __future__ import annotations

import os
import queue
from pathlib import Path
from typing import IO, Any

import orjson

from promptwatch import read_statuses, sha256_hex
from promptwatch.sync.hosts import read_local_agent
from tests.util import wait_until

from ..helpers import PROMPTWATCH, Child, make_doc

NAMESPACE = "t"


class SimHost:
    def __init__(self, root: Path, name: str, redis_url: str, *, doc: bytes | None = None) -> None:
        self.name = name
        self.dir = root / name
        self.config = self.dir / "config"
        self.status_dir = self.dir / "status"
        self.state_dir = self.dir / "state"
        for d in (self.config, self.status_dir, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.path = self.config / "prompts.json"
        if doc is not None:
            self.path.write_bytes(doc)
        self.redis_url = redis_url
        self.agent: Child | None = None
        self.consumer: Child | None = None
        self._logs: list[IO[Any]] = []
        self._consumer_lines: list[dict[str, Any]] = []
        self._agent_env: dict[str, str] = {}

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTS_", "NOTIFY_SOCKET", "STATE_DIR"))}
        env.update(
            PROMPTS_PATH=str(self.path),
            PROMPTS_STATUS_DIR=str(self.status_dir),
            PROMPTS_HOST=self.name,
            PROMPTS_REDIS_URL=self.redis_url,
            PROMPTS_NAMESPACE=NAMESPACE,
            STATE_DIRECTORY=str(self.state_dir),
            PROMPTWATCH_ENV_FILE=str(self.dir / "no.env"),
        )
        return env

    def start_agent(self, *, wait: bool = True, env: dict[str, str] | None = None) -> Child:
        log = open(self.dir / "agent.log", "a")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self._agent_env = {**self._agent_env, **(env or {})}
        self.agent = Child([os.fspath(PROMPTWATCH), "sync"], env={**self.env, **self._agent_env}, stderr=log)
        if wait:
            self.wait_agent()
        return self.agent

    def wait_agent(self) -> None:
        """Until the agent has caught up and written its first record."""
        assert self.agent is not None
        pid = self.agent.pid
        wait_until(
            lambda: (read_local_agent(self.status_dir) or {}).get("agent", {}).get("pid") == pid,
            timeout=30,
            message=f"the agent of host {self.name} started",
        )

    def kill_agent(self) -> None:
        assert self.agent is not None
        self.agent.proc.kill()
        self.agent.wait()
        self.agent.stop()
        self.agent = None

    def start_consumer(self, *, wait: bool = True) -> Child:
        self.consumer = Child(
            [os.fspath(PROMPTWATCH), "watch", str(self.path), "--json", "--service", f"bot-{self.name}"], env=self.env
        )
        if wait:
            self.wait_consumer()
        return self.consumer

    def wait_consumer(self) -> None:
        """Until the consumer has printed its first line (its status is published)."""
        assert self.consumer is not None
        first = orjson.loads(self.consumer.line(timeout=30))
        self._consumer_lines.append(first)
        assert first["ok"], first

    def consumer_lines(self) -> list[dict[str, Any]]:
        """Every line the consumer printed so far (its whole history, kept across calls)."""
        assert self.consumer is not None
        while True:
            try:
                line = self.consumer._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self.consumer._lines.put(None)
                break
            self._consumer_lines.append(orjson.loads(line))
        return list(self._consumer_lines)

    def sha(self) -> str | None:
        try:
            return sha256_hex(self.path.read_bytes())
        except FileNotFoundError:
            return None

    def consumer_shas(self) -> list[str | None]:
        return [s.sha256 for s in read_statuses(self.status_dir, path=self.path)]

    def agent_record(self) -> dict[str, Any]:
        return (read_local_agent(self.status_dir) or {}).get("agent") or {}

    def write(self, version: int | str, **extra: Any) -> str:
        """A save on this host (what ``promptwatch write`` and the panel do): validated, atomic."""
        from promptwatch import write_document

        sha, _ = write_document(self.path, make_doc(version, **extra))
        return sha

    def stop(self) -> None:
        for child in (self.agent, self.consumer):
            if child is not None:
                child.stop()
        self.agent = self.consumer = None
        for log in self._logs:
            log.close()

    def log(self) -> str:
        path = self.dir / "agent.log"
        return path.read_text() if path.exists() else ""


def converged(hosts: list[SimHost], sha: str | None = None) -> str | None:
    """The one sha every host's file and every consumer runs, or None while they differ."""
    shas = {h.sha() for h in hosts}
    if len(shas) != 1 or (sha is not None and shas != {sha}):
        return None
    target = shas.pop()
    for h in hosts:
        if h.consumer is not None and set(h.consumer_shas()) != {target}:
            return None
    return target


def wait_converged(hosts: list[SimHost], sha: str | None = None, timeout: float = 15.0) -> str:
    def check() -> str | None:
        return converged(hosts, sha)

    try:
        return wait_until(check, timeout=timeout, interval=0.01, message=f"hosts converge on {sha or 'one sha'}")
    except AssertionError:
        detail = {h.name: (h.sha(), h.consumer_shas(), h.agent_record().get("last_error")) for h in hosts}
        logs = "\n".join(f"--- {h.name}\n{h.log()[-3000:]}" for h in hosts)
        raise AssertionError(f"not converged: {detail}\n{logs}") from None
