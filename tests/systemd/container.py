"""A Debian 12 container booting a real systemd as PID 1 (systemd-nspawn), for the end-to-end tests.

The OS tree is built once with debootstrap and cached (``$PROMPTWATCH_CACHE``, default
``/var/cache/promptwatch``); each boot runs it with ``--volatile=overlay``, so every change made
inside lands in a tmpfs and the cached tree stays pristine.  The container shares the host's
network.  Commands run inside through ``nsenter`` into the container's PID 1.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

SUITE = "bookworm"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "procps",
    "make",
    # What the bot runs as subprocesses, so the sandbox is tested with them.
    "espeak-ng",
    "sox",
    "libsox-fmt-base",
)
COMPLETE = ".promptwatch-root-complete"


def cache_dir() -> Path:
    return Path(os.environ.get("PROMPTWATCH_CACHE", "/var/cache/promptwatch"))


def missing_tools() -> list[str]:
    """The host tools the end-to-end test needs and does not find."""
    return [tool for tool in ("debootstrap", "systemd-nspawn", "nsenter") if shutil.which(tool) is None]


def ensure_root(cache: Path, *, timeout: float = 900) -> Path:
    """The cached Debian tree, built with debootstrap the first time (about a minute)."""
    key = hashlib.sha256(f"{SUITE} {' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    root = cache / "nspawn" / f"{SUITE}-{key}"
    if (root / COMPLETE).exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    # Two test runs at once (or CI beside a developer) build it once: the second waits for the first.
    with open(root.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / COMPLETE).exists():
            return root
        return _debootstrap(root, timeout)


def _debootstrap(root: Path, timeout: float) -> Path:
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(partial)],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=timeout,
    )
    # A machine id makes the journal persistent across the overlay's lifetime and journalctl happy.
    (partial / "etc" / "machine-id").write_text("")
    (partial / COMPLETE).write_text(" ".join(PACKAGES) + "\n")
    if root.exists():
        shutil.rmtree(root)
    partial.rename(root)
    return root


class Container:
    """One booted container; use as a context manager (powers off and waits on exit)."""

    def __init__(self, root: Path, *, name: str, binds: Sequence[tuple[Path, str, bool]] = (), log: Path) -> None:
        self.root = root
        self.name = name
        self.binds = list(binds)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None

    def __enter__(self) -> Container:
        self.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.poweroff()

    def boot(self, timeout: float = 90) -> None:
        cmd = [
            "systemd-nspawn",
            "--quiet",
            f"--directory={self.root}",
            f"--machine={self.name}",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--volatile=overlay",
            "--console=read-only",
        ]
        for source, target, writable in self.binds:
            cmd.append(f"--bind{'' if writable else '-ro'}={source}:{target}")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self.leader is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            self.leader = self._find_leader()
            if self.leader is None:
                self._check_deadline(deadline, "the container's PID 1 to appear")
                time.sleep(0.05)
        # `is-system-running --wait` needs the manager's bus; poll until it answers.
        while True:
            state = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=timeout).stdout.strip()
            if state in ("running", "degraded"):
                return
            self._check_deadline(deadline, f"the container to finish booting (state {state!r})")
            time.sleep(0.1)

    def _find_leader(self) -> int | None:
        assert self.proc is not None
        for child in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            for pid in child.read_text().split():
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
                except OSError:
                    continue
        return None

    def _check_deadline(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}; console log: {self.log.read_text()[-2000:]}")

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the container as root; stdout/stderr captured as text."""
        assert self.leader is not None, "container not booted"
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        result = subprocess.run(
            ["nsenter", f"--target={self.leader}", "--all", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            output = f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            raise AssertionError(f"{' '.join(argv)} exited with {result.returncode}\n{output}")
        return result

    def sh(self, script: str, *, check: bool = True, timeout: float = 60) -> str:
        return self.run(["sh", "-ec", script], check=check, timeout=timeout).stdout

    def poweroff(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.leader is not None:
            subprocess.run(
                ["nsenter", f"--target={self.leader}", "--all", "--", "systemctl", "poweroff", "--no-block"],
                capture_output=True,
                timeout=30,
                check=False,
            )
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)  # nspawn: ask the container to shut down
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
