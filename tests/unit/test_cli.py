"""The mkmedia command: dump, settings, --simulate, errors without tracebacks, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rescue_runtime.errors import EXIT_CONFIG

REPO = Path(__file__).resolve().parents[2]


def mkmedia(
    *args: str, tmp: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env["MKMEDIA_LOCK_FILE"] = str(tmp / "lock")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mkmedia", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=full_env,
        check=False,
    )


def test_dump_lists_system_layers_and_origins(tmp_path: Path, config_dir: Path) -> None:
    (config_dir / "site.yaml").write_text("BOOT_TIMEOUT: 7\n")
    result = mkmedia("dump", "-c", str(config_dir), "--set", "ISO_VOLID=RESCUE", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for fragment in ("# System definition", "ARCH", "OS_VENDOR", "FIRMWARE", "KERNEL_VERSION"):
        assert fragment in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["site"].rstrip().endswith("OK")
    assert lines["local"].rstrip().endswith("missing/empty")
    assert lines["default"].rstrip().endswith("OK")
    assert "BOOT_TIMEOUT           7" in out
    assert f"from {config_dir / 'site.yaml'}, line 1, column 15" in out
    assert "from --set ISO_VOLID" in out

    as_json = json.loads(mkmedia("dump", "--json", "-c", str(config_dir), tmp=tmp_path).stdout)
    assert as_json["settings"]["BOOT_TIMEOUT"]["value"] == 7
    assert as_json["system"]["arch"]
    assert [layer["label"] for layer in as_json["layers"]][:2] == ["built-in defaults", "default"]


def test_settings_lists_the_table(tmp_path: Path) -> None:
    rows = json.loads(mkmedia("settings", "--json", tmp=tmp_path).stdout)
    names = {row["name"] for row in rows}
    assert {"OUTPUT", "BACKUP_URL", "PROGS", "BOOT_DEFAULT", "BOOT_TIMEOUT"} <= names
    progs = next(row for row in rows if row["name"] == "PROGS")
    assert progs["type"] == "list" and "append" in progs["merge"]


def test_config_error_is_one_paragraph_without_traceback(tmp_path: Path, config_dir: Path) -> None:
    (config_dir / "local.yaml").write_text("OUTPUT: ISO\nPROGZ: [x]\n")
    result = mkmedia("build", "--simulate", "-c", str(config_dir), tmp=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "Traceback" not in result.stderr
    assert "local.yaml, line 2, column 1: unknown setting 'PROGZ'. Did you mean 'PROGS'?" in (
        result.stderr
    )
    debug = mkmedia("build", "--simulate", "--debug", "-c", str(config_dir), tmp=tmp_path)
    assert "Traceback" in debug.stderr


def test_simulate_shows_the_plan(tmp_path: Path, config_dir: Path) -> None:
    result = mkmedia("build", "--simulate", "-c", str(config_dir), tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Workflow build" in result.stdout
    assert "prep/100_record-configuration" in result.stdout
    assert "output/900_write-output-manifest" in result.stdout


def test_flags_from_the_settings_table(tmp_path: Path, config_dir: Path) -> None:
    result = mkmedia(
        "build", "--simulate", "--output", "ramdisk", "-c", str(config_dir), tmp=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "output/100_write-media" in result.stdout
    bad = mkmedia("build", "--simulate", "--output", "floppy", "-c", str(config_dir), tmp=tmp_path)
    assert bad.returncode == EXIT_CONFIG
    assert "'floppy' is not a valid value for OUTPUT" in bad.stderr


@pytest.mark.integration
def test_build_runs_to_its_end_and_logs(tmp_path: Path, config_dir: Path) -> None:
    out = tmp_path / "out"
    log_file = tmp_path / "mkmedia.log"
    (config_dir / "local.yaml").write_text(
        f"OUTPUT_URL: file://{out}\nTMPDIR: {tmp_path}\nLAYOUT_DIR: {tmp_path / 'layout'}\n"
    )
    result = mkmedia("build", "-c", str(config_dir), "--log-file", str(log_file), tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / os.uname().nodename.split(".")[0] / "manifest.json").read_text())
    assert manifest["workflow"] == "build"
    text = log_file.read_text()
    assert "prep/100_record-configuration" in text


def test_layout_commands_read_the_configuration(tmp_path: Path, config_dir: Path) -> None:
    """`mkmedia layout show` / `checklayout` look where LAYOUT_DIR says (-c, --set), as
    `build` saves; a --root that does not exist is a one-paragraph error."""
    from rescue_runtime.layout.model import Layout
    from rescue_runtime.layout.store import save

    save(Layout(hostname="from-site-yaml"), tmp_path / "site-layout")
    (config_dir / "site.yaml").write_text(f"LAYOUT_DIR: {tmp_path / 'site-layout'}\n")
    shown = mkmedia("layout", "show", "-c", str(config_dir), tmp=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "host=from-site-yaml" in shown.stdout
    other = tmp_path / "other"
    moved = mkmedia(
        "layout", "show", "-c", str(config_dir), "--set", f"LAYOUT_DIR={other}", tmp=tmp_path
    )
    assert moved.returncode == 6 and f"No saved layout at {other}/layout.json" in moved.stderr
    missing = mkmedia("checklayout", "-c", str(config_dir), "--root", "/nonexistent", tmp=tmp_path)
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "The system root /nonexistent does not exist" in missing.stderr
    assert "removed" not in missing.stdout and "Traceback" not in missing.stderr
