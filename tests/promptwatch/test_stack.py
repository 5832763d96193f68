"""One declaration of what the processes share: every process resolves the same paths and limits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from adminapi.settings import AdminSettings
from promptwatch import PromptsSettings, kbrules
from promptwatch.settings import BOT_SERVICE, PANEL_SERVICE, env_files
from stasis.settings import StasisSettings

SHARED_ENV = [
    "STATE_DIR",
    "STATE_DIRECTORY",
    "CALLLOG_PATH",
    "KB_DIR",
    "KB_MAX_BYTES",
    "PROMPTS_PATH",
    "PROMPTS_STATUS_DIR",
    "PROMPTS_MAX_BYTES",
    "RUNTIME_DIRECTORY",
    "SOUNDS_DIR",
    "PROMPTWATCH_ENV_FILE",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in SHARED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


def resolved(cls: type[PromptsSettings]) -> dict[str, object]:
    s = cls.load()
    return {
        "state_dir": s.state_dir,
        "calllog": s.calllog_path,
        "kb": s.knowledge_base_dir,
        "kb_max": s.kb_max_bytes,
        "status": s.prompts_status_dir,
        "max": s.prompts_max_bytes,
    }


@pytest.mark.parametrize("variable", ["STATE_DIR", "STATE_DIRECTORY"])
def test_every_process_resolves_the_same_paths(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "/srv/x")
    core, panel, bot = resolved(PromptsSettings), resolved(AdminSettings), resolved(StasisSettings)
    assert core == panel == bot
    assert core["state_dir"] == Path("/srv/x") and core["calllog"] == Path("/srv/x/calls.sqlite3")
    assert StasisSettings.load().sounds_dir == Path("/srv/x/sounds")
    assert AdminSettings.load().history_path == Path("/srv/x/history.sqlite3")


def test_state_dir_wins_over_systemds_state_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/metrotech:/var/lib/other")
    assert AdminSettings.load().state_dir == Path("/var/lib/metrotech")
    monkeypatch.setenv("STATE_DIR", "/srv/y")
    assert StasisSettings.load().calllog_path == AdminSettings.load().calllog_path == Path("/srv/y/calls.sqlite3")


def test_one_env_file_configures_every_process(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STATE_DIR=/srv/z\nKB_MAX_BYTES=4096\n")
    assert resolved(PromptsSettings) == resolved(AdminSettings) == resolved(StasisSettings)
    assert AdminSettings.load().kb_max_bytes == 4096


def test_make_runs_env_file_is_read_and_the_operators_dotenv_wins(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / ".env").write_text("STATE_DIR=/from/run\nPROMPTS_PATH=/from/run/prompts.json\n")
    assert PromptsSettings.load().state_dir == Path("/from/run")
    (tmp_path / ".env").write_text("STATE_DIR=/from/operator\n")
    s = PromptsSettings.load()
    assert s.state_dir == Path("/from/operator") and s.prompts_path == Path("/from/run/prompts.json")


def test_an_explicit_env_file_replaces_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("STATE_DIR=/ignored\n")
    (tmp_path / "custom.env").write_text("STATE_DIR=/explicit\n")
    monkeypatch.setenv("PROMPTWATCH_ENV_FILE", str(tmp_path / "custom.env"))
    assert env_files() == (tmp_path / "custom.env",)
    assert PromptsSettings.load().state_dir == Path("/explicit")


def test_constructing_settings_reads_no_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STATE_DIR=/srv/file\n")
    assert PromptsSettings().state_dir == Path("var")


def test_panel_and_bot_share_the_kb_rules_and_limit() -> None:
    assert AdminSettings().kb_max_bytes == StasisSettings().kb_max_bytes == kbrules.KB_MAX_BYTES
    assert kbrules.is_kb_document("notes.markdown") and kbrules.check_kb_name("notes.markdown")
    assert not kbrules.is_kb_document(".pw-tmp-notes.md.abcd")
    with pytest.raises(kbrules.KbNameError, match="only"):
        kbrules.check_kb_name("notes.pdf")


@pytest.mark.parametrize(
    "name", ["тарифы.md", "Часы работы (лето).MARKDOWN", "a.txt", "цены №5 — опт.json", "x" * 54 + ".md"]
)
def test_every_name_the_panel_creates_is_one_the_bot_loads(name: str) -> None:
    assert re.fullmatch(kbrules.KB_NEW_NAME_PATTERN, name)
    assert kbrules.check_kb_name(name) == name and kbrules.is_kb_document(name)


def test_the_panel_expects_the_bot_and_itself_by_default() -> None:
    assert StasisSettings().service_name == BOT_SERVICE
    assert AdminSettings().expected_consumers == (BOT_SERVICE, PANEL_SERVICE)
    assert AdminSettings(admin_expected_consumers=" a, b ,a,,").expected_consumers == ("a", "b")


# -- promptwatch config


def config(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in SHARED_ENV and not k.startswith(("ARI_", "ADMIN_"))}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "promptwatch.cli", "config", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_json_names_values_sources_and_masks_secrets(tmp_path: Path, prompts_file: Path) -> None:
    (tmp_path / ".env").write_text(
        f"# the stack\nPROMPTS_PATH={prompts_file}\nADMIN_TOKEN=abcdefghijklmnopqrstuvwxyz\n"
    )
    env = {"STATE_DIR": str(tmp_path / "state"), "ARI_PASSWORD": "s3cret", "ADMIN_TOKENS": "alice=0123456789abcdef0"}
    result = config("--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    settings = out["settings"]
    assert settings["PROMPTS_PATH"] == {
        "value": str(prompts_file),
        "source": ".env:2",
        "services": ["promptwatch", "adminapi", "metrotech-bot", "metrotech-sync"],
    }
    assert settings["STATE_DIR"]["source"] == "environment"
    assert settings["CALLLOG_PATH"] == {
        "value": str(tmp_path / "state" / "calls.sqlite3"),
        "source": "default",
        "services": ["promptwatch", "adminapi", "metrotech-bot", "metrotech-sync"],
    }
    assert settings["ARI_URL"]["services"] == ["metrotech-bot"]
    assert settings["ADMIN_TOKEN"]["value"] == settings["ARI_PASSWORD"]["value"] == "********"
    assert settings["ADMIN_TOKENS"]["value"] == "********"
    assert "s3cret" not in result.stdout and "abcdefghij" not in result.stdout and "0123456789" not in result.stdout


def test_config_masks_a_redis_password(tmp_path: Path) -> None:
    result = config("--json", cwd=tmp_path, env={"PROMPTS_REDIS_URL": "rediss://bot:hunter2@redis.local:6380/0"})
    assert (
        json.loads(result.stdout)["settings"]["PROMPTS_REDIS_URL"]["value"]
        == "rediss://bot:********@redis.local:6380/0"
    )


def test_config_check_passes_on_a_good_stack(tmp_path: Path, prompts_file: Path) -> None:
    env = {"PROMPTS_PATH": str(prompts_file), "STATE_DIR": str(tmp_path / "state"), "PROMPTS_STATUS_DIR": str(tmp_path)}
    result = config("--check", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "stack configuration: ok" in result.stdout


def test_config_check_names_every_problem(tmp_path: Path, prompts_file: Path) -> None:
    prompts_file.write_text('{"greeting": "hi",\n "system_prompt": 3}')
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    (tmp_path / "a-file").write_text("")
    env = {
        "PROMPTS_PATH": str(prompts_file),
        "STATE_DIR": str(tmp_path / "a-file" / "state"),
        "PROMPTS_STATUS_DIR": str(locked / "status"),
        "ARI_URL": "http://:8088",
        "TTS_BACKEND": "openai",
    }
    result = config("--check", cwd=tmp_path, env=env)
    assert result.returncode == 1
    err = result.stderr
    assert "system_prompt" in err and str(prompts_file) in err
    assert f"STATE_DIR {tmp_path / 'a-file' / 'state'}: {tmp_path / 'a-file'} is not a directory" in err
    assert "ARI_URL 'http://:8088': no host" in err
    assert "TTS_BACKEND=openai: TTS_URL is not set" in err
    if os.getuid() != 0:  # root may write anywhere
        assert f"PROMPTS_STATUS_DIR {locked / 'status'}" in err
    assert "Traceback" not in err


def test_config_reports_an_invalid_setting_by_name(tmp_path: Path) -> None:
    result = config(cwd=tmp_path, env={"MAX_CALLS": "many"})
    assert result.returncode == 1
    assert "metrotech-bot: invalid settings: MAX_CALLS:" in result.stderr and "Traceback" not in result.stderr
