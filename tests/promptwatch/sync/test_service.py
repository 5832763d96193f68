"""``promptwatch sync`` as a process: sd_notify readiness after the catch-up, --once, clear start-up errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from ..helpers import PROMPTWATCH, Child, make_doc, run_cli
from .cluster import SimHost
from .conftest import RedisFactory
from .redis_servers import free_port


def test_ready_after_catch_up_then_a_clean_stop(redis_server: RedisFactory, tmp_path: Path) -> None:
    server = redis_server()
    ahead = SimHost(tmp_path, "b", server.url, doc=make_doc(0))
    ahead.start_agent()
    newest = ahead.write("newest")
    host = SimHost(tmp_path, "a", server.url, doc=make_doc("old"))
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(15)
        agent = Child([os.fspath(PROMPTWATCH), "sync"], env={**host.env, "NOTIFY_SOCKET": str(sock_path)})
        try:
            ready = sock.recv(4096).decode()
            assert ready.startswith("READY=1\nSTATUS=distributing as host a via unix://"), ready
            assert host.sha() == newest, "READY=1 only after this host caught up"
            agent.proc.send_signal(signal.SIGTERM)
            assert agent.wait(15) == 0
            assert "STOPPING=1" in sock.recv(4096).decode()
        finally:
            agent.stop()
            ahead.stop()


def test_once_exit_status(redis_server: RedisFactory, tmp_path: Path) -> None:
    server = redis_server()
    host = SimHost(tmp_path, "a", server.url, doc=make_doc(0))
    ok = run_cli("sync", "--once", env=host.env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("distributing as host a via unix://") and "prompts=v1" in ok.stdout
    down = run_cli("sync", "--once", env={**host.env, "PROMPTS_REDIS_URL": f"unix://{tmp_path}/none.sock"})
    assert down.returncode == 1
    assert "NOT distributing (host a): Redis unreachable" in down.stdout
    assert "Traceback" not in down.stderr


def test_start_up_errors_name_the_setting(tmp_path: Path) -> None:
    host = SimHost(tmp_path, "a", "redis+sentinel://h:1/", doc=make_doc(0))
    unset = run_cli("sync", "--once", env={**host.env, "PROMPTS_REDIS_URL": ""})
    assert unset.returncode == 1 and "PROMPTS_REDIS_URL is not set" in unset.stderr
    bad = run_cli("sync", "--once", env=host.env)
    assert bad.returncode == 1 and "the service name is missing" in bad.stderr, bad.stderr
    scheme = run_cli("sync", "--once", env={**host.env, "PROMPTS_REDIS_URL": "http://x"})
    assert scheme.returncode == 1 and "PROMPTS_REDIS_URL" in scheme.stderr and "Traceback" not in scheme.stderr


def test_acl_user_and_password_from_the_url(redis_server: RedisFactory, tmp_path: Path) -> None:
    server = redis_server(tcp=True)
    admin = server.client()
    admin.acl_setuser("bot", enabled=True, passwords=["+s3cret-pass"], keys=["t:*"], commands=["+@all"])
    admin.acl_setuser("default", enabled=False)
    url = f"redis://bot:s3cret-pass@127.0.0.1:{server.port}/0"
    host = SimHost(tmp_path, "a", url, doc=make_doc(0))
    ok = run_cli("sync", "--once", env=host.env)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert "s3cret" not in ok.stdout and "bot:***@" in ok.stdout
    wrong = run_cli("sync", "--once", env={**host.env, "PROMPTS_REDIS_URL": url.replace("s3cret", "wrong")})
    assert wrong.returncode == 1 and "NOT distributing" in wrong.stdout
    assert "wrong-pass" not in wrong.stdout + wrong.stderr and "Traceback" not in wrong.stderr


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (openssl), as an operator's TLS Redis has."""
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    ext = directory / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for argv in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
         "-subj", "/CN=t"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "1",
         "-extfile", ext],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, argv)], check=True, capture_output=True, timeout=60)
    return ca, cert, key


def test_tls_through_a_rediss_url(redis_server: RedisFactory, tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    port = free_port()
    tls = ("--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key))
    redis_server(extra_args=(*tls, "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"))
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    host = SimHost(tmp_path, "a", url, doc=make_doc(0))
    ok = run_cli("sync", "--once", env=host.env)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert "via rediss://127.0.0.1" in ok.stdout
    # Without the CA the server's certificate is not trusted: refused, and said so.
    untrusted = run_cli("sync", "--once", env={**host.env, "PROMPTS_REDIS_URL": f"rediss://127.0.0.1:{port}/0"})
    assert untrusted.returncode == 1 and "certificate verify failed" in untrusted.stdout, untrusted.stdout
