"""The service: tokens, refusing to expose itself without one, sd_notify, SIGTERM, metrics, exports."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

import adminapi
from adminapi.auth import is_loopback, load_tokens
from promptwatch import StartupError
from tests.util import wait_until

from .conftest import Served, make_settings


def test_public_api() -> None:
    assert adminapi.__all__ == ["AdminSettings", "create_app", "main"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("admin.example", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_generated_token_is_kept_in_a_0600_file_across_restarts(
    config_dir: Path, status_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(config_dir, status_dir, tmp_path, admin_token=None, admin_tokens="")
    first = load_tokens(settings)
    assert first.generated_file == tmp_path / "state" / "admin-token"
    assert stat.S_IMODE(os.stat(first.generated_file).st_mode) == 0o600
    token = first.first()
    assert len(token) >= 32 and first.check(token) is not None and first.check(token + "x") is None
    assert load_tokens(settings).first() == token


def test_refuses_a_non_loopback_address_without_a_configured_token(
    config_dir: Path, status_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(config_dir, status_dir, tmp_path, admin_token=None, admin_tokens="", admin_host="0.0.0.0")
    with pytest.raises(StartupError, match="ADMIN_TOKEN"):
        load_tokens(settings)
    assert not (tmp_path / "state" / "admin-token").exists()
    ok = make_settings(config_dir, status_dir, tmp_path, admin_host="0.0.0.0")
    assert load_tokens(ok).generated_file is None


@pytest.mark.parametrize("weak", ["x", "   ", "short-token", " " * 20 + "abc", "a b c d e f g h i j k l m n o"])
def test_a_weak_admin_token_is_refused_beyond_loopback(
    config_dir: Path, status_dir: Path, tmp_path: Path, weak: str
) -> None:
    """The same rule as ADMIN_TOKENS: 16+ non-blank characters once the panel listens beyond loopback."""
    settings = make_settings(config_dir, status_dir, tmp_path, admin_token=weak, admin_tokens="", admin_host="0.0.0.0")
    with pytest.raises(StartupError, match="ADMIN_TOKEN"):
        load_tokens(settings)
    assert not (tmp_path / "state" / "admin-token").exists()


def test_a_strong_admin_token_is_accepted_beyond_loopback_and_any_on_loopback(
    config_dir: Path, status_dir: Path, tmp_path: Path
) -> None:
    strong = make_settings(config_dir, status_dir, tmp_path, admin_token="0123456789abcdef", admin_tokens="",
                           admin_host="0.0.0.0")  # fmt: skip
    assert load_tokens(strong).check("0123456789abcdef") is not None
    local = make_settings(config_dir, status_dir, tmp_path, admin_token="x", admin_tokens="")
    assert load_tokens(local).check("x") is not None


def _service_env(config_dir: Path, status_dir: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADMIN_", "NOTIFY_SOCKET", "JOURNAL_STREAM"))}
    env.update(
        PROMPTS_PATH=str(config_dir / "prompts.json"),
        PROMPTS_STATUS_DIR=str(status_dir),
        STATE_DIR=str(tmp_path / "state"),
        CALLLOG_PATH=str(tmp_path / "calls.sqlite3"),
    )
    return env


def test_cli_refuses_to_listen_on_all_addresses_without_a_token(
    config_dir: Path, status_dir: Path, tmp_path: Path
) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "adminapi.main", "--host", "0.0.0.0", "--port", "0"],
        env=_service_env(config_dir, status_dir, tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "not a loopback address" in r.stderr


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(30)
    try:
        yield sock
    finally:
        sock.close()


def test_service_notifies_ready_logs_to_the_journal_and_stops_gracefully_on_sigterm(
    config_dir: Path, status_dir: Path, tmp_path: Path, notify_socket: socket.socket
) -> None:
    env = _service_env(config_dir, status_dir, tmp_path)
    env["NOTIFY_SOCKET"] = notify_socket.getsockname()
    log = tmp_path / "journal.log"
    with open(log, "wb") as stderr:
        st = os.fstat(stderr.fileno())
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"  # as systemd sets it: stderr is the journal
        proc = subprocess.Popen(
            [sys.executable, "-m", "adminapi.main", "--port", "0"], env=env, cwd=tmp_path, stderr=stderr
        )
    try:
        ready = notify_socket.recv(4096).decode()
        assert ready.startswith("READY=1\nSTATUS=serving http://127.0.0.1:")
        assert "consumers in sync 1/1" in ready  # the panel's own watcher
        found = wait_until(
            lambda: re.search(
                r"^<4>adminapi: admin panel: (\S+)  token: (\S+)… \(generated; the whole token is in (.+)\)$",
                log.read_text(),
                re.M,
            ),
            timeout=10,
        )
        url, prefix, where = found.group(1), found.group(2), found.group(3)
        token = (tmp_path / "state" / "admin-token").read_text().strip()
        assert Path(where).resolve() == (tmp_path / "state" / "admin-token").resolve()
        assert len(prefix) == 4 and token.startswith(prefix)
        assert token not in log.read_text(), "the whole token is not written to the journal"
        assert re.search(r"^<6>promptwatch: prompts loaded sha=", log.read_text(), re.M)
        headers = {"Authorization": f"Bearer {token}"}
        r = httpx.get(url + "api/status", headers=headers, timeout=10)
        assert r.status_code == 200 and r.json()["consumers"][0]["service"] == "adminapi"
        assert httpx.get(url + "api/status", timeout=10).status_code == 401
        doc = orjson.loads((config_dir / "prompts.json").read_bytes())
        saved = httpx.put(url + "api/prompts", json={**doc, "greeting": "Алло"}, headers=headers, timeout=10).json()
        status = ""
        while f"sha={saved['sha256'][:12]}" not in status:  # the STATUS= line follows the save
            status = notify_socket.recv(4096).decode()
        assert status.startswith("STATUS=prompts sha=")
        proc.send_signal(signal.SIGTERM)
        while not status.startswith("STOPPING=1"):
            status = notify_socket.recv(4096).decode()
        assert proc.wait(timeout=30) == 0
        assert not list(status_dir.glob("*.json")), "the panel's status entry is removed on a clean stop"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_metrics_count_saves_conflicts_and_consumers(client: httpx.Client, prompts_file: Path) -> None:
    doc = orjson.loads(prompts_file.read_bytes())
    stale = '"' + "0" * 64 + '"'
    assert client.put("/api/prompts", json={**doc, "greeting": "Раз"}).status_code == 200
    assert client.put("/api/prompts", json={**doc, "greeting": "Два"}, headers={"If-Match": stale}).status_code == 412
    assert client.put("/api/prompts", json={**doc, "greeting": " "}).status_code == 422
    assert client.put("/api/prompts", content=b" " * (2 << 20)).status_code == 413  # refused before the route
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'adminapi_saves_total{origin="api"} 1.0' in text
    assert "adminapi_conflicts_total 1.0" in text
    assert 'adminapi_save_failures_total{reason="invalid"} 1.0' in text
    assert 'adminapi_save_failures_total{reason="too_large"} 1.0' in text
    wait_until(lambda: 'adminapi_consumers{state="in_sync"} 1.0' in client.get("/metrics").text, timeout=10)


def test_playground_answers_with_the_draft_prompts(client: httpx.Client, prompts_file: Path) -> None:
    draft = {**orjson.loads(prompts_file.read_bytes()), "fallback": "Черновик: не понял вопрос."}
    before = prompts_file.read_bytes()
    r = client.post("/api/playground", json={"prompts": draft, "text": "Сколько стоит доставка?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["backend"] == "offline" and body["source"] == "kb"
    assert body["passages"] and body["passages"][0]["doc"] == "доставка.md"
    r = client.post("/api/playground", json={"prompts": draft, "text": "qwertyuiop"})
    assert r.json()["source"] == "fallback" and r.json()["text"] == "Черновик: не понял вопрос."
    r = client.post("/api/playground", json={"prompts": {**draft, "greeting": ""}, "text": "привет"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "greeting"
    assert prompts_file.read_bytes() == before


def test_ui_is_served_as_utf8(served: Served) -> None:
    with served.client(token=None) as c:
        r = c.get("/")
        assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
        assert "Промпты" in r.text
        assert "script-src 'self'" in r.headers["content-security-policy"]
        for module in ("main", "editor", "i18n"):
            js = c.get(f"/static/js/{module}.js")
            assert js.status_code == 200 and "charset=utf-8" in js.headers["content-type"]
            assert js.headers["content-type"].startswith("text/javascript")  # served as a module script
