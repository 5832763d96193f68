"""The panel against hostile files: a FIFO or a directory at the prompts path or in the knowledge base,
a 1 GiB prompts file, a lock symlink planted by another user, forged consumers in the status directory.

Each answer comes at once, as the JSON error body with the path and what is wrong; nothing is written
outside the directories, and no forged consumer shows or makes a save wait.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from adminapi import AdminSettings
from promptwatch import MAX_DOCUMENT_BYTES
from promptwatch.status import ConsumerStatus, process_start_ticks
from stasis.kb import KnowledgeBase
from tests.attacker import NOBODY, as_nobody
from tests.util import needs_root

from .conftest import TOKEN, make_settings, serve, stop


def test_a_fifo_at_the_prompts_path_is_a_json_error_not_a_hang(client: httpx.Client, prompts_file: Path) -> None:
    prompts_file.unlink()
    os.mkfifo(prompts_file)
    r = client.get("/api/prompts", timeout=5)
    assert r.status_code == 409
    assert r.json()["detail"] == f"{prompts_file}: is a FIFO, not a regular file"
    status = client.get("/api/status", timeout=5)
    assert status.status_code == 200
    assert status.json()["valid"] is False
    assert status.json()["error"] == f"{prompts_file}: is a FIFO, not a regular file"
    assert client.get("/healthz", timeout=5).status_code == 200
    save = client.put("/api/prompts", content=b'{"system_prompt": "s", "greeting": "g"}', timeout=5)
    assert save.status_code == 409 and "is a FIFO" in save.json()["detail"], save.text


def test_a_directory_at_the_prompts_path_is_a_json_error(client: httpx.Client, prompts_file: Path) -> None:
    prompts_file.unlink()
    prompts_file.mkdir()
    r = client.get("/api/prompts", timeout=5)
    assert r.status_code == 409 and r.json()["detail"] == f"{prompts_file}: is a directory, not a regular file"


def test_a_1_gib_prompts_file_is_read_only_up_to_the_limit(client: httpx.Client, prompts_file: Path) -> None:
    with open(prompts_file, "r+b") as f:
        f.truncate(1 << 30)
    status = client.get("/api/status", timeout=10).json()
    assert status["valid"] is False
    assert status["error"] == f"{prompts_file}: document is {1 << 30} bytes, the limit is {MAX_DOCUMENT_BYTES}"


def test_special_files_in_the_knowledge_base(client: httpx.Client, config_dir: Path) -> None:
    kb = config_dir / "kb"
    os.mkfifo(kb / "pipe.md")
    (kb / "dir.md").mkdir()
    (kb / "loop.md").symlink_to("loop.md")
    names = {f["name"] for f in client.get("/api/kb", timeout=5).json()["files"]}
    assert not names & {"pipe.md", "dir.md", "loop.md"}
    for name, reason in (("pipe.md", "is a FIFO"), ("dir.md", "is a directory"), ("loop.md", "is a symlink")):
        r = client.get(f"/api/kb/{name}", timeout=5)
        assert r.status_code == 409, r.text
        assert r.json()["detail"].startswith(f"{kb / name}: {reason}")


@needs_root
def test_a_lock_symlink_planted_in_the_knowledge_base_does_not_create_a_file_outside(
    world: Path, config_dir: Path, status_dir: Path, tmp_path: Path
) -> None:
    kb = world / "kb"
    kb.mkdir()
    os.chown(kb, 0, NOBODY)
    kb.chmod(0o2775)  # the group-writable knowledge base of a deployment
    outside = world / "created-by-root"
    as_nobody("ln", "-s", outside, kb / ".новости.md.lock")
    served = serve(make_settings(config_dir, status_dir, tmp_path, kb_dir=kb))
    try:
        with served.client() as client:
            r = client.post("/api/kb", files={"file": ("новости.md", "Новости".encode(), "text/markdown")})
    finally:
        stop(served)
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == f"{kb / '.новости.md.lock'}: the lock file is a symlink; not followed (remove it)"
    assert not outside.exists() and not outside.is_symlink()
    assert not (kb / "новости.md").exists()


@needs_root
def test_forged_consumers_neither_show_nor_make_a_save_wait(
    world: Path, config_dir: Path, tmp_path: Path, prompts_file: Path
) -> None:
    status_dir = world / "status"
    status_dir.mkdir()
    os.chown(status_dir, 0, NOBODY)
    status_dir.chmod(0o2775)  # a group may write here: its members' files are still not trusted
    now = time.time()
    for service, sha in (("forged-in-sync", "0" * 64), ("ghost", "f" * 64)):
        entry = ConsumerStatus(
            service=service,
            pid=1,  # alive, with a public start time: a perfect forgery but for the file's owner
            path=str(prompts_file),
            sha256=sha,
            loaded_at=now,
            source="inotify",
            mode="inotify",
            last_error=None,
            updated_at=now,
            started_at=now,
            hostname=os.uname().nodename,
            proc_start=process_start_ticks(1),
        )
        as_nobody("tee", status_dir / entry.filename, stdin=entry.to_json())
    settings: AdminSettings = make_settings(config_dir, status_dir, tmp_path, prompts_hot_reload=False)
    served = serve(settings)
    try:
        with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            assert client.get("/api/status").json()["consumers"] == []
            current = client.get("/api/prompts")
            document = current.json()
            document["greeting"] = "Новое приветствие"
            started = time.monotonic()
            r = client.put("/api/prompts?wait_ms=5000", json=document, headers={"If-Match": current.headers["ETag"]})
            took = time.monotonic() - started
    finally:
        stop(served)
    assert r.status_code == 200, r.text
    assert r.json()["consumers"] == [] and r.json()["all_applied"] is True
    assert took < 2.5, f"the save waited {took:.1f}s for a forged consumer"


@needs_root
def test_a_knowledge_base_dir_swapped_for_a_symlink_by_a_group_member_is_refused(
    world: Path, config_dir: Path, status_dir: Path, tmp_path: Path
) -> None:
    """In the group-writable prompts directory a member can rename kb/ away and put a link in its place."""
    prompts_dir = world / "prompts"
    prompts_dir.mkdir()
    os.chown(prompts_dir, 0, NOBODY)
    prompts_dir.chmod(0o2775)
    kb = prompts_dir / "kb"
    kb.mkdir()
    (kb / "тарифы.md").write_text("# Тарифы\n")
    outside = world / "outside"
    outside.mkdir(mode=0o777)
    (outside / "secret.md").write_text("ADMIN_TOKEN=секрет\n")
    as_nobody("mv", kb, prompts_dir / "kb.old")
    as_nobody("ln", "-s", outside, kb)
    served = serve(make_settings(config_dir, status_dir, tmp_path, kb_dir=kb))
    try:
        with served.client() as client:
            upload = client.post("/api/kb", files={"file": ("новости.md", "Новости".encode(), "text/markdown")})
            listed = client.get("/api/kb").json()["files"]
            read = client.get("/api/kb/secret.md")
            deleted = client.delete("/api/kb/secret.md")
    finally:
        stop(served)
    assert upload.status_code == 409, upload.text
    assert "is a symlink" in upload.json()["detail"] and str(kb) in upload.json()["detail"]
    assert listed == []
    assert read.status_code == 409 and deleted.status_code == 409
    assert sorted(p.name for p in outside.iterdir()) == ["secret.md"], "nothing written or removed outside"
    with KnowledgeBase(kb, hot_reload=False) as bot_kb:
        assert bot_kb.current.documents == ()
