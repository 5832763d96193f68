"""Atomic writes: no torn reads, kill -9 leaves old or new, conditional writes, mode and owner kept."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from promptwatch import ConflictError, DocumentError, WriteError, atomic_write, file_lock, sha256_hex, write_document
from promptwatch import atomic as atomic_module
from promptwatch.atomic import TEMP_PREFIX, lock_path
from tests.util import wait_until

from .conftest import ProcessFactory
from .helpers import assert_no_temp_files, make_doc

READER = r"""
import sys, time, orjson
from promptwatch import parse_document, DocumentError
path, seconds = sys.argv[1], float(sys.argv[2])
print("ready", flush=True)
reads = torn = 0
versions = set()
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    with open(path, "rb") as f:
        data = f.read()
    reads += 1
    try:
        versions.add(parse_document(data).greeting)
    except DocumentError:
        torn += 1
print(orjson.dumps({"reads": reads, "torn": torn, "versions": len(versions)}).decode(), flush=True)
"""

WRITER = r"""
import sys, orjson
from promptwatch import atomic_write
path, size, v = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def doc(v):
    return orjson.dumps({"system_prompt": "s", "greeting": f"v{v}", "padding": "x" * (size + v % 97)})
print("ready", flush=True)
while True:
    v += 1
    atomic_write(path, doc(v))
"""


def writer_doc(v: int, size: int) -> bytes:
    return orjson.dumps({"system_prompt": "s", "greeting": f"v{v}", "padding": "x" * (size + v % 97)})


def version_of(path: Path) -> int:
    return int(orjson.loads(path.read_bytes())["greeting"][1:])


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.json"
    path.write_bytes(make_doc(1))
    return path


def run_reader_during(spawn: ProcessFactory, target: Path, seconds: float, write: Iterator[None]) -> dict[str, int]:
    reader = spawn(sys.executable, "-c", READER, target, str(seconds))
    assert reader.line() == "ready"
    while reader.proc.poll() is None:
        next(write)
    assert reader.wait() == 0, reader.stderr
    result: dict[str, int] = json.loads(reader.line())
    return result


def test_no_torn_reads_under_continuous_atomic_writes(target: Path, spawn: ProcessFactory) -> None:
    def writes() -> Iterator[None]:
        v = 0
        while True:
            v += 1
            atomic_write(target, make_doc(v, size=64 * 1024), durable=False)
            yield

    result = run_reader_during(spawn, target, 2.0, writes())
    assert result["torn"] == 0, result
    assert result["reads"] > 200, result
    assert result["versions"] > 10, result
    assert_no_temp_files(target.parent)


def test_the_reader_does_see_torn_in_place_writes(target: Path, spawn: ProcessFactory) -> None:
    """The control: the same reader against the old in-place write does see half-written files."""

    def writes() -> Iterator[None]:
        v = 0
        while True:
            v += 1
            with open(target, "wb") as f:
                data = make_doc(v, size=64 * 1024)
                f.write(data[: len(data) // 2])
                f.flush()
                f.write(data[len(data) // 2 :])
            yield

    result = run_reader_during(spawn, target, 1.0, writes())
    assert result["torn"] > 0, result


def test_kill_9_leaves_the_target_wholly_old_or_new(tmp_path: Path, spawn: ProcessFactory) -> None:
    size = 256 * 1024
    target = tmp_path / "prompts.json"
    target.write_bytes(writer_doc(0, size))
    rng = random.Random(2026)
    last_version = 0
    for _ in range(8):
        proc = spawn(sys.executable, "-c", WRITER, target, str(size), str(last_version))
        assert proc.line() == "ready"
        # Let it complete a write, then kill it at a random point of a later one.
        wait_until(lambda last=last_version: version_of(target) > last, timeout=10)
        threading.Event().wait(rng.uniform(0.0, 0.03))
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL

        data = target.read_bytes()
        doc = orjson.loads(data)  # wholly one version: parses, and is byte for byte what was written
        version = int(doc["greeting"][1:])
        assert data == writer_doc(version, size)
        assert version > last_version
        last_version = version
        # (a temp file may be left behind here, half written)

        # The next write cleans up whatever temp file the killed writer left.
        atomic_write(target, writer_doc(version, size))
        assert_no_temp_files(tmp_path)
    assert last_version > 0


def test_next_write_removes_stale_temp_files(target: Path) -> None:
    stale = target.with_name(f"{TEMP_PREFIX}{target.name}.k1ll3d")
    stale.write_bytes(b'{"half": "writ')
    other = target.with_name(f"{TEMP_PREFIX}other.json.abc")  # another file's temp: not ours to remove
    other.write_bytes(b"x")
    atomic_write(target, make_doc(2))
    assert not stale.exists()
    assert other.exists()
    other.unlink()
    assert_no_temp_files(target.parent)


def test_write_returns_sha_and_replaces_inode(target: Path) -> None:
    inode = target.stat().st_ino
    data = make_doc(2)
    assert atomic_write(target, data) == sha256_hex(data)
    assert target.read_bytes() == data
    assert target.stat().st_ino != inode
    assert lock_path(target).exists()
    assert_no_temp_files(target.parent)


def test_if_match(target: Path) -> None:
    base = sha256_hex(target.read_bytes())
    new_sha = atomic_write(target, make_doc(2), if_match=base)
    assert target.read_bytes() == make_doc(2)

    before = target.read_bytes()
    with pytest.raises(ConflictError) as exc:
        atomic_write(target, make_doc(3), if_match=base)
    assert exc.value.expected == base
    assert exc.value.current == new_sha
    assert str(target) in str(exc.value)
    assert target.read_bytes() == before
    assert_no_temp_files(target.parent)


def test_if_match_empty_means_must_not_exist(tmp_path: Path) -> None:
    target = tmp_path / "new.json"
    atomic_write(target, make_doc(1), if_match="")
    with pytest.raises(ConflictError) as exc:
        atomic_write(target, make_doc(2), if_match="")
    assert exc.value.current == sha256_hex(make_doc(1))
    assert target.read_bytes() == make_doc(1)


def test_if_match_on_a_missing_file_conflicts(tmp_path: Path) -> None:
    with pytest.raises(ConflictError) as exc:
        atomic_write(tmp_path / "gone.json", make_doc(1), if_match=sha256_hex(b"x"))
    assert exc.value.current is None
    assert "no file" in str(exc.value)
    assert not (tmp_path / "gone.json").exists()


@pytest.mark.parametrize("writers", [2, 8])
def test_concurrent_writers_with_the_same_base_exactly_one_wins(target: Path, writers: int) -> None:
    for round_ in range(5):
        base = sha256_hex(target.read_bytes())
        barrier = threading.Barrier(writers)
        won: list[int] = []
        lost: list[int] = []

        def write(
            i: int,
            base: str = base,
            barrier: threading.Barrier = barrier,
            round_: int = round_,
            won: list[int] = won,
            lost: list[int] = lost,
        ) -> None:
            barrier.wait()
            try:
                write_document(target, make_doc(f"{round_}-{i}"), if_match=base)
                won.append(i)
            except ConflictError:
                lost.append(i)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(won) == 1, (won, lost)
        assert len(lost) == writers - 1
        assert target.read_bytes() == make_doc(f"{round_}-{won[0]}")


def test_writers_are_serialised_by_the_lock(target: Path) -> None:
    done = threading.Event()

    def write() -> None:
        atomic_write(target, make_doc(2))
        done.set()

    with file_lock(target):
        t = threading.Thread(target=write)
        t.start()
        assert not done.wait(0.2), "a writer went ahead while another held the lock"
        assert target.read_bytes() == make_doc(1)
    t.join(timeout=10)
    assert done.is_set()
    assert target.read_bytes() == make_doc(2)


def test_mode_and_owner_are_kept(target: Path) -> None:
    target.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(target, 1234, 2345)
    before = target.stat()
    atomic_write(target, make_doc(2))
    after = target.stat()
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


def test_a_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "new.json", make_doc(1))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640


def test_a_symlinked_target_is_written_through(tmp_path: Path) -> None:
    (tmp_path / "..2026_01").mkdir()
    real = tmp_path / "..2026_01" / "prompts.json"
    real.write_bytes(make_doc(1))
    link = tmp_path / "prompts.json"
    link.symlink_to("..2026_01/prompts.json")
    atomic_write(link, make_doc(2))
    assert link.is_symlink()
    assert real.read_bytes() == make_doc(2)


def test_invalid_documents_are_never_written(target: Path) -> None:
    before = target.read_bytes()
    for bad in (b'{"system_prompt": "x", "greeting": ', b'{"system_prompt": "x"}', b"[]", b"x" * (1024 * 1024 + 1)):
        with pytest.raises(DocumentError):
            write_document(target, bad)
        assert target.read_bytes() == before
    assert_no_temp_files(target.parent)


def test_write_document_returns_sha_and_prompts(target: Path) -> None:
    sha, prompts = write_document(target, make_doc(7))
    assert sha == sha256_hex(make_doc(7))
    assert prompts.greeting == "Здравствуйте! Версия 7."


def test_missing_directory_is_a_write_error(tmp_path: Path) -> None:
    with pytest.raises(WriteError) as exc:
        atomic_write(tmp_path / "absent" / "prompts.json", make_doc(1))
    assert "does not exist" in str(exc.value)
    assert str(tmp_path / "absent") in str(exc.value)


def test_a_failed_replace_leaves_the_target_and_no_temp(target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = target.read_bytes()

    def broken_replace(src: str, dst: str, **dir_fds: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_module.os, "replace", broken_replace)
    with pytest.raises(WriteError) as exc:
        atomic_write(target, make_doc(2))
    monkeypatch.undo()
    assert "No space left on device" in str(exc.value)
    assert isinstance(exc.value.__cause__, OSError)
    assert target.read_bytes() == before
    assert_no_temp_files(target.parent)
