"""Real ``redis-server`` and ``redis-sentinel`` processes (Debian's) for the tests: one set per test.

Data nodes listen on a unix socket in the test's directory and, when asked, on a loopback TCP port
(Sentinel needs TCP).  Persistence is off: "restarted empty" is a restart.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.util import wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server``: start, kill -9, restart (empty), a client."""

    def __init__(
        self,
        directory: Path,
        *,
        tcp: bool = False,
        replica_of: RedisServer | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.extra_args = extra_args
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "redis.sock"
        self.port = free_port() if tcp or replica_of is not None else 0
        self.replica_of = replica_of
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}" if not self.port else f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._pings, timeout=10, interval=0.01, message=f"redis-server in {self.dir} answers")

    def _pings(self) -> bool:
        try:
            with redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1) as r:
                return bool(r.ping())
        except (redis.RedisError, OSError):
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    def kill(self) -> None:
        """kill -9, like a crash; the socket file is left behind as a crash leaves it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


class Sentinels:
    """``count`` redis-sentinel processes monitoring ``primary`` as service ``name``."""

    def __init__(self, directory: Path, primary: RedisServer, *, name: str = "mymaster", count: int = 3) -> None:
        self.name = name
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        for i in range(count):
            port = free_port()
            conf = directory / f"sentinel-{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"logfile {directory / f'sentinel-{i}.log'}\n"
                f"sentinel monitor {name} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {name} 300\n"
                f"sentinel failover-timeout {name} 2000\n"
                f"sentinel parallel-syncs {name} 1\n"
            )
            self.procs.append(subprocess.Popen([REDIS_SENTINEL, str(conf)], stdout=subprocess.DEVNULL))
            self.ports.append(port)
        for port in self.ports:
            wait_until(lambda p=port: self._primary(p) is not None, timeout=10, message=f"sentinel on {port}")

    def _primary(self, port: int) -> tuple[str, int] | None:
        try:
            with redis.Redis(port=port, socket_timeout=1) as r:
                reply = r.execute_command("SENTINEL", "get-master-addr-by-name", self.name)
        except (redis.RedisError, OSError):
            return None
        return (reply[0].decode(), int(reply[1])) if reply else None

    def primary_port(self) -> int | None:
        found = self._primary(self.ports[0])
        return found[1] if found else None

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"redis+sentinel://{hosts}/{self.name}"

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def wait_replicated(replica: RedisServer, timeout: float = 10.0) -> None:
    def synced() -> bool:
        info = replica.client().info("replication")
        return info.get("master_link_status") == "up"

    wait_until(synced, timeout=timeout, interval=0.01, message="the replica is in sync")


def deadline(seconds: float) -> float:
    return time.monotonic() + seconds
