"""One save, one outcome: a full disk, a read-only disk, the size limit on the bytes sent, stable error codes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from adminapi.api.problems import STATUS, Code
from promptwatch import MAX_DOCUMENT_BYTES, sha256_hex
from tests.util import needs_root, wait_until

from .conftest import TOKEN, Served, make_settings, serve, spawn_panel, stop

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                          capture_output=True, check=False)  # fmt: skip
    assert done.returncode == 0, f"cannot mount a tmpfs at {path}: {done.stderr.decode().strip()}"


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem is full (ENOSPC): the disk is really full, not pretended."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for block in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * block)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def full_state(config_dir: Path, status_dir: Path, tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    state = tmp_path / "state"
    _mount_tmpfs(state, "4m")
    served = serve(make_settings(config_dir, status_dir, tmp_path))
    try:
        yield served, state
    finally:
        stop(served)
        _umount(state)


def _big_document(prompts_file: Path, size: int) -> bytes:
    """A valid document of exactly ``size`` bytes as sent (compact JSON, many short prompts)."""
    doc = orjson.loads(prompts_file.read_bytes())
    head = orjson.dumps(doc)[:-1]
    parts = [head]
    total = len(head) + 1
    i = 0
    while total < size - 40:
        item = b',"k%06d":"%s"' % (i, b"x" * 20)
        parts.append(item)
        total += len(item)
        i += 1
    pad = size - total - len(b',"pad":""')
    parts.append(b',"pad":"%s"' % (b"y" * pad))
    data = b"".join(parts) + b"}"
    assert len(data) == size
    return data


@needs_root
def test_a_full_state_dir_answers_success_with_a_warning_and_the_history_is_repaired(
    full_state: tuple[Served, Path], prompts_file: Path
) -> None:
    served, state = full_state
    filler = _fill(state)
    sent = _big_document(prompts_file, 300_000)  # many more pages than the history's WAL holds
    with served.client() as client:
        r = client.put("/api/prompts?message=перед%20заполнением", content=sent)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["sha256"] == sha256_hex(sent) and body["revision"] is None
        assert len(body["warnings"]) == 1 and "history" in body["warnings"][0]
        assert "full" in body["warnings"][0]
        assert prompts_file.read_bytes() == sent  # written and live
        assert client.get("/api/prompts").content == sent
        items = client.get("/api/prompts/history").json()["items"]
        assert items[0]["sha256"] != body["sha256"]  # not recorded yet
        filler.unlink()  # room again
        items = client.get("/api/prompts/history").json()["items"]
        assert items[0]["sha256"] == body["sha256"]
        assert (items[0]["author"], items[0]["origin"], items[0]["message"]) == ("admin", "api", "перед заполнением")
        r = client.get(f"/api/prompts/history/{body['sha256']}")
        assert r.status_code == 200 and r.content == sent


@needs_root
def test_the_history_is_repaired_without_a_request_once_writable(
    full_state: tuple[Served, Path], prompts_file: Path
) -> None:
    """The panel retries by itself: the revision appears without anyone reading the history."""
    served, state = full_state
    filler = _fill(state)
    sent = _big_document(prompts_file, 300_000)
    with served.client() as client:
        assert client.put("/api/prompts", content=sent).json()["warnings"]
    filler.unlink()
    editor = served.app.state.editor  # type: ignore[attr-defined]
    wait_until(lambda: editor.history_broken is None, timeout=10, message="history repaired in the background")
    latest = editor.history.latest()
    assert latest is not None and latest.sha256 == sha256_hex(sent)


@pytest.fixture
def kb_on_tmpfs(config_dir: Path, status_dir: Path, tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    kb = config_dir / "kb"
    saved = {p.name: p.read_bytes() for p in kb.iterdir()}
    for p in kb.iterdir():
        p.unlink()
    _mount_tmpfs(kb, "1m")
    for name, data in saved.items():
        (kb / name).write_bytes(data)
    served = serve(make_settings(config_dir, status_dir, tmp_path))
    try:
        yield served, kb
    finally:
        stop(served)
        _umount(kb)


def _litter(kb: Path) -> list[str]:
    return sorted(p.name for p in kb.iterdir() if p.name.startswith("."))


@needs_root
def test_kb_upload_on_a_full_disk_answers_507_json_and_leaves_no_litter(kb_on_tmpfs: tuple[Served, Path]) -> None:
    served, kb = kb_on_tmpfs
    filler = _fill(kb)
    with served.client() as client:
        r = client.post("/api/kb", files={"file": ("новый.md", "# Заголовок\n" + "текст " * 20_000)})
        assert r.status_code == 507, r.text
        assert r.json()["code"] == "no_space" and "новый.md" in r.json()["detail"]
        assert _litter(kb) == [] and not (kb / "новый.md").exists()
        filler.unlink()
        r = client.post("/api/kb", files={"file": ("новый.md", "# Заголовок\n")})
        assert r.status_code == 201, r.text
        assert _litter(kb) == []


@needs_root
def test_kb_upload_on_a_read_only_disk_answers_500_json(kb_on_tmpfs: tuple[Served, Path]) -> None:
    served, kb = kb_on_tmpfs
    subprocess.run(["mount", "-o", "remount,ro", str(kb)], check=True, capture_output=True)
    try:
        with served.client() as client:
            r = client.post("/api/kb", files={"file": ("a.md", "# a\n")})
            assert r.status_code == 500, r.text
            assert r.json()["code"] == "write_failed" and "Read-only file system" in r.json()["detail"]
            r = client.delete("/api/kb/" + next(p.name for p in kb.iterdir() if not p.name.startswith(".")))
            assert r.status_code == 500 and r.json()["code"] == "write_failed"
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(kb)], check=True, capture_output=True)
    assert _litter(kb) == []


@needs_root
def test_kb_upload_without_permission_answers_500_json(config_dir: Path, status_dir: Path, tmp_path: Path) -> None:
    """A real EACCES: the panel runs as root without CAP_DAC_OVERRIDE, the knowledge-base dir is 0555."""
    kb = config_dir / "kb"
    kb.chmod(0o555)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    try:
        with spawn_panel(config_dir, status_dir, tmp_path, prefix=drop) as (url, log, _pid):
            r = httpx.post(url + "/api/kb", files={"file": ("новый.md", b"# x\n")}, headers=AUTH, timeout=10)
            assert r.status_code == 500, r.text
            assert r.json()["code"] == "write_failed" and "Permission denied" in r.json()["detail"]
            name = next(p.name for p in kb.iterdir() if not p.name.startswith("."))
            r = httpx.delete(f"{url}/api/kb/{name}", headers=AUTH, timeout=10)
            assert r.status_code == 500 and r.json()["code"] == "write_failed"
            assert "Traceback" not in log.read_text()
    finally:
        kb.chmod(0o755)
    assert _litter(kb) == [] and not (kb / "новый.md").exists()


def test_a_document_the_cli_accepts_is_accepted_by_put_byte_for_byte(
    client: httpx.Client, prompts_file: Path, tmp_path: Path
) -> None:
    """1,009,691 bytes as sent; re-serialised with indentation it would be over 1 MiB."""
    sent = _big_document(prompts_file, 1_009_691)
    assert len(orjson.dumps(orjson.loads(sent), option=orjson.OPT_INDENT_2)) > MAX_DOCUMENT_BYTES
    other = tmp_path / "other.json"
    other.write_bytes(prompts_file.read_bytes())
    cli = subprocess.run([sys.executable, "-m", "promptwatch.cli", "write", str(other), "-"],
                         input=sent, capture_output=True, check=False)  # fmt: skip
    assert cli.returncode == 0, cli.stderr.decode()
    r = client.put("/api/prompts", content=sent)
    assert r.status_code == 200, r.text
    assert prompts_file.read_bytes() == sent == other.read_bytes()
    assert r.json()["sha256"] == sha256_hex(sent) and r.json()["size"] == len(sent)
    over = _big_document(prompts_file, MAX_DOCUMENT_BYTES + 1)
    r = client.put("/api/prompts", content=over)
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    assert prompts_file.read_bytes() == sent


def test_patch_takes_json_without_a_content_type_like_put(client: httpx.Client, prompts_file: Path) -> None:
    r = client.patch("/api/prompts/greeting", content=b'{"value": "Alo"}')
    assert r.status_code == 200, r.text
    assert orjson.loads(prompts_file.read_bytes())["greeting"] == "Alo"
    r = client.patch("/api/prompts/operator", content=b'{"remove": true}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and "operator" not in orjson.loads(prompts_file.read_bytes())


VALID = b'{"system_prompt": "s", "greeting": "g"}'


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "code"),
    [
        ("GET", "/api/prompts", {"token": None}, Code.TOKEN_REQUIRED),
        ("GET", "/api/prompts", {"token": "wrong-token-0123456789"}, Code.WRONG_TOKEN),
        ("PUT", "/api/prompts", {"token": None, "content": b"{}"}, Code.TOKEN_REQUIRED),
        ("GET", "/api/nothing-here", {}, Code.NOT_FOUND),
        ("DELETE", "/api/prompts", {}, Code.METHOD_NOT_ALLOWED),
        ("PUT", "/api/prompts", {"content": b"{", "headers": {"If-Match": "*"}}, Code.INVALID_JSON),
        ("PUT", "/api/prompts", {"content": b'{"greeting": ""}'}, Code.INVALID_DOCUMENT),
        ("PUT", "/api/prompts", {"content": VALID, "headers": {"If-Match": '"' + "0" * 64 + '"'}}, Code.STALE_ETAG),
        ("PUT", "/api/prompts", {"content": b" " * (MAX_DOCUMENT_BYTES + 1)}, Code.TOO_LARGE),
        ("PATCH", "/api/prompts/greeting", {"content": b"{}"}, Code.PATCH_EMPTY),
        ("PATCH", "/api/prompts/greeting", {"content": b'{"value": 1}'}, Code.INVALID_REQUEST),
        ("PATCH", "/api/prompts/greeting", {"content": b"nope"}, Code.INVALID_JSON),
        ("GET", "/api/prompts/history/abcdef0", {}, Code.NO_REVISION),
        ("GET", "/api/prompts/history", {"params": {"limit": 0}}, Code.INVALID_REQUEST),
        ("GET", "/api/kb/a.exe", {}, Code.KB_BAD_NAME),
        ("GET", "/api/kb/none.md", {}, Code.KB_NOT_FOUND),
        ("POST", "/api/kb", {"files": {"file": ("a.md", b"\xff\xfe")}}, Code.KB_NOT_TEXT),
        ("GET", "/api/calls/none", {}, Code.NO_CALL),
    ],
)
def test_every_error_has_a_stable_code_and_its_status(
    served: Served, method: str, path: str, kwargs: dict[str, object], code: Code
) -> None:
    token = kwargs.pop("token", "default")
    with served.client() if token == "default" else served.client(token=token) as client:  # type: ignore[arg-type]
        r = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == STATUS[code], r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["code"] == code.value and r.json()["detail"]
    if code is Code.METHOD_NOT_ALLOWED:
        assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "PUT", "POST"}


def test_the_codes_are_listed_once_with_one_status_each() -> None:
    assert set(STATUS) == set(Code)
    assert len({c.value for c in Code}) == len(Code)
    assert all(c.value.isidentifier() and c.value.islower() for c in Code)


@pytest.mark.parametrize("header", ["", "0000,", "W/", '"a b"', "*, 00"])
def test_a_malformed_if_match_is_refused_and_nothing_is_written(
    client: httpx.Client, prompts_file: Path, header: str
) -> None:
    """Never taken as "no condition": an empty or malformed If-Match is a 422, the file untouched."""
    before = prompts_file.read_bytes()
    r = client.put("/api/prompts", content=VALID, headers={"If-Match": header})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text
    assert prompts_file.read_bytes() == before


@pytest.mark.parametrize("value", ["0.5", "1700000000", "yesterday", "2026-13"])
def test_call_dates_are_iso_only(client: httpx.Client, value: str) -> None:
    r = client.get("/api/calls", params={"until": value})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert client.get("/api/calls", params={"until": "2026-11-25", "since": "2026-11-24T10:00:00Z"}).status_code == 200


def test_new_kb_files_get_names_the_schema_documents(client: httpx.Client, config_dir: Path) -> None:
    long = "д" * 61 + ".md"  # safe, but longer than the 63 characters documented for new names
    r = client.post("/api/kb", files={"file": (long, b"# x\n")})
    assert r.status_code == 400 and r.json()["code"] == "kb_bad_name"
    assert not (config_dir / "kb" / long).exists()
    ok = "Тарифы — доставка (2026), «экспресс».md"
    assert client.post("/api/kb", files={"file": (ok, b"# x\n")}).status_code == 201


def test_an_unexpected_error_still_answers_the_json_body(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(served.app.state.editor.history, "list", broken)  # type: ignore[attr-defined]
    with served.client() as client:
        r = client.get("/api/prompts/history")
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json()["code"] == "internal" and "Traceback" not in r.text
