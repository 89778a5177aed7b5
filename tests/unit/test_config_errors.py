"""Every class of configuration error gives one paragraph naming file, line, column and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkmedia.config import load_config
from mkmedia.host.sysinfo import SystemInfo
from rescue_runtime.errors import ConfigError


def error_for(text: str, data_dir: Path, config_dir: Path, system: SystemInfo) -> str:
    (config_dir / "local.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(config_dir=config_dir, system=system)
    message = str(err.value)
    assert "\n" not in message.strip(), "one paragraph"
    assert str(config_dir / "local.yaml") in message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PROGZ: [foo]\n", ["line 1, column 1", "unknown setting 'PROGZ'", "Did you mean 'PROGS'"]),
        ("OUTPUT: [ISO]\n", ["line 1, column 9", "OUTPUT must be a single"]),
        ("BOOT_TIMEOUT: soon\n", ["line 1, column 15", "whole number"]),
        ("LUKS_HEADER_BACKUP: maybe\n", ["boolean"]),
        ("OUTPUT: IOS\n", ["not a valid value for OUTPUT", "Did you mean 'ISO'"]),
        ("ISO_VOLID: yes\n", ["read True as a boolean", "quotes"]),
        ("PROGS: {add: [x]}\n", ["the key 'add'", "replace, remove, append"]),
        ("PROGS: [[x]]\n", ["every entry of PROGS must be text"]),
        ("PROGS:\n", ["PROGS is empty", "replace: []"]),
        ("OUTPUT: ISO\nOUTPUT: USB\n", ["line 2", "given twice", "first at line 1"]),
        ("- a\n- b\n", ["must be a mapping"]),
        ("OUTPUT: ISO\n  bad: indent\n", ["not valid YAML", "line 2"]),
        ("BACKUP: TAPE\n", ["BACKUP=TAPE", "has no backup method", "offers BACKUP: NONE"]),
        ("OUTPUT: FLOPPY\n", ["not a valid value for OUTPUT", "RAWDISK, OBDR"]),
        ("OUTPUT_URL: ftp://x\n", ["has the scheme 'ftp'", "supported: file://"]),
    ],
)
def test_error_messages(
    text: str,
    expected: list[str],
    data_dir: Path,
    config_dir: Path,
    fake_system: SystemInfo,
) -> None:
    if "supported: file://" in expected:
        (config_dir / "local.yaml").write_text(text)
        with pytest.raises(ConfigError) as err:
            load_config(config_dir=config_dir, system=fake_system)
        message = str(err.value)
        assert "local.yaml" in message
    else:
        message = error_for(text, data_dir, config_dir, fake_system)
    for fragment in expected:
        assert fragment in message, message


def test_bad_set_values(data_dir: Path, config_dir: Path, fake_system: SystemInfo) -> None:
    cases = {
        "NOEQUALS": "expected NAME=VALUE",
        "OUTPT=ISO": "Did you mean 'OUTPUT'",
        "OUTPUT+=USB": "is not a list",
        "BOOT_TIMEOUT=x": "whole number",
    }
    for expr, fragment in cases.items():
        with pytest.raises(ConfigError, match=fragment):
            load_config(config_dir=config_dir, system=fake_system, sets=[expr])


def test_missing_recipe_and_extends(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(recipe=tmp_path / "nope.yaml", config_dir=config_dir, system=fake_system)
    (tmp_path / "r.yaml").write_text("extends: hwclass/unknown\n")
    with pytest.raises(
        ConfigError, match=r"r.yaml, line 1, column 10: the recipe 'hwclass/unknown'"
    ):
        load_config(recipe=tmp_path / "r.yaml", config_dir=config_dir, system=fake_system)


def test_lowercase_names_are_accepted(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo
) -> None:
    (config_dir / "local.yaml").write_text("secure_boot: yes\noutput: iso\nkernel: auto\n")
    config = load_config(config_dir=config_dir, system=fake_system)
    assert config.get_str("OUTPUT") == "ISO"
    assert config.get_str("SECURE_BOOT") == "yes"  # YAML's boolean maps onto the yes/no choice
