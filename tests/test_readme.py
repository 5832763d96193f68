"""The README is executed: ``make run`` brings up the stack on a copy of the checkout, every shell example
runs against it exactly as written (see :mod:`tests.readme`), and ``make run`` stops cleanly on Ctrl-C or
when one of its processes exits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.readme import Block, readme_blocks, script_of
from tests.util import wait_until

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
BLOCKS = readme_blocks(REPO / "README.md")
STACK_BLOCKS = [b for b in BLOCKS if b.kind == "stack"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def checkout_copy(target: Path) -> Path:
    """What ``make run`` needs of a fresh clone (the Makefile, the project file, the sample config)."""
    target.mkdir()
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)  # copy2: the venv stays newer than pyproject.toml
    shutil.copytree(REPO / "config", target / "config")
    (target / ".venv").symlink_to(VENV)  # the clone's own virtualenv, as make venv made it
    return target


def stack_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTS_", "ADMIN_", "ARI_", "STATE_"))}
    env.pop("PROMPTWATCH_ENV_FILE", None)  # the stack's own var/.env, as for a user at the repository root
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


@dataclass
class Stack:
    root: Path
    port: int
    make: subprocess.Popen[str]
    log: Path

    def status(self) -> dict[str, object]:
        result = subprocess.run(
            ["promptwatch", "status", "--json"], cwd=self.root, env=stack_env(), capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        value: dict[str, object] = json.loads(result.stdout)
        return value

    def services(self) -> set[str]:
        consumers = self.status()["consumers"]
        assert isinstance(consumers, list)
        return {c["service"] for c in consumers if c["in_sync"]}

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        if self.make.poll() is None:
            os.killpg(self.make.pid, sig)  # what Ctrl-C does: the whole foreground process group
        try:
            return self.make.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(self.make.pid, signal.SIGKILL)
            self.make.wait()
            raise


def start_stack(root: Path, **env: str) -> Stack:
    port = free_port()
    log = root / "make-run.log"
    with log.open("w") as out:  # the child keeps its own descriptor
        make = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=root,
            env=stack_env(ADMIN_PORT=str(port), **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    return Stack(root, port, make, log)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = checkout_copy(tmp_path_factory.mktemp("readme") / "checkout")
    running = start_stack(root)
    try:
        wait_until(
            lambda: running.make.poll() is not None or running.services() >= {"adminapi", "metrotech-bot"},
            timeout=120,
            interval=0.1,
            message="make run: the panel and the bot run the sample prompts",
        )
        assert running.make.poll() is None, running.log.read_text()
        yield running
    finally:
        running.stop()


def test_make_run_brings_up_the_panel_and_the_bot(stack: Stack) -> None:
    assert httpx.get(f"http://127.0.0.1:{stack.port}/healthz").json() == {"status": "ok"}
    assert (stack.root / "var" / ".env").is_file()
    check = subprocess.run(
        ["promptwatch", "config", "--check"], cwd=stack.root, env=stack_env(), capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    token = (stack.root / "var" / "admin-token").read_text().strip()
    status = httpx.get(f"http://127.0.0.1:{stack.port}/api/status", headers={"Authorization": f"Bearer {token}"})
    assert status.json()["missing"] == [] and status.json()["all_in_sync"] is True
    log = stack.log.read_text()  # one terminal, two processes: every line says whose it is
    assert "metrotech-bot promptwatch: prompts loaded" in log and "adminapi promptwatch: prompts loaded" in log


def kill_background(logs: Path) -> None:
    pids = logs / "bg.pids"
    if not pids.exists():
        return
    for pid in map(int, pids.read_text().split()):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)


@pytest.mark.parametrize("block", STACK_BLOCKS, ids=str)
def test_readme_example_runs_as_written(stack: Stack, block: Block, tmp_path: Path) -> None:
    script = script_of(block, port=stack.port, logs=tmp_path)
    try:
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=stack.root,
            env=stack_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"{block} failed:\n{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
        assert "Traceback" not in result.stderr, f"{block}: {result.stderr}"
        for bg in tmp_path.glob("bg-*.log"):  # a long-running example has started and said so
            wait_until(lambda bg=bg: bg.read_text().strip(), timeout=30, message=f"{block}: {bg.name} printed nothing")
            assert "Traceback" not in bg.read_text()
    finally:
        kill_background(tmp_path)


def test_a_watch_started_as_the_readme_shows_appears_in_the_panel(stack: Stack) -> None:
    with subprocess.Popen(
        ["promptwatch", "watch", "--json"], cwd=stack.root, env=stack_env(), stdout=subprocess.PIPE, text=True
    ) as watch:
        try:
            assert watch.stdout is not None and json.loads(watch.stdout.readline())["ok"] is True
            wait_until(lambda: "promptwatch-watch" in stack.services(), timeout=20, message="the watch in the status")
        finally:
            watch.terminate()
            watch.wait(timeout=15)


def test_harness_commands_are_makefile_targets() -> None:
    makefile = (REPO / "Makefile").read_text()
    harness = [b for b in BLOCKS if b.kind == "harness"]
    assert harness, "the README opens with make run and make test"
    for block in harness:
        for command in block.commands:
            words = command.split("#")[0].split()
            assert words[0] == "make", f"{block}: {command}"
            target = next(w for w in words[1:] if "=" not in w)
            assert f"\n{target}:" in makefile, f"{block}: no target {target!r}"


def test_make_run_stops_the_other_process_when_one_exits(tmp_path: Path) -> None:
    root = checkout_copy(tmp_path / "checkout")
    broken = start_stack(root, ARI_URL="ftp://not-http")  # the bot refuses to start: bad settings
    try:
        rc = broken.make.wait(timeout=60)
    finally:
        broken.stop()
    log = broken.log.read_text()
    assert rc != 0
    assert "make run: metrotech-bot exited with status 1; stopping adminapi" in log, log
    assert "ARI_URL" in log
    wait_until(lambda: not Stack(root, 0, broken.make, broken.log).status()["consumers"], timeout=20)


def test_ctrl_c_stops_both_cleanly(tmp_path: Path) -> None:
    root = checkout_copy(tmp_path / "checkout")
    running = start_stack(root)
    try:
        wait_until(
            lambda: running.make.poll() is None and running.services() >= {"adminapi", "metrotech-bot"},
            timeout=120,
            interval=0.1,
            message="make run is up",
        )
    finally:
        rc = running.stop(signal.SIGINT)
    assert rc != 0  # make reports the interrupt
    log = running.log.read_text()
    assert "Traceback" not in log, log
    assert running.status()["consumers"] == []  # both exited and removed their status files
