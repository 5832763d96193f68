"""The panel's event loop never touches the disk: a read that blocks holds one request, not the panel."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import httpx
import pytest

import adminapi.consumers
import adminapi.editor
from adminapi.history import HistoryStore

from .conftest import Served


@pytest.mark.parametrize(
    ("owner", "name", "path"),
    [
        (adminapi.editor, "read_content", "/api/prompts"),  # the prompts file
        (adminapi.editor, "read_content", "/api/prompts/diff?from=0000000"),
        (adminapi.consumers, "read_statuses", "/api/status"),  # the status dir
        (HistoryStore, "list", "/api/prompts/history"),  # SQLite
    ],
    ids=["prompts-file", "diff", "status-dir", "history-db"],
)
def test_healthz_answers_while_a_disk_read_is_blocked(
    served: Served, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, path: str
) -> None:
    entered = threading.Event()
    release = threading.Event()
    original = getattr(owner, name)

    def blocked(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(20)  # like a read from a FIFO nobody writes, or a hung NFS server
        return original(*args, **kwargs)

    if path.startswith("/api/prompts/diff"):
        # The diff reads the history first (its revision is not found: 404); make the disk read the one that hangs.
        path = "/api/prompts/diff?from=" + served.app.state.editor.history.latest().sha256  # type: ignore[attr-defined]
    monkeypatch.setattr(owner, name, blocked)
    answers: list[int] = []
    with served.client() as slow:
        waiter = threading.Thread(target=lambda: answers.append(slow.get(path).status_code))
        waiter.start()
        try:
            assert entered.wait(10), "the request did not reach the blocking read"
            latencies = []
            with httpx.Client(base_url=served.url, timeout=5) as c:
                for _ in range(5):
                    started = time.monotonic()
                    assert c.get("/healthz").status_code == 200
                    latencies.append(time.monotonic() - started)
            assert not answers, "the blocked request must still be waiting"
        finally:
            release.set()
            waiter.join(timeout=20)
    assert answers == [200]
    assert statistics.median(latencies) < 0.1, latencies
