"""``promptwatch labels`` and ``promptwatch promote``, run as the installed console script."""

from __future__ import annotations

import json
import os
from pathlib import Path

from promptwatch import PRODUCTION, HotPrompts, read_statuses, sha256_hex
from promptwatch.history import HistoryStore, history_file
from tests.util import wait_until

from .conftest import ProcessFactory
from .helpers import PROMPTWATCH, assert_no_temp_files, make_doc, run_cli


def _env(prod: Path, state: Path, status_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PROMPTS_PATH": str(prod),
        "STATE_DIR": str(state),
        "PROMPTS_STATUS_DIR": str(status_dir),
    }


def test_promote_through_prompts_path_and_history(tmp_path: Path, status_dir: Path) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p1"))
    (tmp_path / "prompts.staging.json").write_bytes(make_doc("s1"))
    state = tmp_path / "state"
    env = _env(prod, state, status_dir)
    result = run_cli("promote", "staging", "production", "--if-match", sha256_hex(make_doc("p1")), env=env)
    assert result.returncode == 0, result.stderr
    assert prod.read_bytes() == make_doc("s1")
    assert f"sha256={sha256_hex(make_doc('s1'))}" in result.stdout
    store = HistoryStore(history_file(state, PRODUCTION))
    try:
        revs, _ = store.list()
        assert [(r.origin, r.message) for r in revs] == [
            ("promote", f"promoted from staging at {sha256_hex(make_doc('s1'))[:12]}")
        ]
        assert revs[0].author.startswith("cli:")
    finally:
        store.close()
    assert_no_temp_files(tmp_path)


def test_promote_conflict_exit_1_nothing_written(tmp_path: Path, status_dir: Path) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p2"))
    (tmp_path / "prompts.staging.json").write_bytes(make_doc("s1"))
    state = tmp_path / "state"
    result = run_cli(
        "promote", "staging", "production", "--if-match", sha256_hex(make_doc("p1")), env=_env(prod, state, status_dir)
    )
    assert result.returncode == 1
    assert "changed since it was read" in result.stderr
    assert "Traceback" not in result.stderr
    assert prod.read_bytes() == make_doc("p2")
    assert not history_file(state).exists()


def test_promote_errors_name_the_problem(tmp_path: Path, status_dir: Path) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p1"))
    env = _env(prod, tmp_path / "state", status_dir)
    for argv, expected in (
        (("promote", "Nope!", "production"), "invalid label 'Nope!'"),
        (("promote", "ghost", "production"), "no label 'ghost'"),
    ):
        result = run_cli(*argv, env=env)
        assert result.returncode == 1, argv
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
    other = tmp_path / "other"  # --prompts overrides PROMPTS_PATH
    other.mkdir()
    (other / "prompts.json").write_bytes(make_doc("o1"))
    result = run_cli("promote", "production", "staging", "--prompts", other / "prompts.json", env=env)
    assert result.returncode == 0, result.stderr
    assert (other / "prompts.staging.json").read_bytes() == make_doc("o1")
    assert not (tmp_path / "prompts.staging.json").exists()


def test_labels_lists_sha_size_mtime_and_consumers(tmp_path: Path, status_dir: Path) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p1"))
    staging = tmp_path / "prompts.staging.json"
    staging.write_bytes(make_doc("s1"))
    env = _env(prod, tmp_path / "state", status_dir)
    hot = HotPrompts(staging, service="bot-under-test", status_dir=status_dir, label="staging")
    try:
        result = run_cli("labels", "--json", env=env)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["path"] == str(prod)
        rows = {r["label"]: r for r in out["labels"]}
        assert list(rows) == [PRODUCTION, "staging"]
        assert rows["staging"]["sha256"] == sha256_hex(make_doc("s1"))
        assert rows["staging"]["size"] == len(make_doc("s1"))
        assert rows["staging"]["mtime"] == staging.stat().st_mtime
        assert rows["staging"]["document"] == "prompts.staging"
        assert [(c["service"], c["pid"], c["in_sync"]) for c in rows["staging"]["consumers"]] == [
            ("bot-under-test", os.getpid(), True)
        ]
        assert rows[PRODUCTION]["consumers"] == []
        text = run_cli("labels", prod, env={**env, "PROMPTS_PATH": "/nonexistent/prompts.json"})
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        assert lines[0].startswith(f"production  sha256={sha256_hex(make_doc('p1'))[:12]}")
        assert lines[1].startswith("staging     sha256=")
        assert f"bot-under-test pid={os.getpid()}" in lines[1]
    finally:
        hot.close()


def test_watch_of_a_label_file_reports_that_label(tmp_path: Path, status_dir: Path, spawn: ProcessFactory) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p1"))
    staging = tmp_path / "prompts.staging.json"
    staging.write_bytes(make_doc("s1"))
    child = spawn(PROMPTWATCH, "watch", staging, "--json", "--service", "w", env=_env(prod, tmp_path / "s", status_dir))
    assert json.loads(child.line())["sha256"] == sha256_hex(make_doc("s1"))
    entries = wait_until(lambda: read_statuses(status_dir, path=staging))
    assert [(e.service, e.label) for e in entries] == [("w", "staging")]
    assert (status_dir / f"w.{child.pid}.staging.json").exists()
