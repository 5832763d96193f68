"""The bot choosing a label per call: app argument, channel variable, sticky split; pinned and logged."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
from pathlib import Path

import orjson
import pytest

from promptwatch import PRODUCTION, read_statuses, sha256_hex, write_document
from stasis.calllog import CallLog
from stasis.routing import SplitShare, choose_label, label_from_args, parse_split, split_bucket

from .ari_double import AriDouble, wait_for
from .fake_openai import FakeOpenAi
from .test_call import Make, Start, call_record, edit, heard, pieces
from .test_calllog import VERSION_1
from .test_process import service_env, spawn

# --- the chooser, directly -----------------------------------------------------------------------------------


def test_argument_beats_variable_beats_split() -> None:
    split = parse_split("staging:100")
    assert choose_label(arg="a", variable="b", caller="1", split=split).requested == "a"
    assert choose_label(arg=None, variable="b", caller="1", split=split).origin == "variable"
    assert choose_label(arg="", variable="", caller="1", split=split).requested == "staging"
    assert choose_label(arg=None, variable=None, caller="1").requested == PRODUCTION
    assert choose_label(arg=None, variable=None, caller="1").origin == "default"


def test_label_from_app_args() -> None:
    assert label_from_args(["label=staging"]) == "staging"
    assert label_from_args(["foo", "label= short-greeting "]) == "short-greeting"
    assert label_from_args(["labels=x", "nolabel"]) is None
    assert label_from_args([]) is None
    assert label_from_args(["label="]) == ""


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("staging", "expected LABEL:PERCENT"),
        ("Staging:10", "not a label name"),
        ("production:10", "production gets what"),
        ("staging:ten", "not a percentage"),
        ("staging:101", "between 0 and 100"),
        ("staging:60,other:50", "more than 100"),
        ("staging:5,staging:5", "appears twice"),
    ],
)
def test_bad_split_is_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_split(spec)


def test_split_over_1000_callers_is_sticky_and_about_the_share() -> None:
    split = parse_split(" staging:10 , short-greeting:5 ")
    assert split == (SplitShare("staging", 10.0), SplitShare("short-greeting", 5.0))
    callers = [f"7900{n:07d}" for n in range(1000)]
    chosen = {c: choose_label(arg=None, variable=None, caller=c, split=split).requested for c in callers}
    counts = {label: sum(1 for v in chosen.values() if v == label) for label in ("staging", "short-greeting")}
    # Binomial(1000, p): 3 standard deviations around 100 and 50.
    assert 72 <= counts["staging"] <= 128, counts
    assert 30 <= counts["short-greeting"] <= 70, counts
    assert sum(counts.values()) + sum(1 for v in chosen.values() if v == PRODUCTION) == 1000
    # Sticky: the same caller always gets the same label, whatever else happened meanwhile.
    again = {c: choose_label(arg=None, variable=None, caller=c, split=split).requested for c in reversed(callers)}
    assert again == chosen
    # Raising a share keeps the callers already on it (the buckets are cumulative from 0).
    wider = parse_split("staging:20,short-greeting:5")
    assert all(
        choose_label(arg=None, variable=None, caller=c, split=wider).requested == "staging"
        for c, v in chosen.items()
        if v == "staging"
    )
    assert 0 <= split_bucket("") < 10_000


# --- real calls through the ARI double --------------------------------------------------------------------------

STAGING_GREETING = "Здравствуйте! Это тестовая версия."
SHORT_GREETING = "Алло!"


def _label(prompts_file: Path, label: str, greeting: str) -> str:
    data = orjson.loads(prompts_file.read_bytes())
    data["greeting"] = greeting
    sha, _ = write_document(prompts_file.with_name(f"prompts.{label}.json"), orjson.dumps(data))
    return sha


def _greeting(prompts_file: Path) -> list[str]:
    return pieces(orjson.loads(prompts_file.read_bytes())["greeting"])


def test_app_argument_chooses_the_label_and_the_log_records_it(
    ari: AriDouble, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    staging_sha = _label(prompts_file, "staging", STAGING_GREETING)
    svc = start_service(make_settings())
    ch = ari.place_call(args=("label=staging",))
    wait_for(lambda: heard(svc, ari, ch) == pieces(STAGING_GREETING), message="staging greeting")
    ari.hear(ch, "до свидания")
    detail = call_record(svc, ch)
    assert (detail.label, detail.prompts_sha256) == ("staging", staging_sha)
    assert not ari.requests_to("GET", "/variable")  # the argument decided: no variable lookup
    # the bot now runs staging too and reports the sha it runs for it
    entries = {
        s.label: s.sha256 for s in read_statuses(svc.settings.prompts_status_dir) if s.service == "metrotech-bot"
    }
    assert entries == {PRODUCTION: sha256_hex(prompts_file.read_bytes()), "staging": staging_sha}
    assert f"staging {staging_sha[:8]}" in svc.service.status_text()


def test_channel_variable_chooses_the_label(
    ari: AriDouble, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    staging_sha = _label(prompts_file, "staging", STAGING_GREETING)
    svc = start_service(make_settings())
    with_var = ari.place_call(variables={"PROMPTS_LABEL": "staging"})
    without = ari.place_call("79005550000")
    ari.hear(with_var, "до свидания")
    ari.hear(without, "до свидания")
    first, second = call_record(svc, with_var), call_record(svc, without)
    assert heard(svc, ari, with_var)[: len(pieces(STAGING_GREETING))] == pieces(STAGING_GREETING)
    assert (first.label, first.prompts_sha256) == ("staging", staging_sha)
    assert (second.label, second.prompts_sha256) == (PRODUCTION, sha256_hex(prompts_file.read_bytes()))
    lookups = ari.requests_to("GET", "/variable")
    assert {(r[2]["variable"], r[3]) for r in lookups} == {("PROMPTS_LABEL", 200), ("PROMPTS_LABEL", 404)}


def test_unknown_or_invalid_label_runs_production_and_logs_an_error(
    ari: AriDouble, make_settings: Make, start_service: Start, prompts_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    svc = start_service(make_settings())
    caplog.set_level(logging.ERROR, logger="stasis.service")
    unknown = ari.place_call(args=("label=ghost",))
    invalid = ari.place_call(variables={"PROMPTS_LABEL": "../../etc/passwd"})
    for ch in (unknown, invalid):
        ari.hear(ch, "до свидания")
        detail = call_record(svc, ch)
        assert detail.label == PRODUCTION
        assert heard(svc, ari, ch)[: len(_greeting(prompts_file))] == _greeting(prompts_file)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("'ghost' (from arg)" in m and "no label 'ghost'" in m for m in errors), errors
    assert any("(from variable)" in m and "invalid label" in m for m in errors), errors


def test_split_sends_a_sticky_share_and_pins_the_snapshot(
    ari: AriDouble, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    staging_sha = _label(prompts_file, "staging", STAGING_GREETING)
    split = parse_split("staging:50")
    callers = [f"7911{n:07d}" for n in range(40)]
    to_staging = [
        c for c in callers if choose_label(arg=None, variable=None, caller=c, split=split).requested != PRODUCTION
    ]
    to_production = [c for c in callers if c not in to_staging]
    assert to_staging and to_production
    svc = start_service(make_settings(prompts_split="staging:50"))
    assert "staging" in svc.service.labels.loaded()  # loaded at start, before any call
    # A staging caller's call pins staging's snapshot at StasisStart: an edit mid-call changes only the next call.
    ch1 = ari.place_call(to_staging[0])
    wait_for(lambda: heard(svc, ari, ch1) == pieces(STAGING_GREETING), message="staging greeting")
    new_sha = edit(prompts_file.with_name("prompts.staging.json"), greeting="Новая тестовая версия.", goodbye="Пока.")
    hot = svc.service.labels.loaded()["staging"]
    wait_for(lambda: hot.current.sha256 == new_sha, message="staging reloaded")
    ari.hear(ch1, "до свидания")
    first = call_record(svc, ch1)
    assert (first.label, first.prompts_sha256) == ("staging", staging_sha)
    assert heard(svc, ari, ch1)[-1] != "Пока."
    # The same caller again: staging again, now the new version; a production caller stays on production.
    ch2 = ari.place_call(to_staging[0])
    ch3 = ari.place_call(to_production[0])
    ari.hear(ch2, "до свидания")
    ari.hear(ch3, "до свидания")
    second, third = call_record(svc, ch2), call_record(svc, ch3)
    assert (second.label, second.prompts_sha256) == ("staging", new_sha)
    assert heard(svc, ari, ch2) == pieces("Новая тестовая версия.", "Пока.")
    assert third.label == PRODUCTION
    # An explicit choice is not split: production asked for is production.
    ch4 = ari.place_call(to_staging[0], args=("label=production",))
    ari.hear(ch4, "до свидания")
    assert call_record(svc, ch4).label == PRODUCTION


def test_calllog_label_column_in_an_old_and_a_migrated_database(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(VERSION_1)  # one call, 'old-1', sha 'ab', ended with goodbye
    db.close()
    reader = CallLog(path, readonly=True)  # before the service migrated it: every query sees the default
    try:
        items, _ = reader.list_calls()
        assert [(c.id, c.label) for c in items] == [("old-1", PRODUCTION)]
        assert reader.list_calls(label="staging") == ([], 0)
        assert [c.id for c in reader.list_calls(label=PRODUCTION)[0]] == ["old-1"]
        assert reader.get_call("old-1").label == PRODUCTION  # type: ignore[union-attr]
        calls, _ = reader.outcome_rows(since=0, until=1000)
        assert [(c.label, c.end_reason) for c in calls] == [(PRODUCTION, "goodbye")]
    finally:
        reader.close()
    writer = CallLog(path)
    try:
        writer.start_call("new-1", caller_number="1", caller_name="", started_at=200.0, prompts_sha256="bbb",
                          label="staging")  # fmt: skip
        items, total = writer.list_calls(label="staging")
        assert [(c.id, c.label) for c in items] == [("new-1", "staging")] and total == 1
        assert [c.id for c in writer.list_calls(prompts_sha256="ab")[0]] == ["old-1"]
        assert writer.list_calls(prompts_sha256="zz") == ([], 0)
        assert writer.get_call("old-1").label == PRODUCTION  # type: ignore[union-attr]
    finally:
        writer.close()


def test_console_talks_to_a_label(tmp_path: Path, config_dir: Path, openai: FakeOpenAi) -> None:
    prompts_file = config_dir / "prompts.json"
    staging_sha = _label(prompts_file, "staging", STAGING_GREETING)
    env = service_env(tmp_path, config_dir, "http://127.0.0.1:1", openai)
    proc = spawn(["console", "--label", "staging"], env, tmp_path, stdin=subprocess.PIPE)
    out, err = proc.communicate("до свидания\n", timeout=30)
    assert proc.returncode == 0, err
    assert out.splitlines()[:2] == [f"— звонок 1 (промпты staging {staging_sha[:8]})", f"бот: {STAGING_GREETING}"]
    for label, message in (("ghost", "no label 'ghost'"), ("Bad!", "invalid label 'Bad!'")):
        proc = spawn(["console", "--label", label], env, tmp_path, stdin=subprocess.PIPE)
        out, err = proc.communicate("", timeout=30)
        assert proc.returncode == 1
        assert message in err and "Traceback" not in err
