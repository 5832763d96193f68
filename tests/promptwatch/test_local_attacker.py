"""A second local user against root's promptwatch: pre-created status dirs, planted symlinks, forged entries.

The attacker is a real other uid (``setpriv --reuid=65534``, nobody), the victim runs as root, as
``promptwatch watch``/``write`` and the panel do on a server.  The layout is the one of a deployment:
a directory root owns and a group (here nobody's group) may write to.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import orjson
import pytest

from promptwatch import (
    HotPrompts,
    SymlinkRefusedError,
    UnsafeDirectoryError,
    atomic_write,
    read_file,
    read_statuses,
    write_document,
)
from promptwatch.status import ConsumerStatus, default_status_dir, process_start_ticks, write_status
from tests.attacker import NOBODY, as_nobody
from tests.util import needs_root, wait_until

from .conftest import ProcessFactory
from .helpers import PROMPTWATCH, make_doc, run_cli

pytestmark = needs_root

SECRET = b"root-only secret\n"


@pytest.fixture
def secret(world: Path) -> Path:
    """A root-only file outside every directory the attacker can write."""
    safe = world / "root-only"
    safe.mkdir(mode=0o700)
    path = safe / "secret"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


@pytest.fixture
def group_dir(world: Path) -> Path:
    """Like /etc/metrotech/prompts: root's, writable by a group the attacker is in (root:65534 2775)."""
    path = world / "prompts"
    path.mkdir()
    os.chown(path, 0, NOBODY)
    path.chmod(0o2775)
    (path / "prompts.json").write_bytes(make_doc(1))
    return path


@pytest.fixture
def shared_tmp(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sticky world-writable temp dir (like /tmp) that the default status directory lives in.

    (``tmp_path`` first: pytest picks its own base directory from the temp dir before it is patched.)
    """
    tmp = world / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.delenv("PROMPTS_STATUS_DIR", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    return tmp


# -- the default status directory -------------------------------------------------------------


def test_a_status_dir_pre_created_by_another_user_is_refused_and_nothing_is_overwritten(
    shared_tmp: Path, secret: Path, prompts_file: Path
) -> None:
    status_dir = default_status_dir()
    assert status_dir == shared_tmp / "promptwatch-0" / "status"
    # The attacker prepares the directory and plants the entry our process will write, pointing at the secret.
    as_nobody("mkdir", "-m", "0777", "-p", status_dir)
    as_nobody("ln", "-s", secret, status_dir / f"metrotech-bot.{os.getpid()}.json")
    hot = HotPrompts(prompts_file, service="metrotech-bot", hot_reload=False)
    hot.close()
    assert secret.read_bytes() == SECRET
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    with pytest.raises(UnsafeDirectoryError) as exc:
        read_statuses(status_dir)
    assert str(exc.value).startswith(f"{shared_tmp / 'promptwatch-0'}: is owned by uid {NOBODY}")


def test_promptwatch_status_refuses_a_foreign_default_dir(shared_tmp: Path, prompts_file: Path) -> None:
    as_nobody("mkdir", "-m", "0777", "-p", shared_tmp / "promptwatch-0" / "status")
    env = {k: v for k, v in os.environ.items() if k not in ("PROMPTS_STATUS_DIR", "RUNTIME_DIRECTORY")}
    result = run_cli("status", prompts_file, env={**env, "TMPDIR": str(shared_tmp)})
    assert result.returncode == 1
    assert f"is owned by uid {NOBODY}" in result.stderr and "refusing to use it" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_default_status_dir_is_created_private_and_tightened(shared_tmp: Path, prompts_file: Path) -> None:
    status_dir = default_status_dir()
    status_dir.parent.mkdir(mode=0o755)  # ours, from an older version, too open
    hot = HotPrompts(prompts_file, service="svc", hot_reload=False)
    try:
        for level in (status_dir.parent, status_dir):
            st = level.lstat()
            assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700, level
        assert [s.service for s in read_statuses(status_dir)] == ["svc"]
    finally:
        hot.close()


def test_a_symlinked_default_status_dir_is_refused(shared_tmp: Path, world: Path, prompts_file: Path) -> None:
    decoy = world / "decoy"
    decoy.mkdir()
    os.symlink(decoy, shared_tmp / "promptwatch-0")  # even one of ours: the path must be the directory itself
    with pytest.raises(UnsafeDirectoryError, match="is a symlink"):
        write_status(default_status_dir(), forged_status("svc", os.getpid()))
    assert list(decoy.iterdir()) == []


# -- forged entries -----------------------------------------------------------------------------


def forged_status(
    service: str, pid: int, sha: str = "f" * 64, path: str = "/etc/metrotech/prompts.json"
) -> ConsumerStatus:
    now = time.time()
    return ConsumerStatus(
        service=service,
        pid=pid,
        path=path,
        sha256=sha,
        loaded_at=now,
        source="inotify",
        mode="inotify",
        last_error=None,
        updated_at=now,
        started_at=now,
        hostname=os.uname().nodename,
        proc_start=process_start_ticks(pid),
    )


def test_entries_written_by_another_user_are_not_trusted(group_dir: Path, world: Path) -> None:
    """A group member forges an 'in sync' consumer and a ghost with a live pid: neither shows."""
    status_dir = world / "status"
    status_dir.mkdir()
    os.chown(status_dir, 0, NOBODY)
    status_dir.chmod(0o2775)
    mine = forged_status("real", os.getpid())
    write_status(status_dir, mine)
    # pid 1 is alive and its start time is public: a perfect forgery, except for the owner.
    for service in ("in-sync-forgery", "ghost"):
        entry = forged_status(service, 1)
        subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "tee", status_dir / entry.filename],
            input=entry.to_json(),
            capture_output=True,
            check=True,
            timeout=10,
        )
    assert {s.service for s in read_statuses(status_dir)} == {"real"}
    assert (status_dir / "ghost.1.json").exists(), "another user's file is ignored, not ours to remove"


def test_a_symlinked_entry_is_not_read(world: Path) -> None:
    status_dir = world / "status"
    status_dir.mkdir()
    real = world / "elsewhere.json"
    real.write_bytes(forged_status("linked", os.getpid()).to_json())
    (status_dir / f"linked.{os.getpid()}.json").symlink_to(real)
    assert read_statuses(status_dir) == []


# -- a group-writable configuration directory ----------------------------------------------------


def test_a_prompts_symlink_planted_by_a_group_member_is_not_written_through(group_dir: Path, secret: Path) -> None:
    prompts = group_dir / "prompts.json"
    as_nobody("ln", "-sfn", secret, prompts)
    with pytest.raises(SymlinkRefusedError) as exc:
        write_document(prompts, make_doc(2))
    assert str(exc.value).startswith(f"{prompts}: is a symlink")
    result = run_cli("write", prompts, "-", stdin=make_doc(3))
    assert result.returncode == 1 and f"{prompts}: is a symlink" in result.stderr, result.stderr
    assert secret.read_bytes() == SECRET
    with pytest.raises(SymlinkRefusedError):
        read_file(prompts, limit=1 << 20)  # nor read: the panel would serve it, the bot speak it


def test_a_configmap_lookalike_made_by_a_group_member_is_refused(group_dir: Path, secret: Path) -> None:
    """Links inside the directory, but the attacker's: not the deployment's."""
    prompts = group_dir / "prompts.json"
    as_nobody("mkdir", group_dir / "..2026_01")
    as_nobody("ln", "-s", secret, group_dir / "..2026_01" / "prompts.json")
    as_nobody("ln", "-s", "..2026_01", group_dir / "..data")
    as_nobody("ln", "-sfn", "..data/prompts.json", prompts)
    with pytest.raises(SymlinkRefusedError, match=f"owned by uid {NOBODY}"):
        atomic_write(prompts, make_doc(2))
    assert secret.read_bytes() == SECRET


def test_a_planted_lock_symlink_does_not_create_a_file_elsewhere(group_dir: Path, world: Path) -> None:
    outside = world / "root-only-created"
    as_nobody("ln", "-s", outside, group_dir / ".prompts.json.lock")
    with pytest.raises(SymlinkRefusedError) as exc:
        write_document(group_dir / "prompts.json", make_doc(2))
    assert str(exc.value) == f"{group_dir / '.prompts.json.lock'}: the lock file is a symlink; not followed (remove it)"
    assert not outside.exists() and not outside.is_symlink()
    assert (group_dir / "prompts.json").read_bytes() == make_doc(1)


def test_a_planted_temp_name_cannot_redirect_the_write(group_dir: Path, secret: Path) -> None:
    """Temp files are created O_EXCL | O_NOFOLLOW under random names; a planted one is just removed."""
    planted = group_dir / ".pw-tmp-prompts.json.00000000"
    as_nobody("ln", "-s", secret, planted)
    write_document(group_dir / "prompts.json", make_doc(2))
    assert secret.read_bytes() == SECRET
    assert (group_dir / "prompts.json").read_bytes() == make_doc(2)
    assert not planted.is_symlink()


def test_a_planted_lock_fifo_does_not_hang_the_writer(group_dir: Path) -> None:
    as_nobody("mkfifo", group_dir / ".prompts.json.lock")
    result = run_cli("write", group_dir / "prompts.json", "-", stdin=make_doc(2), timeout=10)
    assert result.returncode == 1
    assert f"{group_dir / '.prompts.json.lock'}: is a FIFO, not a regular file" in result.stderr


# -- kill -9: the next reader cleans up ------------------------------------------------------------


def test_entries_of_killed_processes_are_removed_by_the_next_reader(
    status_dir: Path, prompts_file: Path, spawn: ProcessFactory
) -> None:
    child = spawn(PROMPTWATCH, "watch", prompts_file, "--json", "--service", "killed")
    assert orjson.loads(child.line())["ok"]
    entry = status_dir / f"killed.{child.pid}.json"
    wait_until(entry.exists, timeout=10, message="the child's status entry")
    (status_dir / f".{entry.name}.lock").write_bytes(b"")  # what older versions left beside each entry
    (status_dir / f".pw-tmp-{entry.name}.deadbeef").write_bytes(b"{")  # a write cut short by the kill
    child.proc.kill()
    child.wait()
    assert entry.exists()
    assert read_statuses(status_dir) == []
    assert sorted(p.name for p in status_dir.iterdir()) == []


def test_a_live_entry_is_never_removed(status_dir: Path) -> None:
    write_status(status_dir, forged_status("alive", os.getpid()))
    remote = forged_status("remote", 999_999)
    write_status(status_dir, ConsumerStatus(**{**orjson.loads(remote.to_json()), "hostname": "other-host"}))
    assert {s.service for s in read_statuses(status_dir)} == {"alive", "remote"}
    assert {p.name for p in status_dir.iterdir()} == {f"alive.{os.getpid()}.json", "remote.999999.json"}


def test_the_victim_process_is_really_root_and_the_attacker_really_not() -> None:
    """The attacker helper does drop to another uid (the tests above would prove nothing otherwise)."""
    out = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "id", "-u"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    assert out.stdout.strip() == str(NOBODY) and os.geteuid() == 0
