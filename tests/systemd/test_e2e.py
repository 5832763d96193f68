"""End to end under a real systemd: boot Debian 12 in a container, `make install` + `make install-units`, and
check what the operator relies on — readiness, reload, restart, journald priorities, sandbox, clean stop.

Run by ``make test-systemd`` (root, debootstrap and systemd-container installed).  The tests share one
booted container and run in file order: each step starts from the state the previous one left.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..readme import Block, readme_blocks, script_of
from ..stasis.ari_double import AriDouble
from ..util import wait_until
from .container import Container, cache_dir, ensure_root, missing_tools
from .render import MAX_EXPOSURE, REPO, SEED_FASTAPI_UNIT, SERVICES, make, offline_exposure, parse_exposure


def _problem() -> str:
    """Why this machine cannot run the test ("" when it can)."""
    if missing := missing_tools():
        return f"needs {', '.join(missing)} (apt-get install debootstrap systemd-container)"
    return "needs root" if os.geteuid() != 0 else ""


PROBLEM = _problem()
REQUIRED = os.environ.get("PROMPTWATCH_SYSTEMD_REQUIRED") == "1"

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.timeout(900),
    pytest.mark.skipif(bool(PROBLEM) and not REQUIRED, reason=f"the systemd end-to-end test {PROBLEM}"),
]

BOT = "metrotech-bot.service"
PANEL = "metrotech-fastapi.service"
PROMPTS = "/etc/metrotech/prompts/prompts.json"
OLD_GREETING = "Здравствуйте! Это настройки, сделанные до переезда."
ARI_PASSWORD = "e2e-secret"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", ".mypy_cache", ".ruff_cache", "var"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    box: Container
    port: int
    ari_port: int
    token: str
    install_output: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.box.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self, unit: str) -> int:
        return int(self.show(unit, "MainPID")["MainPID"])

    def journal(self, unit: str, *args: str, since_us: int = 0) -> list[dict[str, Any]]:
        """Journal entries of ``unit`` (``journalctl -u UNIT -o json ARGS``) received after ``since_us``."""
        out = self.box.run(["journalctl", "--no-pager", "-u", unit, "-o", "json", *args]).stdout
        entries = [json.loads(line) for line in out.splitlines() if line.strip()]
        return [e for e in entries if int(e["__REALTIME_TIMESTAMP"]) >= since_us]

    def wait_for_line(self, unit: str, text: str, *args: str, since_us: int, timeout: float = 10) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next((e for e in self.journal(unit, *args, since_us=since_us) if text in message(e)), None)

        return wait_until(find, timeout=timeout, interval=0.05, message=f"{text!r} in journalctl -u {unit} {args}")

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def bot_status(self) -> dict[str, Any]:
        """The bot's entry in the shared status directory."""
        pid = self.main_pid(BOT)
        return json.loads(self.box.run(["cat", f"/run/metrotech/status/metrotech-bot.{pid}.json"]).stdout)


SYSTEMD_BLOCKS = [b for b in readme_blocks(REPO / "README.md") if b.kind == "systemd"]


def message(entry: dict[str, Any]) -> str:
    value = entry.get("MESSAGE", "")
    return bytes(value).decode(errors="replace") if isinstance(value, list) else str(value)


def now_us() -> int:
    return time.time_ns() // 1000


def save_prompts(stack: Stack, greeting: str) -> str:
    """Save through the admin API with a new greeting; returns the new sha256."""
    current = stack.api("GET", "/api/prompts")
    assert current.status_code == 200, current.text
    document = current.json()
    document["greeting"] = greeting
    response = stack.api("PUT", "/api/prompts", json=document, headers={"If-Match": current.headers["ETag"]})
    assert response.status_code in (200, 201), response.text
    return response.headers["ETag"].strip('"')


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if PROBLEM:  # only reached with PROMPTWATCH_SYSTEMD_REQUIRED=1 (make test-systemd, CI)
        pytest.fail(f"the systemd end-to-end test {PROBLEM}")

    cache = cache_dir()
    root = ensure_root(cache)
    work = tmp_path_factory.mktemp("e2e")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=COPY_IGNORE, symlinks=True)
    # Wheels built on the host (same Python minor version and libc as Debian 12), installed offline inside.
    wheels = cache / "wheels"
    pip = [str(REPO / ".venv/bin/python"), "-m", "pip", "--disable-pip-version-check"]
    # Debian 12's Python is 3.11.2: redis-py needs async-timeout below 3.11.3, which the host's newer Python skips.
    extra = ["setuptools>=68", "wheel", "async-timeout>=4.0.3"]
    wheel_cmd = [*pip, "wheel", "--quiet", "--wheel-dir", str(wheels), str(source), *extra]
    pip_run = subprocess.run(wheel_cmd, capture_output=True, text=True, timeout=600)
    assert pip_run.returncode == 0, pip_run.stderr
    for built in wheels.glob("promptwatch-*.whl"):
        built.unlink()  # `make install` builds the project itself, from the source
    shutil.rmtree(source / "build", ignore_errors=True)

    port, ari_port = free_port(), free_port()
    token = secrets.token_urlsafe(24)
    binds = [(source, "/src", True), (wheels, "/wheelhouse", False)]
    with Container(root, name=f"promptwatch-e2e-{os.getpid()}", binds=binds, log=work / "console.log") as box:
        box.run(
            ["make", "-C", "/src", "install", "PIP_FLAGS=--no-index --find-links=/wheelhouse"],
            timeout=600,
        )
        # Asterisk's user exists on a real PBX: install-units puts it in the group that reads the sounds.
        box.run(["useradd", "--system", "--no-create-home", "asterisk"])
        # The hand-made setup of the operator's notes: units of the same names, enabled in multi-user.target.
        for unit in SERVICES:
            box.run(["sh", "-c", f"cat > /etc/systemd/system/{unit}"], input=SEED_FASTAPI_UNIT)
        box.run(["systemctl", "enable", *SERVICES])
        # An install from before the layout change: prompts, kb and env side by side in a group-writable dir.
        old_prompts = json.loads((REPO / "config/prompts.json").read_text())
        old_prompts["greeting"] = OLD_GREETING
        box.sh("mkdir -p /etc/metrotech/kb && chmod 2775 /etc/metrotech")
        box.run(["sh", "-c", "cat > /etc/metrotech/prompts.json"], input=json.dumps(old_prompts, ensure_ascii=False))
        box.run(["sh", "-c", "cat > /etc/metrotech/kb/old.md"], input="# Старое\n\nФайл базы знаний до переезда.\n")
        old_env = "PROMPTS_PATH=/etc/metrotech/prompts.json\nKB_DIR=/etc/metrotech/kb\n"
        box.run(["sh", "-c", "cat > /etc/metrotech/metrotech.env"], input=old_env)
        output = box.run(["make", "-s", "-C", "/src", "install-units"], timeout=120).stdout
        # The operator's settings: a free port for the panel, a token, and an Asterisk that is not there.
        env = (
            f"ADMIN_PORT={port}\nADMIN_TOKEN={token}\n"
            f"ARI_URL=http://127.0.0.1:{ari_port}\nARI_PASSWORD={ARI_PASSWORD}\nARI_RECONNECT_MAX_SECONDS=1\n"
        )
        box.sh(f"printf '%s' '{env}' >> /etc/metrotech/metrotech.env")
        stack = Stack(box, port, ari_port, token, output)
        try:
            yield stack
        finally:
            journal = box.run(["journalctl", "--no-pager", "-b", "-o", "short-precise"], check=False).stdout
            (work / "journal.txt").write_text(journal)
            print(f"container journal: {work / 'journal.txt'}")


def test_install_units_replaces_the_hand_made_units_and_keeps_backups(stack: Stack) -> None:
    box = stack.box
    assert "installed  /etc/systemd/system/metrotech-bot.service" in stack.install_output
    listed = box.sh("ls /var/backups/metrotech").split()
    backups = [name for name in listed if ".service." in name]
    assert sorted(name.split(".service.")[0] for name in backups) == ["metrotech-bot", "metrotech-fastapi"]
    assert [name.split(".env.")[0] for name in listed if ".service." not in name] == ["metrotech"], listed
    assert box.sh(f"cat /var/backups/metrotech/{backups[0]}") == SEED_FASTAPI_UNIT
    # The old enablement links in multi-user.target.wants are gone; the target carries the services now.
    wants = box.sh("ls /etc/systemd/system/multi-user.target.wants").split()
    assert "metrotech.target" in wants and not set(SERVICES) & set(wants), wants
    assert sorted(box.sh("ls /etc/systemd/system/metrotech.target.wants").split()) == sorted(SERVICES)


def test_install_units_creates_user_directories_and_enables_the_target(stack: Stack) -> None:
    box = stack.box
    assert box.run(["id", "-nG", "metrotech"]).stdout.split() == ["metrotech"]
    stats = box.sh(
        "stat -c '%n %a %U %G' /etc/metrotech /etc/metrotech/metrotech.env /etc/metrotech/prompts "
        "/etc/metrotech/prompts/prompts.json /etc/metrotech/prompts/kb /var/lib/metrotech /var/lib/metrotech/sounds "
        "/run/metrotech/status"
    ).splitlines()
    assert stats == [
        "/etc/metrotech 755 root root",
        "/etc/metrotech/metrotech.env 640 root metrotech",
        "/etc/metrotech/prompts 2775 root metrotech",
        "/etc/metrotech/prompts/prompts.json 664 metrotech metrotech",
        "/etc/metrotech/prompts/kb 2775 metrotech metrotech",
        "/var/lib/metrotech 750 metrotech metrotech",
        "/var/lib/metrotech/sounds 2750 metrotech metrotech",
        "/run/metrotech/status 750 metrotech metrotech",
    ]
    for unit in (*SERVICES, "metrotech.target"):
        assert box.run(["systemctl", "is-enabled", unit]).stdout.strip() == "enabled"
    # The older install was moved, not replaced: the operator's prompts and kb, the env file's paths.
    assert "moved      /etc/metrotech/prompts.json -> /etc/metrotech/prompts/prompts.json" in stack.install_output
    assert OLD_GREETING in box.run(["cat", PROMPTS]).stdout
    assert box.sh("ls /etc/metrotech/prompts/kb").split() == ["old.md"]
    env = box.run(["cat", "/etc/metrotech/metrotech.env"]).stdout
    assert "PROMPTS_PATH=/etc/metrotech/prompts/prompts.json\nKB_DIR=/etc/metrotech/prompts/kb\n" in env
    # A group member (Asterisk is one) can edit the prompts, but not rename or replace the env file.
    denied = box.run(["runuser", "-u", "asterisk", "--", "mv", "/etc/metrotech/metrotech.env", "/tmp/x"], check=False)
    assert denied.returncode != 0 and box.run(["test", "-f", "/etc/metrotech/metrotech.env"]).returncode == 0
    # Re-running is safe: nothing replaced, nothing backed up, the operator's env file kept.
    again = box.run(["make", "-s", "-C", "/src", "install-units"], timeout=120).stdout
    assert "installed" not in again and "backed up" not in again, again
    assert f"ADMIN_PORT={stack.port}" in box.run(["cat", "/etc/metrotech/metrotech.env"]).stdout


def test_target_starts_both_services_and_they_reach_readiness(stack: Stack) -> None:
    started = time.monotonic()
    stack.box.run(["systemctl", "start", "metrotech.target"], timeout=120)
    assert time.monotonic() - started < 60
    for unit in SERVICES:
        props = stack.show(unit, "Type", "ActiveState", "SubState", "Result", "NRestarts", "StatusText")
        assert props["Type"] == "notify"
        # Type=notify: `active` is reached only after READY=1, with Asterisk down (nothing listens on ARI_URL).
        assert (props["ActiveState"], props["SubState"], props["NRestarts"]) == ("active", "running", "0"), props
    assert stack.show("metrotech.target", "ActiveState")["ActiveState"] == "active"


def test_asterisk_can_read_the_sounds_the_bot_synthesises(stack: Stack) -> None:
    assert "added user asterisk to group metrotech" in stack.install_output
    box = stack.box
    sounds = wait_until(
        lambda: box.sh("ls /var/lib/metrotech/sounds").split(), timeout=30, message="the bot pre-synthesised phrases"
    )
    head = box.run(["runuser", "-u", "asterisk", "--", "head", "-c", "4", f"/var/lib/metrotech/sounds/{sounds[0]}"])
    assert head.stdout == "RIFF"
    denied = box.run(["runuser", "-u", "asterisk", "--", "touch", "/var/lib/metrotech/sounds/x"], check=False)
    assert denied.returncode != 0, "Asterisk reads the sounds, it does not write them"


def test_healthz_answers(stack: Stack) -> None:
    response = httpx.get(stack.url + "/healthz", timeout=10)
    assert response.status_code == 200
    assert stack.api("GET", "/api/prompts").status_code == 200
    assert httpx.get(stack.url + "/api/prompts", timeout=10).status_code == 401


def test_systemctl_status_shows_the_status_line(stack: Stack) -> None:
    sha = stack.bot_status()["sha256"]
    for unit in SERVICES:
        text = stack.show(unit, "StatusText")["StatusText"]
        assert text, f"{unit} sent no STATUS="
        status = stack.box.run(["systemctl", "status", "--no-pager", unit], check=False).stdout
        assert f'Status: "{text}' in status, status
    assert sha[:8] in stack.show(BOT, "StatusText")["StatusText"]


@pytest.mark.parametrize("unit", SERVICES)
def test_every_hardening_option_holds_and_python_works(stack: Stack, unit: str) -> None:
    """Run a probe under a copy of the installed unit: same sandbox, only ExecStart= and restarts changed."""
    box = stack.box
    probe = unit.replace(".service", "-probe.service")
    writable = ["/var/lib/metrotech", "/run/metrotech/status"] + (["/etc/metrotech/prompts"] if unit == PANEL else [])
    args = " ".join(f"--writable {path}" for path in writable)
    args += f" --peer {stack.main_pid(BOT if unit == PANEL else PANEL)}"
    box.sh(
        f"""
        sed -e '/^\\[Install\\]/,$d' /etc/systemd/system/{unit} > /run/systemd/system/{probe}
        mkdir -p /run/systemd/system/{probe}.d
        cat > /run/systemd/system/{probe}.d/probe.conf <<'EOF'
[Service]
Type=exec
Restart=no
WatchdogSec=0
ExecReload=
ExecStart=
ExecStart=/opt/metrotech/venv/bin/python /src/tests/systemd/sandbox_probe.py {args}
SyslogIdentifier=sandbox-probe
EOF
        systemctl daemon-reload
        """
    )
    since = now_us()
    box.run(["systemctl", "start", probe], timeout=60)
    wait_until(
        lambda: stack.show(probe, "ActiveState")["ActiveState"] in ("inactive", "failed"), timeout=60, interval=0.1
    )
    assert stack.show(probe, "Result")["Result"] == "success"
    lines = [message(e) for e in stack.journal(probe, since_us=since)]
    found = json.loads(next(line for line in lines if line.startswith("{")))
    box.sh(f"rm -rf /run/systemd/system/{probe} /run/systemd/system/{probe}.d; systemctl daemon-reload")

    assert found["user"] == "metrotech"
    assert found["NoNewPrivs"] == "1"  # NoNewPrivileges=
    assert found["Seccomp"] == "2"  # SystemCallFilter=
    assert int(found["CapEff"], 16) == 0 and int(found["CapBnd"], 16) == 0  # CapabilityBoundingSet=
    assert found["Umask"] == "0027"  # UMask=
    assert all(v == "ok" for v in found["imports"].values()), found["imports"]  # Python under MemoryDenyWriteExecute
    assert found["mmap_wx"] == "EPERM"  # MemoryDenyWriteExecute=
    assert {p: r for p, r in found["write"].items() if p in ("/etc", "/usr", "/opt", "/var/lib")} == {
        "/etc": "EROFS",
        "/usr": "EROFS",
        "/opt": "EROFS",
        "/var/lib": "EROFS",
    }  # ProtectSystem=strict
    assert all(found["write"][p] == "ok" for p in writable), found["write"]  # StateDirectory=, ReadWritePaths=
    assert all(r in ("EACCES", "ENOENT") for r in found["home"].values()), found["home"]  # ProtectHome=
    assert found["tmp_is_private"]  # PrivateTmp=
    assert "console" not in found["dev"] and "null" in found["dev"], found["dev"]  # PrivateDevices=
    # ProtectKernelTunables= (ProcSubset=pid hides /proc/sys altogether).
    assert found["proc_sys_write"] in ("EROFS", "EACCES", "ENOENT") and found["sys_mount"] == "ro"
    assert found["cgroup_write"] in ("EROFS", "EACCES")  # ProtectControlGroups=
    assert found["kmsg"] in ("EACCES", "ENOENT", "EPERM")  # ProtectKernelLogs=
    assert not found["proc_1_visible"]  # ProtectProc=invisible
    assert not found["proc_meminfo_visible"]  # ProcSubset=pid
    assert found["peer_visible"]  # ... but the other service (same user) is, so the panel sees the bot alive
    assert found["sockets"] == {  # RestrictAddressFamilies=
        "AF_UNIX": "ok",
        "AF_INET": "ok",
        "AF_INET6": "ok",
        "AF_PACKET": "EAFNOSUPPORT",
        "AF_NETLINK": "EAFNOSUPPORT",
    }
    assert found["unshare_user"] == "EPERM"  # RestrictNamespaces=
    assert found["setpriority"] == "EPERM"  # SystemCallFilter=~@resources
    assert found["espeak"] is True and found["sox"] == 0  # the bot's subprocesses work in the sandbox


def test_security_inside_agrees_with_the_offline_score(stack: Stack, tmp_path: Path) -> None:
    make("install-units", destdir=tmp_path)
    offline = offline_exposure(tmp_path / "etc/systemd/system")
    online = parse_exposure(stack.box.run(["systemd-analyze", "security", "--no-pager", *SERVICES]).stdout)
    assert online == offline, (online, offline)
    assert all(score <= MAX_EXPOSURE for score in online.values()), online


def test_admin_save_is_live_in_the_bot_within_a_second(stack: Stack) -> None:
    since = now_us()
    sha = save_prompts(stack, "Здравствуйте! Это проверка горячей перезагрузки.")
    entry = stack.wait_for_line(BOT, f"prompts reloaded sha={sha[:8]} source=inotify", since_us=since, timeout=10)
    latency = (int(entry["__REALTIME_TIMESTAMP"]) - since) / 1e6
    assert latency < 1.0, f"the bot logged the reload {latency:.3f}s after the save started"
    assert entry["PRIORITY"] == "6" and entry["SYSLOG_IDENTIFIER"] == "metrotech-bot"
    # The panel's own log is its own; the shared status directory shows the bot on the new sha.
    assert all(e["SYSLOG_IDENTIFIER"] == "metrotech-fastapi" for e in stack.journal(PANEL, since_us=since)), (
        "mixed logs"
    )
    assert stack.bot_status()["sha256"] == sha
    consumers = stack.api("GET", "/api/status").json()
    assert any(c.get("service") == "metrotech-bot" and c.get("sha256") == sha for c in consumers["consumers"]), (
        consumers
    )


def test_kill_9_of_the_bot_is_restarted_by_systemd(stack: Stack) -> None:
    pid = stack.main_pid(BOT)
    stack.box.run(["kill", "-9", str(pid)])

    def restarted() -> bool:
        props = stack.show(BOT, "ActiveState", "NRestarts", "MainPID")
        return props["ActiveState"] == "active" and props["MainPID"] not in ("0", str(pid))

    wait_until(restarted, timeout=40, interval=0.2, message="metrotech-bot restarted after kill -9")  # RestartSec=10
    assert stack.show(BOT, "NRestarts")["NRestarts"] == "1"


def test_the_bot_pings_the_watchdog(stack: Stack) -> None:
    box = stack.box
    # WatchdogSec=2 instead of 30 so that surviving several periods takes seconds, not minutes.
    box.sh(
        f"mkdir -p /run/systemd/system/{BOT}.d && printf '[Service]\\nWatchdogSec=2\\n' "
        f"> /run/systemd/system/{BOT}.d/50-watchdog.conf && systemctl daemon-reload && systemctl restart {BOT}"
    )
    try:
        pid = stack.main_pid(BOT)
        first = int(stack.show(BOT, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"])

        def pinged_for_three_periods() -> bool:
            return int(stack.show(BOT, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]) - first > 6_000_000

        wait_until(pinged_for_three_periods, timeout=15, interval=0.2, message="WATCHDOG=1 pings for 6 s")
        props = stack.show(BOT, "ActiveState", "MainPID", "WatchdogUSec")
        assert props == {"ActiveState": "active", "MainPID": str(pid), "WatchdogUSec": "2s"}, props
    finally:
        box.sh(f"rm -rf /run/systemd/system/{BOT}.d && systemctl daemon-reload && systemctl restart {BOT}")


def test_systemctl_reload_reloads_the_prompts_with_source_signal(stack: Stack) -> None:
    box = stack.box
    # Without its watcher the bot only learns of a change through the reload, so the reload is what applies it.
    box.sh(
        f"mkdir -p /run/systemd/system/{BOT}.d && printf '[Service]\\nEnvironment=PROMPTS_HOT_RELOAD=false\\n' "
        f"> /run/systemd/system/{BOT}.d/50-no-watch.conf && systemctl daemon-reload && systemctl restart {BOT}"
    )
    try:
        old = stack.bot_status()["sha256"]
        sha = save_prompts(stack, "Здравствуйте! Эту версию применяет systemctl reload.")
        assert stack.bot_status()["sha256"] == old
        since = now_us()
        box.run(["systemctl", "reload", BOT])
        stack.wait_for_line(BOT, f"prompts reloaded sha={sha[:8]} source=signal", since_us=since, timeout=10)
        wait_until(lambda: stack.bot_status()["sha256"] == sha, timeout=5, message="status file after reload")
        assert stack.show(BOT, "ActiveState")["ActiveState"] == "active"
    finally:
        box.sh(f"rm -rf /run/systemd/system/{BOT}.d && systemctl daemon-reload && systemctl restart {BOT}")


def test_a_broken_prompts_file_is_an_error_in_the_journal_and_the_bot_keeps_the_old_sha(stack: Stack) -> None:
    box = stack.box
    good = box.run(["cat", PROMPTS]).stdout
    status = stack.bot_status()
    pid = stack.main_pid(BOT)
    since = now_us()
    box.sh(f"printf '%s' '{{\"greeting\": \"оборвано' > {PROMPTS}")  # written in place, as an editor would
    try:
        entry = stack.wait_for_line(
            BOT, f"prompts rejected, keeping sha={status['sha256'][:8]}", "-p", "err", since_us=since, timeout=10
        )
        assert entry["PRIORITY"] == "3"
        assert stack.show(BOT, "ActiveState")["ActiveState"] == "active"
        assert stack.main_pid(BOT) == pid
        now = stack.bot_status()
        assert now["sha256"] == status["sha256"] and now["last_error"]
        # -p err is only errors: the info lines of the same service are not in it.
        assert all(int(e["PRIORITY"]) <= 3 for e in stack.journal(BOT, "-p", "err"))
    finally:
        box.run(["sh", "-c", f"cat > {PROMPTS}"], input=good)
    stack.wait_for_line(BOT, "prompts file is valid again", since_us=since, timeout=10)


def test_restarting_the_target_restarts_both_services(stack: Stack) -> None:
    before = {unit: stack.main_pid(unit) for unit in SERVICES}
    stack.box.run(["systemctl", "restart", "metrotech.target"], timeout=120)
    for unit in SERVICES:
        assert stack.show(unit, "ActiveState")["ActiveState"] == "active"
        assert stack.main_pid(unit) != before[unit]


@pytest.mark.parametrize("block", SYSTEMD_BLOCKS, ids=str)
def test_readme_systemd_example_runs_as_written(stack: Stack, block: Block) -> None:
    """The README's systemd examples, run as root from the checkout inside the booted container (``sudo`` is
    the root shell here; ``make install`` takes its wheels offline through ``PIP_FLAGS``)."""
    script = script_of(block, port=stack.port, logs=Path("/tmp"))
    shim = "sudo() { \"$@\"; }\nexport PIP_FLAGS='--no-index --find-links=/wheelhouse'\ncd /src\nrm -f /tmp/bg.pids\n"
    result = stack.box.run(["bash", "-c", shim + script], check=False, timeout=600)
    assert result.returncode == 0, f"{block}:\n{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    stack.box.run(["bash", "-c", "[ -f /tmp/bg.pids ] && kill $(cat /tmp/bg.pids) || true"], check=False)
    for unit in SERVICES:
        wait_until(lambda unit=unit: stack.show(unit, "ActiveState")["ActiveState"] == "active", timeout=60)


def test_stop_lets_a_call_in_progress_use_its_grace_period_and_exits_cleanly(stack: Stack) -> None:
    """SIGTERM with a call up: the call keeps CALL_GRACE_SECONDS, then goodbye and hang-up; the bot exits 0
    before TimeoutStopSec= (its grace + 15 s), so systemd never has to kill it."""
    timeout = float(stack.show(BOT, "TimeoutStopUSec")["TimeoutStopUSec"].removesuffix("s"))
    environment = stack.show(BOT, "Environment")["Environment"].split()
    grace = float(next(v.split("=", 1)[1] for v in environment if v.startswith("CALL_GRACE_SECONDS=")))
    assert grace + 10 <= timeout
    # Asterisk comes up (the test double of ARI, on the host's loopback the container shares); the caller stays
    # silent, and each recording ends at the bot's maxDurationSeconds (RECORD_MAX_SECONDS, 15 s), as Asterisk's would.
    with AriDouble(port=stack.ari_port, password=ARI_PASSWORD, silence_timeout=15) as ari:
        wait_until(lambda: "ARI connected" in stack.show(BOT, "StatusText")["StatusText"], timeout=20, interval=0.1)
        channel = ari.place_call()
        wait_until(lambda: ari.channels[channel].recordings, timeout=20, interval=0.05, message="the bot listens")
        wait_until(lambda: "1 call" in stack.show(BOT, "StatusText")["StatusText"], timeout=10, interval=0.05)
        started = time.monotonic()
        stack.box.run(["systemctl", "stop", BOT], timeout=120)
        elapsed = time.monotonic() - started
        assert grace - 1 <= elapsed < timeout, f"stopped after {elapsed:.1f}s (grace {grace}s, timeout {timeout}s)"
        assert ari.channels[channel].hung_up_by == "app"
        # The double finishes the recording the hang-up interrupted before it shuts down.
        wait_until(lambda: ari.channels[channel].recording is None, timeout=10, interval=0.05)
    props = stack.show(BOT, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    # ExecMainCode=1 is CLD_EXITED: the process exited by itself with status 0, it was not killed.
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0"}
    call = stack.api("GET", f"/api/calls/{channel}").json()
    assert call["end_reason"] == "shutdown" and call["prompts_sha256"], call
    # Stopping the target stops the rest (PartOf=); `systemctl stop` of a target does not wait for its services.
    stack.box.run(["systemctl", "stop", "metrotech.target"], timeout=120)
    wait_until(lambda: stack.show(PANEL, "ActiveState")["ActiveState"] == "inactive", timeout=30, interval=0.1)
    props = stack.show(PANEL, "Result", "ExecMainCode", "ExecMainStatus")
    assert props == {"Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0"}, props
    killed = [message(e) for e in stack.journal(BOT) + stack.journal(PANEL) if "SIGKILL" in message(e)]
    assert not killed, killed


def test_uninstall_units_keeps_config_and_data(stack: Stack) -> None:
    box = stack.box
    box.run(["make", "-s", "-C", "/src", "uninstall-units"], timeout=120)
    listed = box.run(["systemctl", "list-unit-files", "--no-legend", "metrotech*"], check=False).stdout
    assert listed.strip() == ""
    box.run(["test", "-f", PROMPTS])
    box.run(["test", "-f", "/etc/metrotech/metrotech.env"])
    box.run(["test", "-d", "/var/lib/metrotech"])
    assert not box.run(["test", "-e", "/etc/systemd/system/metrotech-bot.service"], check=False).returncode == 0


def test_install_units_again_with_start_1_brings_the_stack_back_on_the_kept_config(stack: Stack) -> None:
    box = stack.box
    output = box.run(["make", "-s", "-C", "/src", "install-units", "START=1"], timeout=180).stdout
    assert "kept       /etc/metrotech/metrotech.env" in output and "started    metrotech.target" in output
    for unit in SERVICES:
        assert stack.show(unit, "ActiveState")["ActiveState"] == "active"
    assert httpx.get(stack.url + "/healthz", timeout=10).status_code == 200
