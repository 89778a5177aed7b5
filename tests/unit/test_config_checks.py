"""Values that used to pass the configuration and fail (or misbehave) only when a step used them
are refused up front, in one paragraph naming the setting, its value and its layer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mkmedia import checks
from mkmedia.config import Config, load_config
from mkmedia.emit import bootmenu, cdrom
from mkmedia.emit.iso import write_iso
from mkmedia.host.sysinfo import SystemInfo
from mkmedia.initrd.compress import LEVEL_RANGES, check_compression
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.run import which


def load(config_dir: Path, system: SystemInfo, text: str = "", *sets: str) -> Config:
    (config_dir / "local.yaml").write_text(text)
    return load_config(config_dir=config_dir, system=system, sets=sets)


def refused(config_dir: Path, system: SystemInfo, text: str = "", *sets: str) -> str:
    """The message for a refused configuration: one paragraph naming where the value came from."""
    with pytest.raises(ConfigError) as err:
        load(config_dir, system, text, *sets)
    message = str(err.value)
    assert "\n" not in message, "one paragraph"
    assert "Traceback" not in message
    if text:
        assert f"{config_dir / 'local.yaml'}, line" in message, message
    else:
        assert "--set " in message, message
    return message


# --- COMPRESSION_LEVEL: one range table, used by the check and the pack step ----------------


@pytest.mark.parametrize("method", sorted(LEVEL_RANGES))
def test_compression_level_range_is_the_pack_steps(
    method: str, config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    low, high = LEVEL_RANGES[method]
    accepted = load(config_dir, fake_system, f"COMPRESSION: {method}\nCOMPRESSION_LEVEL: {high}\n")
    assert check_compression(method, accepted.get_int("COMPRESSION_LEVEL"), 0) == high
    message = refused(
        config_dir, fake_system, f"COMPRESSION: {method}\nCOMPRESSION_LEVEL: {high + 1}\n"
    )
    assert f"COMPRESSION_LEVEL {high + 1}" in message and f"from {low} to {high}" in message
    with pytest.raises(ConfigError):
        check_compression(method, high + 1, 0)  # the pack step agrees


@pytest.mark.parametrize(("method", "level"), [("zstd", 20), ("zstd", 22), ("gzip", 15)])
def test_compression_levels_the_pack_step_refused_late(
    method: str, level: int, config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    message = refused(
        config_dir, fake_system, "", f"COMPRESSION={method}", f"COMPRESSION_LEVEL={level}"
    )
    assert f"for {method} compression" in message


def test_a_level_for_no_compression_is_refused(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    message = refused(config_dir, fake_system, "COMPRESSION: none\nCOMPRESSION_LEVEL: 5\n")
    assert "has no levels" in message


# --- BOOT_TIMEOUT ----------------------------------------------------------------------------


def test_boot_timeout_bounds(config_dir: Path, data_dir: Path, fake_system: SystemInfo) -> None:
    top = checks.MAX_BOOT_TIMEOUT
    assert top * 10 <= checks.ISOLINUX_MAX_TENTHS < (top + 1) * 10
    assert load(config_dir, fake_system, f"BOOT_TIMEOUT: {top}\n").get_int("BOOT_TIMEOUT") == top
    assert "35996 tenths" in refused(config_dir, fake_system, f"BOOT_TIMEOUT: {top + 1}\n")
    assert "out of range" in refused(config_dir, fake_system, "BOOT_TIMEOUT: -1\n")
    # ISOLINUX really gets the tenths it can count
    menu = bootmenu.build_menu(host="h", kernel_cmdline="", boot_timeout=top)
    isolinux = bootmenu.render("isolinux.cfg.j2", menu=menu, kernel="/k", initrd="/i")
    assert f"TIMEOUT {top * 10}\n" in isolinux


# --- ISO_VOLID ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "fragment"),
    [
        ("rescue-01", "d-characters"),
        ("RESCUE 01", "d-characters"),
        ("A" * 33, "33 characters, over the 32"),
    ],
)
def test_iso_volid_is_checked_up_front(
    label: str, fragment: str, config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    message = refused(config_dir, fake_system, f"ISO_VOLID: '{label}'\n")
    assert fragment in message and "Set ISO_VOLID" in message
    assert "ISO_VOLUME_LABEL" not in message


def test_the_iso_emitter_names_the_real_setting(tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "kernel", tmp_path / "initrd"
    kernel.write_bytes(b"k")
    initrd.write_bytes(b"i")
    with pytest.raises(ConfigError) as err:
        write_iso(
            tmp_path / "x.iso",
            kernel=kernel,
            initrd=initrd,
            volume_label="bad label",
            host="h",
            work_dir=tmp_path / "work",
        )
    assert "ISO_VOLID" in str(err.value) and "ISO_VOLUME_LABEL" not in str(err.value)
    assert not (tmp_path / "x.iso").exists()


# --- OUTPUT_URL and OUTPUT_PREFIX -----------------------------------------------------------


def test_output_url_that_is_a_file(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo, tmp_path: Path
) -> None:
    regular = tmp_path / "a-file"
    regular.write_text("not a directory\n")
    message = refused(config_dir, fake_system, f"OUTPUT_URL: file://{regular}\n")
    assert f"{regular} exists and is not a directory" in message
    # a file further up the path blocks it just as well
    message = refused(config_dir, fake_system, f"OUTPUT_URL: file://{regular}/media/iso\n")
    assert f"{regular} exists and is not a directory" in message
    # the directory OUTPUT_PREFIX adds, too
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "web01").write_text("")
    message = refused(config_dir, fake_system, f"OUTPUT_URL: file://{tmp_path}/out\n")
    assert f"{tmp_path}/out/web01 exists" in message
    # a directory that does not exist yet is fine: it is created
    fine = load(config_dir, fake_system, f"OUTPUT_URL: file://{tmp_path}/new/dir\n")
    assert fine.get_str("OUTPUT_URL") == f"file://{tmp_path}/new/dir"


def test_empty_output_url_is_an_error(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    message = refused(config_dir, fake_system, "", "OUTPUT_URL=")
    assert "OUTPUT_URL is empty (from --set OUTPUT_URL)" in message


@pytest.mark.parametrize(
    ("prefix", "fragment"),
    [
        ("../escape", "climbs out of OUTPUT_URL"),
        ("/srv/abs", "absolute path"),
        ("a/b", "more than one path component"),
        ("", "is empty"),
        (".", "names a directory"),
        ("..", "names a directory"),
        (".hidden", "starts with a dot"),
    ],
)
def test_output_prefix_is_one_visible_name(
    prefix: str, fragment: str, config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    message = refused(config_dir, fake_system, f"OUTPUT_PREFIX: '{prefix}'\n")
    assert f"OUTPUT_PREFIX {prefix!r}" in message and fragment in message


# --- CDROM_DEVICE ----------------------------------------------------------------------------


def test_cdrom_device_that_is_no_writer(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    assert which("xorriso"), "xorriso is a host package (scripts/host-packages.txt)"
    # /dev/null exists, and xorriso never lists it as a drive: the real xorriso decides.
    message = refused(config_dir, fake_system, "OUTPUT: CDROM\nCDROM_DEVICE: /dev/null\n")
    assert "CDROM_DEVICE '/dev/null'" in message and "is not a writable optical drive" in message
    message = refused(config_dir, fake_system, "OUTPUT: CDROM\nCDROM_DEVICE: /dev/sr9\n")
    assert "does not exist" in message
    # only OUTPUT=CDROM looks at the drive
    assert load(config_dir, fake_system, "CDROM_DEVICE: /dev/null\n").get_str("OUTPUT") == "ISO"


def test_cdrom_output_without_any_writer(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    if cdrom.optical_writers():
        load(config_dir, fake_system, "OUTPUT: CDROM\n")  # a real writer is accepted
        return
    (config_dir / "local.yaml").write_text("OUTPUT: CDROM\n")
    with pytest.raises(MissingError, match="no writable optical drive") as err:
        load_config(config_dir=config_dir, system=fake_system)
    assert "local.yaml, line 1" in str(err.value)


# --- KERNEL_CMDLINE, CONSOLES and the host name reach the boot menus -------------------------


def test_folded_kernel_cmdline_is_refused(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    message = refused(config_dir, fake_system, "KERNEL_CMDLINE: >\n  quiet\n  loglevel=3\n")
    assert "control character '\\n'" in message and "`>-`" in message
    fine = load(config_dir, fake_system, "KERNEL_CMDLINE: >-\n  quiet\n  loglevel=3\n")
    assert fine.get_str("KERNEL_CMDLINE") == "quiet loglevel=3"


CONTROL = "control character"
GRUB = "GRUB's menu parser"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('KERNEL_CMDLINE: "quiet\\n}\\nmenuentry evil {\\n"\n', CONTROL),
        ('KERNEL_CMDLINE: "quiet\\tx"\n', CONTROL),
        ('KERNEL_CMDLINE: "quiet\\x7f"\n', CONTROL),
        ('CONSOLES: ["tty0", "ttyS0,115200\\nAPPEND evil"]\n', CONTROL),
        ("KERNEL_CMDLINE: 'quiet; reboot'\n", GRUB),
        ("KERNEL_CMDLINE: 'root=$root'\n", GRUB),
        ("KERNEL_CMDLINE: 'a } menuentry x {'\n", GRUB),
        ("CONSOLES: ['ttyS0;halt']\n", GRUB),
    ],
)
def test_menu_breaking_characters_are_refused(
    text: str, fragment: str, config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    assert fragment in refused(config_dir, fake_system, text)


def test_a_console_item_is_one_console(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    assert "is not one console" in refused(config_dir, fake_system, "CONSOLES: ['tty0 quiet']\n")


def test_double_quoted_kernel_values_pass(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    text = "KERNEL_CMDLINE: 'dyndbg=\"file x.c +p\" quiet'\n"
    assert load(config_dir, fake_system, text).get_str("KERNEL_CMDLINE").endswith("quiet")


def test_host_name_with_control_characters(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    odd = dataclasses.replace(fake_system, hostname="web01\nMENU LABEL evil")
    (config_dir / "local.yaml").write_text("OUTPUT_PREFIX: web01\n")
    with pytest.raises(ConfigError, match=r"host name .* control character"):
        load_config(config_dir=config_dir, system=odd)


def test_accepted_values_cannot_add_menu_entries() -> None:
    """What the checks let through renders one menu line per entry in both boot loaders."""
    menu = bootmenu.build_menu(
        host="it's-a-host", kernel_cmdline='quiet dyndbg="file x.c +p"', boot_timeout=5
    )
    grub_cfg = bootmenu.render("grub.cfg.j2", menu=menu, kernel="/k", initrd="/i")
    isolinux_cfg = bootmenu.render("isolinux.cfg.j2", menu=menu, kernel="/k", initrd="/i")
    assert grub_cfg.count("menuentry ") == len(menu.entries)
    assert isolinux_cfg.count("\nLABEL ") == len(menu.entries)
    linux_lines = [line for line in grub_cfg.splitlines() if line.strip().startswith("linux ")]
    assert len(linux_lines) == sum(entry.kind == "linux" for entry in menu.entries)
    assert all("console=" in line for line in linux_lines)


# --- list settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("PROGS: 5\n", "not the int 5"),
        ("PROGS: bash\n", "not the str 'bash'"),
        ("PROGS: {append: strace}\n", "not the str 'strace'"),
        ("PROGS: [5]\n", "every entry of PROGS must be text"),
        ("MODULES: [8021q, 1.5]\n", "every entry of MODULES must be text"),
    ],
)
def test_a_scalar_for_a_list_is_a_type_error(
    text: str, fragment: str, config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    message = refused(config_dir, fake_system, text)
    assert "line 1, column" in message and fragment in message


def test_set_splits_list_items_on_commas_for_every_operator(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    config = load(config_dir, fake_system, "PROGS: [x, y, z]\n", "PROGS+=a,b")
    assert config.get_list("PROGS") == ["x", "y", "z", "a", "b"]
    config = load(config_dir, fake_system, "PROGS: [x, y, z]\n", "PROGS-=x,z")
    assert config.get_list("PROGS") == ["y"]
    config = load(config_dir, fake_system, "PROGS: [x, y, z]\n", "PROGS=a,b")
    assert config.get_list("PROGS") == ["a", "b"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"host": "web01\nMENU LABEL evil"},
        {"kernel_cmdline": "quiet\n}\nmenuentry evil {"},
        {"kernel_cmdline": "quiet; reboot"},
        {"consoles": ["tty0", "ttyS0\nAPPEND x"]},
    ],
)
def test_the_menu_builder_guards_its_callers(overrides: dict[str, object]) -> None:
    """Emitters other than the configured build (USB, PXE, tests) get the same guard."""
    args: dict[str, object] = {"host": "web01", "kernel_cmdline": "quiet", **overrides}
    with pytest.raises(ConfigError, match="would break the boot loader"):
        bootmenu.build_menu(**args)  # type: ignore[arg-type]
