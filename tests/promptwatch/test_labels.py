"""Labels through the core: names and files, watching and hot reload per label, promotion, history per label."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from promptwatch import (
    PRODUCTION,
    ConflictError,
    DocumentError,
    HotPrompts,
    LabelError,
    LabelSet,
    atomic_write,
    check_label,
    document_name,
    label_path,
    list_labels,
    promote,
    read_statuses,
    sha256_hex,
)
from promptwatch.history import HistoryStore, history_file
from promptwatch.labels import label_of
from promptwatch.promotion import record_promotion
from tests.util import wait_until

from .helpers import assert_no_temp_files, greeting_of, make_doc

GOOD_NAMES = ["staging", "a", "0", "short-greeting", "v2_test", "x" * 32, PRODUCTION]
BAD_NAMES = ["", "Staging", "-x", "_x", "x" * 33, "a.b", "a/b", "..", "a b", "é", "x\n", "prod*"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_label_names(name: str) -> None:
    assert check_label(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_label_names_say_the_rule(name: str) -> None:
    with pytest.raises(LabelError, match="invalid label .*a-z 0-9"):
        check_label(name)


def test_label_files_beside_production(tmp_path: Path) -> None:
    prod = tmp_path / "prompts.json"
    assert label_path(prod, PRODUCTION) == prod
    assert label_path(prod, "staging") == tmp_path / "prompts.staging.json"
    assert label_of(prod, tmp_path / "prompts.staging.json") == "staging"
    assert label_of(prod, prod) == PRODUCTION
    for not_a_label in ("prompts.production.json", "prompts..json", "prompts.Staging.json", "other.json"):
        assert label_of(prod, tmp_path / not_a_label) is None, not_a_label
    assert label_of(prod, tmp_path / "sub" / "prompts.staging.json") is None
    custom = tmp_path / "bot-prompts.json"  # another PROMPTS_PATH: its labels follow its name
    assert label_path(custom, "staging") == tmp_path / "bot-prompts.staging.json"
    assert document_name(PRODUCTION) == "prompts"
    assert document_name("staging") == "prompts.staging"
    with pytest.raises(LabelError):
        label_path(prod, "../etc/passwd")


def test_list_labels_production_first_and_only_regular_files(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    prod = config / "prompts.json"
    prod.write_bytes(make_doc(1))
    (config / "prompts.zeta.json").write_bytes(make_doc("z"))
    (config / "prompts.alpha.json").write_bytes(make_doc("a"))
    (config / "prompts.BAD.json").write_bytes(make_doc("x"))
    (config / "prompts.production.json").write_bytes(make_doc("x"))
    os.mkfifo(config / "prompts.fifo.json")  # would block a naive reader forever
    os.symlink("prompts.alpha.json", config / "prompts.linked.json")  # within the directory: followed
    outside = tmp_path / "outside.json"
    outside.write_bytes(make_doc("o"))
    os.symlink(outside, config / "prompts.outside.json")  # leaves the directory: not a label
    found = list_labels(prod)
    assert [f.label for f in found] == [PRODUCTION, "alpha", "linked", "zeta"]
    assert found[0].sha256 == sha256_hex(make_doc(1))
    assert found[0].size == len(make_doc(1))
    assert found[2].sha256 == sha256_hex(make_doc("a"))


@pytest.fixture
def labels(tmp_path: Path, status_dir: Path) -> Any:
    made: list[LabelSet] = []

    def factory(prod: Path, **kwargs: Any) -> LabelSet:
        def hot(path: Path, label: str) -> HotPrompts:
            return HotPrompts(path, service="test-labels", status_dir=status_dir, label=label, **kwargs)

        ls = LabelSet(prod, hot, preload=kwargs.pop("preload", ()))
        made.append(ls)
        return ls

    yield factory
    for ls in made:
        ls.close()


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_label_written_is_hot_reloaded_and_reported(tmp_path: Path, status_dir: Path, labels: Any, mode: str) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p1"))
    staging = tmp_path / "prompts.staging.json"
    atomic_write(staging, make_doc("s1"))
    ls = labels(prod, mode=mode, interval=0.05)
    hot = ls.get("staging")
    assert hot.current.prompts.greeting == greeting_of("s1")
    assert hot.current.label == "staging"
    atomic_write(staging, make_doc("s2"))
    assert hot.wait_for(lambda s: s.prompts.greeting == greeting_of("s2"), 5)
    assert ls.production.current.prompts.greeting == greeting_of("p1")  # the other label is untouched
    # One status entry per label, each with the file and the sha it runs.
    entries = {s.label: s for s in read_statuses(status_dir)}
    assert set(entries) == {PRODUCTION, "staging"}
    assert entries["staging"].path == str(staging)
    wait_until(lambda: read_statuses(status_dir, path=staging)[0].sha256 == sha256_hex(make_doc("s2")))
    assert entries[PRODUCTION].sha256 == sha256_hex(make_doc("p1"))
    pinned = ls.pin()
    assert {k: v.prompts.greeting for k, v in pinned.items()} == {
        PRODUCTION: greeting_of("p1"),
        "staging": greeting_of("s2"),
    }
    assert_no_temp_files(tmp_path)


def test_hand_edit_of_a_label_file(tmp_path: Path, labels: Any) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p1"))
    staging = tmp_path / "prompts.staging.json"
    staging.write_bytes(make_doc("s1"))
    ls = labels(prod, preload=["staging"])
    hot = ls.loaded()["staging"]
    with open(staging, "r+b") as f:  # an editor saving in place: truncate and write
        f.truncate(0)
        f.write(make_doc("hand"))
    assert hot.wait_for(lambda s: s.prompts.greeting == greeting_of("hand"), 5)
    staging.write_bytes(b'{"greeting": ')  # a broken hand edit keeps the last good label
    wait_until(lambda: hot.last_error is not None, message="the broken label file is reported")
    assert hot.current.prompts.greeting == greeting_of("hand")
    assert "prompts.staging.json" in (hot.last_error or "")


def test_unknown_and_invalid_labels(tmp_path: Path, labels: Any) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p1"))
    (tmp_path / "prompts.broken.json").write_bytes(b"{}")
    ls = labels(prod)
    with pytest.raises(LabelError, match="no label 'nope'"):
        ls.get("nope")
    with pytest.raises(LabelError, match="invalid label"):
        ls.get("../prompts")
    with pytest.raises(Exception, match="label 'broken'"):
        ls.get("broken")
    os.mkfifo(tmp_path / "prompts.fifo.json")
    with pytest.raises(LabelError, match="not a regular file"):
        ls.get("fifo")
    assert set(ls.loaded()) == {PRODUCTION}


def test_promote_writes_the_exact_bytes(tmp_path: Path) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p1"))
    staged = make_doc("s1") + b"\n\n"  # not re-serialised: the same bytes, the same sha
    (tmp_path / "prompts.staging.json").write_bytes(staged)
    recorded: list[str] = []
    done = promote(
        prod, "staging", PRODUCTION, if_match=sha256_hex(make_doc("p1")), record=lambda p: recorded.append(p.sha256)
    )
    assert prod.read_bytes() == staged
    assert done.sha256 == sha256_hex(staged)
    assert done.previous_sha256 == sha256_hex(make_doc("p1"))
    assert recorded == [done.sha256]
    assert_no_temp_files(tmp_path)


def test_promote_conflict_writes_nothing(tmp_path: Path) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p2"))  # changed since the promoter read p1
    (tmp_path / "prompts.staging.json").write_bytes(make_doc("s1"))
    recorded: list[str] = []
    with pytest.raises(ConflictError) as info:
        promote(prod, "staging", PRODUCTION, if_match=sha256_hex(make_doc("p1")), record=lambda p: recorded.append("x"))
    assert info.value.current == sha256_hex(make_doc("p2"))
    assert prod.read_bytes() == make_doc("p2")
    assert recorded == []
    assert_no_temp_files(tmp_path)


def test_promote_refuses_bad_sources(tmp_path: Path) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p1"))
    (tmp_path / "prompts.bad.json").write_bytes(b'{"greeting": "x"}')
    with pytest.raises(DocumentError, match="prompts.bad.json"):
        promote(prod, "bad", PRODUCTION)
    with pytest.raises(LabelError, match="no label 'ghost'"):
        promote(prod, "ghost", PRODUCTION)
    with pytest.raises(LabelError, match="onto itself"):
        promote(prod, "staging", "staging")
    os.mkfifo(tmp_path / "prompts.fifo.json")
    with pytest.raises(LabelError, match="not a regular file"):
        promote(prod, "fifo", PRODUCTION)
    assert prod.read_bytes() == make_doc("p1")
    # A new label can be created by promotion (as a copy), conditionally on it not existing yet.
    promote(prod, PRODUCTION, "copy", if_match="")
    assert (tmp_path / "prompts.copy.json").read_bytes() == make_doc("p1")
    with pytest.raises(ConflictError):
        promote(prod, PRODUCTION, "copy", if_match="")


def test_history_per_label(tmp_path: Path) -> None:
    prod = tmp_path / "prompts.json"
    prod.write_bytes(make_doc("p1"))
    (tmp_path / "prompts.staging.json").write_bytes(make_doc("s1"))
    state = tmp_path / "state"
    state.mkdir()
    assert history_file(state) == state / "history.sqlite3"
    assert history_file(state, "staging") == state / "history.staging.sqlite3"
    done = promote(prod, "staging", PRODUCTION, record=lambda p: record_promotion(state, p, author="ops"))
    stores = {label: HistoryStore(history_file(state, label)) for label in (PRODUCTION, "staging")}
    try:
        prod_revs, total = stores[PRODUCTION].list()
        assert total == 1
        assert (prod_revs[0].sha256, prod_revs[0].origin, prod_revs[0].author) == (done.sha256, "promote", "ops")
        assert prod_revs[0].message == f"promoted from staging at {done.sha256[:12]}"
        assert stores["staging"].list() == ([], 0)  # staging's own history is separate
    finally:
        for store in stores.values():
            store.close()


def test_redis_documents_follow_the_same_label_rule(tmp_path: Path) -> None:
    from promptwatch.sync.documents import DocumentSet

    prod = tmp_path / "prompts.json"
    docs = DocumentSet(prod)
    assert docs.name_of(prod) == document_name(PRODUCTION)
    assert docs.name_of(tmp_path / "prompts.staging.json") == document_name("staging") == "prompts.staging"
    for not_a_label in ("prompts.production.json", "prompts.Staging.json", f"prompts.{'x' * 33}.json"):
        assert docs.name_of(tmp_path / not_a_label) is None, not_a_label
    staging = docs.document("prompts.staging")
    assert staging is not None and staging.path == label_path(prod, "staging")
    assert docs.document("prompts.production") is None
    assert docs.document(f"prompts.{'x' * 33}") is None
