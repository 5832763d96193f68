"""Run inside a unit's sandbox by the end-to-end test: does each hardening option hold, and does Python still work?

Started by systemd with a copy of an installed unit (only ExecStart=, Type= and restart settings
changed), with the project's venv interpreter.  Prints one JSON object: check name → observed value.
``--writable PATH`` (repeatable) names the directories the unit should be able to write, ``--peer PID``
the main process of the other service (running as the same user).
Standard library only; this file is not a test module.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import json
import mmap
import os
import pwd
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

CLONE_NEWUSER = 0x10000000
RUNTIME_MODULES = (
    "promptwatch",
    "stasis",
    "adminapi",
    "pydantic_core",
    "pydantic",
    "orjson",
    "watchdog.observers.inotify",
    "fastapi",
    "uvicorn",
    "httpx",
    "websockets",
    "rank_bm25",
    "numpy",
    "prometheus_client",
    "sqlite3",
    "ssl",
)


def status_fields() -> dict[str, str]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def errno_name(action) -> str:  # type: ignore[no-untyped-def]
    """``ok`` when ``action()`` succeeds, else the errno name it failed with."""
    try:
        action()
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))
    return "ok"


def try_write(directory: str) -> str:
    def write() -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".sandbox-probe-")
        os.close(fd)
        os.unlink(name)

    return errno_name(write)


def main() -> None:
    writable = [sys.argv[i + 1] for i, arg in enumerate(sys.argv) if arg == "--writable"]
    out: dict[str, object] = {}
    fields = status_fields()
    out["user"] = pwd.getpwuid(os.getuid()).pw_name
    out["NoNewPrivs"] = fields["NoNewPrivs"]
    out["Seccomp"] = fields["Seccomp"]
    out["CapEff"] = fields["CapEff"]
    out["CapBnd"] = fields["CapBnd"]
    out["Umask"] = fields["Umask"]

    imported = {}
    for name in RUNTIME_MODULES:
        try:
            importlib.import_module(name)
            imported[name] = "ok"
        except Exception as e:  # every import must work under MemoryDenyWriteExecute: report which failed
            imported[name] = f"{type(e).__name__}: {e}"
    out["imports"] = imported

    # MemoryDenyWriteExecute: no writable and executable mapping.
    out["mmap_wx"] = errno_name(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC))
    # ProtectSystem=strict with ReadWritePaths=/StateDirectory=/RuntimeDirectory=.
    out["write"] = {path: try_write(path) for path in ["/etc", "/usr", "/opt", "/var/lib", *writable]}
    # ProtectHome=yes.
    out["home"] = {path: errno_name(lambda p=path: os.listdir(p)) for path in ("/home", "/root")}
    # PrivateTmp=yes: /tmp is a mount of its own.
    mounts = {
        fields[4]: fields[5].split(",")
        for fields in map(str.split, Path("/proc/self/mountinfo").read_text().splitlines())
    }
    out["tmp_is_private"] = "/tmp" in mounts and "/var/tmp" in mounts
    # PrivateDevices=yes: a minimal /dev.
    out["dev"] = sorted(os.listdir("/dev"))
    # ProtectKernelTunables / ProtectControlGroups / ProtectKernelLogs.
    out["proc_sys_write"] = errno_name(lambda: open("/proc/sys/kernel/hostname", "w").close())
    out["sys_mount"] = "ro" if "ro" in mounts.get("/sys", []) else "rw"
    out["cgroup_write"] = try_write("/sys/fs/cgroup")
    out["kmsg"] = errno_name(lambda: open("/proc/kmsg", "rb").close())
    # ProtectProc=invisible, ProcSubset=pid.
    out["proc_1_visible"] = os.path.exists("/proc/1")
    out["proc_meminfo_visible"] = os.path.exists("/proc/meminfo")
    peer = next(sys.argv[i + 1] for i, arg in enumerate(sys.argv) if arg == "--peer")
    out["peer_visible"] = os.path.exists(f"/proc/{peer}/stat")
    # RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6.
    families = {"AF_UNIX": socket.AF_UNIX, "AF_INET": socket.AF_INET, "AF_INET6": socket.AF_INET6}
    families |= {"AF_PACKET": socket.AF_PACKET, "AF_NETLINK": socket.AF_NETLINK}
    out["sockets"] = {
        name: errno_name(lambda f=family: socket.socket(f, socket.SOCK_DGRAM).close())
        for name, family in families.items()
    }
    # RestrictNamespaces=yes (an unprivileged user namespace is otherwise allowed).
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.unshare(CLONE_NEWUSER)
    out["unshare_user"] = "ok" if rc == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
    # SystemCallFilter=~@resources (raising one's own nice value is otherwise allowed).
    out["setpriority"] = errno_name(lambda: os.setpriority(os.PRIO_PROCESS, 0, 5))
    # The bot's subprocesses: espeak-ng and sox under the same sandbox.
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "probe.wav"
        espeak = subprocess.run(["espeak-ng", "-v", "ru", "-w", str(wav), "проверка"], capture_output=True, text=True)
        out["espeak"] = espeak.returncode if espeak.returncode else wav.stat().st_size > 44
        sox = subprocess.run(
            ["sox", str(wav), "-r", "8000", "-c", "1", str(Path(tmp) / "out.wav")], capture_output=True
        )
        out["sox"] = sox.returncode
    print(json.dumps(out, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
