"""Abusive clients against a real uvicorn on loopback, over real sockets: token before body, body caps,
413 instead of a reset, drip-fed headers."""

from __future__ import annotations

import json
import re
import resource
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.util import wait_until

from .conftest import TOKEN, Panel, Served, make_settings, serve, spawn_panel, stop

AUTH = {"Authorization": f"Bearer {TOKEN}"}
TWO_MIB = b"x" * (2 * 1024 * 1024)


def _raw(served: Served) -> socket.socket:
    host, port = served.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _read_response_head(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", "/api/playground", "application/json"),
        ("PATCH", "/api/prompts/greeting", "application/json"),
        ("PUT", "/api/prompts", "application/json"),
        ("POST", "/api/kb", "multipart/form-data; boundary=b0undary"),
    ],
)
@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
def test_no_token_is_refused_before_one_byte_of_the_body(
    served: Served, method: str, path: str, content_type: str, token: str | None
) -> None:
    """A 200 MiB chunked body announced, not one byte of it sent: the 401/403 comes at once."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    with _raw(served) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\n{auth}"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        head = _read_response_head(sock, timeout=3)
    status = 401 if token is None else 403
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert b"connection: close" in head.lower()
    if token is None:
        assert b"www-authenticate: bearer" in head.lower()


def test_a_200_mib_chunked_body_without_a_token_is_cut_short(served: Served) -> None:
    """The client keeps streaming after the 401: the server discards a bounded amount, then closes."""
    sent = 0
    chunk = b"%x\r\n%s\r\n" % (1024 * 1024, b"{" * (1024 * 1024))
    head = b""
    with _raw(served) as sock:
        sock.sendall(b"POST /api/playground HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.settimeout(10)
        started = time.monotonic()
        try:
            while sent < 200 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # reset or broken pipe once the server stopped discarding
        elapsed = time.monotonic() - started
        try:
            head = _read_response_head(sock, timeout=2)
        except OSError:
            head = b""
    assert sent < 64 * 1024 * 1024, f"the server swallowed {sent >> 20} MiB of an unauthenticated body"
    assert elapsed < 10
    assert head == b"" or head.startswith(b"HTTP/1.1 401 ")


@pytest.mark.parametrize(
    ("path", "method", "size", "declared"),
    [
        ("/api/prompts", "PUT", 1024 * 1024 + 1, True),
        ("/api/prompts", "PUT", 1024 * 1024 + 1, False),
        ("/api/prompts/greeting", "PATCH", 1024 * 1024 + 9 * 1024, False),
        ("/api/playground", "POST", 3 * 1024 * 1024 + 1, True),
        ("/api/prompts/rollback/0000000", "POST", 64 * 1024 + 1, False),
    ],
)
def test_bodies_over_their_cap_get_413(
    client: httpx.Client, prompts_file: Path, path: str, method: str, size: int, declared: bool
) -> None:
    """Content-Length or chunked: the cap is on the bytes sent, and the file is untouched."""
    before = prompts_file.read_bytes()
    body = b" " * size
    content = body if declared else iter([body[: size // 2], body[size // 2 :]])
    r = client.request(method, path, content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "too_large"
    assert prompts_file.read_bytes() == before


def _put_urllib(url: str) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url + "/api/prompts", data=TWO_MIB, method="PUT", headers=AUTH)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _put_httpx(client: httpx.Client) -> tuple[int, dict[str, object]]:
    r = client.put("/api/prompts", content=TWO_MIB)
    return r.status_code, r.json()


def _put_httpx_chunked(client: httpx.Client) -> tuple[int, dict[str, object]]:
    r = client.put("/api/prompts", content=iter([TWO_MIB[: 1 << 20], TWO_MIB[1 << 20 :]]))
    return r.status_code, r.json()


def _put_curl(url: str, body: Path) -> tuple[int, dict[str, object]]:
    out = subprocess.run(
        ["curl", "-sS", "-X", "PUT", "--data-binary", f"@{body}", "-H", f"Authorization: Bearer {TOKEN}",
         "-H", "Content-Type: application/json", "-w", "\n%{http_code}", url + "/api/prompts"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()
    text, _, code = out.stdout.decode().rpartition("\n")
    return int(code), json.loads(text)


@pytest.mark.parametrize("how", ["urllib", "httpx", "httpx-chunked", "curl"])
def test_a_2_mib_put_gets_the_413_not_a_reset_50_times(
    served: Served, client: httpx.Client, tmp_path: Path, how: str
) -> None:
    body = tmp_path / "big.json"
    body.write_bytes(TWO_MIB)
    for i in range(50):
        if how == "urllib":
            status, problem = _put_urllib(served.url)
        elif how == "httpx":
            status, problem = _put_httpx(client)
        elif how == "httpx-chunked":
            status, problem = _put_httpx_chunked(client)
        else:
            status, problem = _put_curl(served.url, body)
        assert (status, problem["code"]) == (413, "too_large"), f"attempt {i}"


# -- slow clients ------------------------------------------------------------------------------------


def _limit_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))  # systemd's default soft limit


@pytest.fixture
def panel_process(config_dir: Path, status_dir: Path, tmp_path: Path) -> Iterator[Panel]:
    """``adminapi`` as a service runs it: its own process, 1,024 descriptors, a 2 s header deadline."""
    with spawn_panel(config_dir, status_dir, tmp_path, env={"ADMIN_HEADER_TIMEOUT": "2"}, preexec=_limit_nofile) as p:
        yield p


def test_1100_drip_fed_connections_do_not_starve_other_clients(panel_process: Panel) -> None:
    url, log, _pid = panel_process
    host, port = url.removeprefix("http://").split(":")
    slow: list[socket.socket] = []
    latencies: list[float] = []

    def healthz() -> None:
        started = time.monotonic()
        r = httpx.get(url + "/healthz", timeout=5)
        assert r.status_code == 200
        latencies.append(time.monotonic() - started)

    try:
        for i in range(1100):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((host, int(port)))
            slow.append(s)
            if i % 100 == 99:
                healthz()
        wait_until(lambda: all(_writable(s) for s in slow[-10:]), timeout=5, message="connected")
        for s in slow:
            _try_send(s, b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        deadline = time.monotonic() + 3.0  # beyond the 2 s header deadline
        while time.monotonic() < deadline:
            for s in slow:
                _try_send(s, b"X")  # one byte of a header line at a time
            healthz()
        # A drip-fed connection is closed at its header deadline even though bytes keep arriving.
        late = socket.create_connection((host, int(port)), timeout=5)
        slow.append(late)
        late.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 6 and not closed:
            try:
                late.sendall(b"X")
                late.settimeout(0.2)
                closed = late.recv(1024) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
        assert closed and time.monotonic() - started < 4.5
    finally:
        for s in slow:
            s.close()
    assert max(latencies) < 2.0, latencies  # (each took seconds, or got 503, before)
    text = log.read_text()
    assert len(text) < 20_000, f"{len(text)} bytes logged:\n{text[-2000:]}"
    assert "Traceback" not in text


def _writable(s: socket.socket) -> bool:
    return s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def _try_send(s: socket.socket, data: bytes) -> None:
    try:
        s.send(data)
    except OSError:
        pass  # dropped by the server: what it should do to the slowest


def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(panel_process: Panel) -> None:
    url = panel_process.url
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=6) as s:
        started = time.monotonic()
        assert s.recv(1024) == b""
        assert 1.5 < time.monotonic() - started < 4.5


def test_a_kept_alive_connection_gets_a_new_header_deadline_per_request(panel_process: Panel) -> None:
    """After a response, drip-feeding the next request's headers does not keep the connection either."""
    url = panel_process.url
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=6) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_response_head(sock, timeout=3).startswith(b"HTTP/1.1 200 ")
        sock.settimeout(0.3)
        started = time.monotonic()
        closed = False
        while not closed and time.monotonic() - started < 8:
            try:
                sock.sendall(b"G")  # the next request, one byte at a time
                closed = sock.recv(1024) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
        assert closed and time.monotonic() - started < 4.5


def _peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert match is not None
    return int(match.group(1)) / 1024


@pytest.mark.parametrize("path", ["/api/playground", "/api/prompts/greeting"])
def test_200_mib_unauthenticated_bodies_cost_the_panel_no_memory(
    config_dir: Path, status_dir: Path, tmp_path: Path, path: str
) -> None:
    """Four 200 MiB chunked bodies at once, no token: the panel's peak memory does not move (it was +400 MiB each)."""
    with spawn_panel(config_dir, status_dir, tmp_path) as panel:
        host, port = panel.url.removeprefix("http://").split(":")
        assert httpx.get(panel.url + "/healthz", timeout=5).status_code == 200
        before = _peak_rss_mib(panel.pid)
        method = "PATCH" if path.startswith("/api/prompts") else "POST"
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"[" * (1 << 20))
        statuses: list[bytes] = []

        def stream() -> None:
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
                try:
                    for _ in range(200):
                        sock.sendall(chunk)
                except OSError:
                    pass  # the panel stopped listening, as it should
                try:
                    statuses.append(_read_response_head(sock, timeout=2)[:12])
                except OSError:
                    statuses.append(b"")

        started = time.monotonic()
        threads = [threading.Thread(target=stream) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert time.monotonic() - started < 30
        grown = _peak_rss_mib(panel.pid) - before
        assert grown < 24, f"peak memory grew by {grown:.0f} MiB"
        assert all(s in (b"", b"HTTP/1.1 401") for s in statuses), statuses
        assert httpx.get(panel.url + "/healthz", timeout=5).status_code == 200


def test_a_body_that_does_not_arrive_in_time_gets_408(config_dir: Path, status_dir: Path, tmp_path: Path) -> None:
    """Headers complete, token good, then the body drips: the body deadline answers, it does not wait forever."""
    served = serve(make_settings(config_dir, status_dir, tmp_path, admin_body_timeout=1))
    try:
        with _raw(served) as sock:
            sock.sendall(
                f"PUT /api/prompts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Length: 100\r\n\r\n{".encode()
            )
            started = time.monotonic()
            head = _read_response_head(sock, timeout=5)
        assert head.startswith(b"HTTP/1.1 408 "), head
        assert 0.9 < time.monotonic() - started < 3
    finally:
        stop(served)
