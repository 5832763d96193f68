"""The units, snippets and install targets, without booting anything: render, verify, score, DESTDIR tree."""

from __future__ import annotations

import configparser
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from .render import MAX_EXPOSURE, REPO, SEED_FASTAPI_UNIT, SERVICES, UNITS, has_systemd_analyze, make, offline_exposure

needs_analyze = pytest.mark.skipif(not has_systemd_analyze(), reason="systemd-analyze not installed")


EXPECTED_FILES = {
    "etc/systemd/system/metrotech-bot.service": 0o644,
    "etc/systemd/system/metrotech-fastapi.service": 0o644,
    "etc/systemd/system/metrotech.target": 0o644,
    "etc/sysusers.d/metrotech.conf": 0o644,
    "etc/tmpfiles.d/metrotech.conf": 0o644,
    "etc/metrotech/metrotech.env": 0o640,
    "etc/metrotech/prompts/prompts.json": 0o664,
    "etc/metrotech/prompts/kb/тарифы.md": 0o664,
    "etc/metrotech/prompts/kb/доставка.md": 0o664,
    "etc/metrotech/prompts/kb/часы-работы.md": 0o664,
}


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root``: relative path → (mode, content)."""
    return {
        str(p.relative_to(root)): (stat.S_IMODE(p.stat().st_mode), p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def unit(path: Path) -> configparser.RawConfigParser:
    """A unit file parsed well enough to read single-valued settings (last assignment wins)."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


@pytest.fixture
def destdir(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    make("install-units", destdir=root)
    return root


def test_destdir_install_produces_the_expected_tree(destdir: Path) -> None:
    files = tree(destdir)
    assert {path: mode for path, (mode, _) in files.items()} == EXPECTED_FILES
    assert (destdir / "etc/metrotech/prompts/prompts.json").read_bytes() == (REPO / "config/prompts.json").read_bytes()
    assert stat.S_IMODE((destdir / "etc/metrotech").stat().st_mode) == 0o755
    assert stat.S_IMODE((destdir / "etc/metrotech/prompts").stat().st_mode) == 0o2775
    assert stat.S_IMODE((destdir / "etc/metrotech/prompts/kb").stat().st_mode) == 0o2775
    for path in files:
        assert not re.search(r"@[A-Z_]+@", (destdir / path).read_text()), f"an unrendered @VARIABLE@ in {path}"


def test_install_units_again_changes_nothing(destdir: Path) -> None:
    before = tree(destdir)
    output = make("install-units", destdir=destdir)
    assert tree(destdir) == before
    assert "installed" not in output and "backed up" not in output
    assert not (destdir / "var/backups").exists()


def test_operator_config_is_never_overwritten(destdir: Path) -> None:
    env = destdir / "etc/metrotech/metrotech.env"
    prompts = destdir / "etc/metrotech/prompts/prompts.json"
    env.write_text("ARI_PASSWORD=operator-secret\n")
    prompts.write_text('{"greeting": "edited by the operator"}\n')
    (destdir / "etc/metrotech/prompts/kb/тарифы.md").unlink()
    make("install-units", destdir=destdir)
    assert env.read_text() == "ARI_PASSWORD=operator-secret\n"
    assert prompts.read_text() == '{"greeting": "edited by the operator"}\n'
    assert not (destdir / "etc/metrotech/prompts/kb/тарифы.md").exists(), "an existing kb directory is the operator's"


def test_a_hand_made_unit_is_backed_up_before_it_is_replaced(tmp_path: Path) -> None:
    root = tmp_path / "root"
    old = root / "etc/systemd/system/metrotech-fastapi.service"
    old.parent.mkdir(parents=True)
    old.write_text(SEED_FASTAPI_UNIT)
    output = make("install-units", destdir=root)
    backups = list((root / "var/backups/metrotech").iterdir())
    assert len(backups) == 1 and backups[0].name.startswith("metrotech-fastapi.service.")
    assert backups[0].read_text() == SEED_FASTAPI_UNIT
    assert "backed up" in output
    assert "ExecStart=/opt/metrotech/venv/bin/adminapi" in old.read_text()
    make("install-units", destdir=root)
    assert len(list((root / "var/backups/metrotech").iterdir())) == 1, "an unchanged unit is not backed up again"


def test_uninstall_removes_units_and_snippets_and_keeps_config(destdir: Path) -> None:
    make("uninstall-units", destdir=destdir)
    assert sorted(tree(destdir)) == sorted(p for p in EXPECTED_FILES if p.startswith("etc/metrotech/"))


def test_prefix_and_grace_period_are_rendered(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make("install-units", destdir=root, PREFIX="/srv/bot", CALL_GRACE_SECONDS="40")
    bot = unit(root / "etc/systemd/system/metrotech-bot.service")
    assert bot["Service"]["ExecStart"] == "/srv/bot/venv/bin/stasis run"
    assert bot["Service"]["TimeoutStopSec"] == "55"
    assert "CALL_GRACE_SECONDS=40" in (root / "etc/systemd/system/metrotech-bot.service").read_text()


@pytest.mark.parametrize("name", SERVICES)
def test_service_units_have_the_promised_settings(destdir: Path, name: str) -> None:
    path = destdir / "etc/systemd/system" / name
    service = unit(path)["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "always"
    assert service["RestartSec"] == "10"
    assert service["User"] == "metrotech"
    assert service["SyslogIdentifier"] == name.removesuffix(".service")
    assert service["EnvironmentFile"] == "-/etc/metrotech/metrotech.env"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert service["MemoryDenyWriteExecute"] == "yes"
    assert service["RuntimeDirectory"] == "metrotech" and service["RuntimeDirectoryPreserve"] == "yes"
    assert "PROMPTS_STATUS_DIR=/run/metrotech/status" in path.read_text()
    assert "PROMPTS_PATH=/etc/metrotech/prompts/prompts.json KB_DIR=/etc/metrotech/prompts/kb" in path.read_text()
    assert "append:" not in path.read_text() and "StandardOutput" not in service, "logs go to the journal"
    assert unit(path)["Unit"]["PartOf"] == "metrotech.target"
    assert unit(path)["Install"]["WantedBy"] == "metrotech.target"


def test_bot_unit_reload_watchdog_and_stop_timeout(destdir: Path) -> None:
    path = destdir / "etc/systemd/system/metrotech-bot.service"
    service = unit(path)["Service"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert int(service["WatchdogSec"]) > 0
    assert service["TimeoutStopSec"] == "35"  # CALL_GRACE_SECONDS=20 + 15 s for the goodbye and hang-up
    assert "CALL_GRACE_SECONDS=20" in path.read_text()
    after = unit(path)["Unit"]["After"].split()
    assert "asterisk.service" in after
    assert "Wants" not in unit(path)["Unit"] and "Requires" not in unit(path)["Unit"], "the bot must not pull Asterisk"
    # Only the panel writes the configuration directory.
    assert "ReadWritePaths" not in service
    panel = unit(destdir / "etc/systemd/system/metrotech-fastapi.service")["Service"]
    assert panel["ReadWritePaths"] == "/etc/metrotech/prompts", "the panel writes prompts and kb, not the env file"


def test_the_panel_may_hold_many_connections(destdir: Path) -> None:
    panel = unit(destdir / "etc/systemd/system/metrotech-fastapi.service")["Service"]
    assert int(panel["LimitNOFILE"]) >= 16384


def test_target_wants_both_services(destdir: Path) -> None:
    target = unit(destdir / "etc/systemd/system/metrotech.target")
    assert target["Unit"]["Wants"].split() == list(SERVICES)
    assert target["Install"]["WantedBy"] == "multi-user.target"


@needs_analyze
def test_rendered_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart= exists: render with a PREFIX that holds stand-in executables.
    prefix = tmp_path / "opt"
    (prefix / "venv/bin").mkdir(parents=True)
    for exe in ("stasis", "adminapi"):
        (prefix / "venv/bin" / exe).write_text("#!/bin/sh\n")
        (prefix / "venv/bin" / exe).chmod(0o755)
    root = tmp_path / "root"
    make("install-units", destdir=root, PREFIX=str(prefix))
    unit_dir = root / "etc/systemd/system"
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(unit_dir / name) for name in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr


@needs_analyze
def test_security_exposure_is_at_most_2(destdir: Path) -> None:
    scores = offline_exposure(destdir / "etc/systemd/system")
    assert all(score <= MAX_EXPOSURE for score in scores.values()), scores


def test_snippets_name_the_user_and_directories(destdir: Path) -> None:
    sysusers = (destdir / "etc/sysusers.d/metrotech.conf").read_text()
    assert any(line.split()[:2] == ["u", "metrotech"] for line in sysusers.splitlines() if line and line[0] != "#")
    tmpfiles = [
        line.split()
        for line in (destdir / "etc/tmpfiles.d/metrotech.conf").read_text().splitlines()
        if line and line[0] != "#"
    ]
    paths = {fields[1]: fields for fields in tmpfiles}
    assert paths["/etc/metrotech"][2:5] == ["0755", "root", "root"], "no group may rename the env file"
    assert paths["/etc/metrotech/metrotech.env"][2:5] == ["0640", "root", "metrotech"]
    assert paths["/etc/metrotech/prompts"][2:5] == ["2775", "root", "metrotech"]
    assert paths["/etc/metrotech/prompts/kb"][2:5] == ["2775", "metrotech", "metrotech"]
    assert paths["/var/lib/metrotech/sounds"][2:5] == ["2750", "metrotech", "metrotech"]
    assert paths["/run/metrotech/status"][3] == "metrotech"


def test_units_script_is_posix_sh() -> None:
    subprocess.run(["sh", "-n", str(REPO / "systemd/units.sh")], check=True, timeout=10)


OLD_ENV = """\
ARI_PASSWORD=operator-secret
PROMPTS_PATH=/etc/metrotech/prompts.json
KB_DIR=/etc/metrotech/kb
#KB_DIR=/etc/metrotech/kb/
"""


def old_layout(root: Path) -> Path:
    """An install from before the layout change: prompts, kb and env side by side in a 2775 directory."""
    conf = root / "etc/metrotech"
    (conf / "kb").mkdir(parents=True)
    conf.chmod(0o2775)
    (conf / "prompts.json").write_text('{"greeting": "the operator\'s own"}\n')
    (conf / "kb" / "мои-тарифы.md").write_text("# Мои тарифы\n")
    (conf / "metrotech.env").write_text(OLD_ENV)
    (conf / "metrotech.env").chmod(0o640)
    return conf


def test_install_units_migrates_an_older_layout_without_losing_anything(tmp_path: Path) -> None:
    root = tmp_path / "root"
    conf = old_layout(root)
    output = make("install-units", destdir=root)
    assert stat.S_IMODE(conf.stat().st_mode) == 0o755, "the env file's directory is no longer group-writable"
    assert stat.S_IMODE((conf / "prompts").stat().st_mode) == 0o2775
    assert (conf / "prompts/prompts.json").read_text() == '{"greeting": "the operator\'s own"}\n'
    assert (conf / "prompts/kb/мои-тарифы.md").read_text() == "# Мои тарифы\n"
    assert sorted(p.name for p in (conf / "prompts/kb").iterdir()) == ["мои-тарифы.md"], "no sample files added"
    assert sorted(p.name for p in conf.iterdir()) == ["metrotech.env", "prompts"]
    env = (conf / "metrotech.env").read_text()
    assert env == OLD_ENV.replace("/etc/metrotech/prompts.json", "/etc/metrotech/prompts/prompts.json").replace(
        "/etc/metrotech/kb", "/etc/metrotech/prompts/kb"
    )
    assert stat.S_IMODE((conf / "metrotech.env").stat().st_mode) == 0o640
    [backup] = (root / "var/backups/metrotech").glob("metrotech.env.*")
    assert backup.read_text() == OLD_ENV
    assert f"moved      {conf}/prompts.json -> {conf}/prompts/prompts.json" in output
    assert f"updated    {conf}/metrotech.env" in output
    # Idempotent: a second run moves, updates and installs nothing.
    before = tree(root)
    again = make("install-units", destdir=root)
    assert tree(root) == before
    assert not {"installed", "moved", "updated", "secured", "backed up"} & {
        line[:10].strip() for line in again.splitlines()
    }


def test_a_prompts_entry_planted_in_the_old_group_writable_dir_is_set_aside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    conf = old_layout(root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (conf / "prompts").symlink_to(elsewhere)  # a group member's, while the directory was 2775
    output = make("install-units", destdir=root)
    assert "set aside" in output
    assert not (conf / "prompts").is_symlink() and (conf / "prompts/prompts.json").exists()
    assert list(elsewhere.iterdir()) == []
