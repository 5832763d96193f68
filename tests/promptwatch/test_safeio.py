"""Hostile files at the prompts path: FIFOs, huge sparse files, directories, symlink loops, devices.

Every read must return or fail at once (never block), read at most the limit + 1 bytes, and name the
path and what is wrong with it.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from promptwatch import (
    DocumentTooLargeError,
    HotPrompts,
    NotRegularFileError,
    StartupError,
    SymlinkRefusedError,
    read_file,
    write_document,
)
from promptwatch.atomic import read_bytes
from promptwatch.schema import MAX_DOCUMENT_BYTES, parse_document
from tests.util import needs_root, wait_until

from .helpers import POLL_INTERVAL, PROMPTWATCH, greeting_of, make_doc, run_cli

T = TypeVar("T")
GIB = 1 << 30


def within(seconds: float, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread and fail (instead of hanging the suite) if it has not returned in time."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as e:  # re-raised in the test's thread
            error.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds}s"
    if error:
        raise error[0]
    return result[0]


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def make_sparse(path: Path, size: int = GIB) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def make_loop(path: Path) -> Path:
    other = path.with_name("loop-b")
    path.symlink_to(other.name)
    other.symlink_to(path.name)
    return path


def make_char_device(path: Path) -> Path:
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # the same device as /dev/zero
    return path


def kinds(*names: str) -> list[object]:
    """``names`` as parameters; making a character device needs root (mknod)."""
    return [pytest.param(n, marks=needs_root) if n == "char device" else n for n in names]


SPECIAL: dict[str, tuple[Callable[[Path], object], str]] = {
    "fifo": (make_fifo, "is a FIFO, not a regular file"),
    "directory": (lambda p: p.mkdir(), "is a directory, not a regular file"),
    "symlink loop": (make_loop, "is a symlink loop, not a regular file"),
    "char device": (make_char_device, "is a character device, not a regular file"),
}


@pytest.mark.parametrize("kind", kinds(*sorted(SPECIAL)))
def test_a_special_file_is_refused_at_once_naming_path_and_kind(tmp_path: Path, kind: str) -> None:
    make, message = SPECIAL[kind]
    path = tmp_path / "prompts.json"
    make(path)
    with pytest.raises(NotRegularFileError) as exc:
        within(5, lambda: read_file(path, limit=MAX_DOCUMENT_BYTES))
    assert str(exc.value) == f"{path}: {message}"


def test_a_symlink_to_a_device_outside_the_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prompts.json"
    path.symlink_to("/dev/zero")
    with pytest.raises(SymlinkRefusedError) as exc:
        within(5, lambda: read_file(path, limit=MAX_DOCUMENT_BYTES))
    assert str(path) in str(exc.value) and "leaving its directory" in str(exc.value)


def test_a_writer_that_opens_the_fifo_later_is_not_read_from(tmp_path: Path) -> None:
    """Even with a writer on the other end the FIFO is refused before anything is read."""
    path = make_fifo(tmp_path / "prompts.json")
    fd = os.open(path, os.O_RDWR)  # keeps the FIFO open for writing, as a feeding process would
    try:
        os.write(fd, b"{}")
        with pytest.raises(NotRegularFileError):
            within(5, lambda: read_file(path, limit=MAX_DOCUMENT_BYTES))
    finally:
        os.close(fd)


def test_a_1_gib_sparse_file_costs_only_the_limit(tmp_path: Path) -> None:
    path = make_sparse(tmp_path / "prompts.json")
    tracemalloc.start()
    try:
        content = read_file(path, limit=MAX_DOCUMENT_BYTES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(content.data) == MAX_DOCUMENT_BYTES + 1 and content.truncated
    assert content.size == GIB
    assert peak < 3 * MAX_DOCUMENT_BYTES, f"peak {peak} bytes for a 1 GiB file"
    with pytest.raises(DocumentTooLargeError) as exc:
        parse_document(content.data, source=str(path), size=content.size)
    assert str(exc.value) == f"{path}: document is {GIB} bytes, the limit is {MAX_DOCUMENT_BYTES}"


def test_read_bytes_is_bounded_too(tmp_path: Path) -> None:
    path = make_sparse(tmp_path / "prompts.json")
    data = read_bytes(path)
    assert data is not None and len(data) == MAX_DOCUMENT_BYTES + 1
    assert read_bytes(tmp_path / "absent.json") is None


def test_configmap_links_inside_the_directory_are_followed(tmp_path: Path) -> None:
    (tmp_path / "..2026_01").mkdir()
    (tmp_path / "..2026_01" / "prompts.json").write_bytes(make_doc(1))
    (tmp_path / "..data").symlink_to("..2026_01")
    (tmp_path / "prompts.json").symlink_to("..data/prompts.json")
    assert read_file(tmp_path / "prompts.json", limit=MAX_DOCUMENT_BYTES).data == make_doc(1)
    write_document(tmp_path / "prompts.json", make_doc(2))
    assert (tmp_path / "..2026_01" / "prompts.json").read_bytes() == make_doc(2)
    assert (tmp_path / "prompts.json").is_symlink()


@pytest.mark.parametrize("text", ["/etc/passwd", "../outside.json", "./prompts.real", "sub//prompts.json"])
def test_links_that_leave_the_directory_are_refused_for_reads_and_writes(tmp_path: Path, text: str) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (tmp_path / "outside.json").write_bytes(make_doc(1))
    link = config / "prompts.json"
    link.symlink_to(text)
    with pytest.raises(SymlinkRefusedError) as exc:
        read_file(link, limit=MAX_DOCUMENT_BYTES)
    assert str(exc.value).startswith(f"{link}: is a symlink")
    with pytest.raises(SymlinkRefusedError):
        write_document(link, make_doc(2))
    assert (tmp_path / "outside.json").read_bytes() == make_doc(1)
    assert link.is_symlink()


def test_never_means_no_symlink_at_all(tmp_path: Path) -> None:
    (tmp_path / "real.md").write_text("x")
    (tmp_path / "link.md").symlink_to("real.md")
    with pytest.raises(SymlinkRefusedError):
        read_file(tmp_path / "link.md", limit=100, symlinks="never")
    assert read_file(tmp_path / "real.md", limit=100, symlinks="never").data == b"x"


@pytest.mark.parametrize("kind", kinds("fifo", "char device"))
def test_a_write_does_not_replace_a_special_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "prompts.json"
    SPECIAL[kind][0](path)
    with pytest.raises(NotRegularFileError):
        within(5, lambda: write_document(path, make_doc(1)))
    assert not path.is_file()


def test_startup_on_a_fifo_is_a_startup_error_not_a_hang(tmp_path: Path) -> None:
    path = make_fifo(tmp_path / "prompts.json")
    with pytest.raises(StartupError) as exc:
        within(5, lambda: HotPrompts(path, hot_reload=False))
    assert f"{path}: is a FIFO, not a regular file" in str(exc.value)


def test_startup_on_a_1_gib_file_names_its_size(tmp_path: Path) -> None:
    path = make_sparse(tmp_path / "prompts.json")
    with pytest.raises(StartupError) as exc:
        within(10, lambda: HotPrompts(path, hot_reload=False))
    assert f"document is {GIB} bytes" in str(exc.value)


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink loop"])
def test_poll_mode_reports_a_special_file_once_and_keeps_the_last_good_prompts(
    prompts_file: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    prompts_file.write_bytes(make_doc(1))
    caplog.set_level(logging.DEBUG, logger="promptwatch")
    hot = HotPrompts(prompts_file, mode="poll", interval=POLL_INTERVAL)
    try:
        prompts_file.unlink()
        SPECIAL[kind][0](prompts_file)
        wait_until(lambda: hot.last_error is not None and "not a regular file" in hot.last_error, timeout=10)
        assert hot.last_error == f"{prompts_file}: {SPECIAL[kind][1]}"
        watcher = hot._watcher
        assert watcher is not None
        checks = [0]
        signature = watcher._stat_signature

        def counted() -> tuple[object, ...]:
            checks[0] += 1
            return signature()

        watcher._stat_signature = counted  # type: ignore[method-assign,assignment]
        wait_until(lambda: checks[0] >= 10, timeout=10, message="10 more poll intervals")
        assert hot.current.prompts.greeting == greeting_of(1)
    finally:
        hot.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records), "no traceback"


def test_cli_check_and_status_on_a_fifo_answer_at_once(tmp_path: Path, status_dir: Path) -> None:
    path = make_fifo(tmp_path / "prompts.json")
    check = run_cli("check", path, timeout=10)
    assert check.returncode == 1
    assert check.stderr.strip() == f"{path}: is a FIFO, not a regular file"
    status = run_cli("status", path, "--json", "--status-dir", status_dir, timeout=10)
    assert status.returncode == 0, status.stderr
    assert f'"error":"{path}: is a FIFO, not a regular file"' in status.stdout


def test_cli_check_of_a_1_gib_file_reads_only_the_limit(tmp_path: Path) -> None:
    path = make_sparse(tmp_path / "prompts.json")
    check = run_cli("check", path, timeout=10)
    assert check.returncode == 1
    assert check.stderr.strip() == f"{path}: document is {GIB} bytes, the limit is {MAX_DOCUMENT_BYTES}"


def test_config_check_on_a_fifo_answers_at_once(tmp_path: Path, status_dir: Path) -> None:
    path = make_fifo(tmp_path / "prompts.json")
    env = {**os.environ, "PROMPTS_PATH": str(path), "STATE_DIR": str(tmp_path / "state")}
    result = run_cli("config", "--check", env=env, timeout=15)
    assert result.returncode == 1
    assert f"PROMPTS_PATH {path}: is a FIFO, not a regular file" in result.stdout + result.stderr


def test_below_a_base_the_directories_on_the_way_follow_the_configmap_rule(tmp_path: Path) -> None:
    (tmp_path / "..2026_01" / "kb").mkdir(parents=True)
    (tmp_path / "..2026_01" / "kb" / "faq.md").write_text("ok")
    (tmp_path / "..data").symlink_to("..2026_01")
    (tmp_path / "kb").symlink_to("..data/kb")
    read = read_file(tmp_path / "kb" / "faq.md", limit=100, symlinks="never", base=tmp_path)
    assert read.data == b"ok", "symlinks='never' is about the file itself, not the directories above it"
    (tmp_path / "kb").unlink()
    (tmp_path / "kb").symlink_to(tmp_path / "..2026_01" / "kb")  # absolute: leaves the base's rule
    with pytest.raises(SymlinkRefusedError, match="leaving its directory"):
        read_file(tmp_path / "kb" / "faq.md", limit=100, base=tmp_path)
    assert read_file(tmp_path / "kb" / "faq.md", limit=100).data == b"ok", "without a base, the directory is trusted"


def test_promptwatch_status_on_a_1_gib_file_stays_small(tmp_path: Path, status_dir: Path) -> None:
    """Peak RSS of the real command, measured by a parent whose only child it is (it used to read all 1 GiB)."""
    path = make_sparse(tmp_path / "prompts.json")
    measure = (
        "import resource, subprocess, sys;"
        "r = subprocess.run(sys.argv[1:], capture_output=True, timeout=30);"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", measure, str(PROMPTWATCH), "status", str(path), "--status-dir", str(status_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    code, peak_kib = int(out[0]), int(out[1])
    assert code == 0
    assert peak_kib < 200 * 1024, f"promptwatch status peaked at {peak_kib // 1024} MiB for a 1 GiB file"
