"""Bad input ends in one paragraph naming the file and what to do, never in a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mkmedia.session.lock import RunLock
from mkmedia.workflow import make_build_dir
from rescue_runtime import rescueconf
from rescue_runtime.errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    CommandError,
    ConfigError,
    MkmediaError,
    StepError,
)
from rescue_runtime.layout.model import Disk, Layout, Mount, Partition
from rescue_runtime.layout.serial import from_json, to_json
from rescue_runtime.layout.store import JSON_NAME, load, save
from rescue_runtime.run import run
from rescue_runtime.workflow import check_hooks, find_hooks
from tests.files import write_file
from tests.unit.test_cli import REPO, mkmedia


def one_paragraph(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mkmedia: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], result.stderr


def script(path: Path, text: str) -> Path:
    return write_file(path, text, mode=0o755)


# --- hooks and programs that exec() cannot start --------------------------------------------


def test_hook_without_shebang_is_named_before_anything_runs(config_dir: Path) -> None:
    hooks = config_dir / "hooks.d"
    hook = script(hooks / "output/post/10-notify", "echo built\n")
    with pytest.raises(StepError) as err:
        find_hooks(hooks, "output", "post")
    assert str(hook) in str(err.value) and "'#!' line" in str(err.value)
    with pytest.raises(StepError, match="#!/bin/sh"):
        check_hooks(hooks, ("prep", "rootfs", "output"))
    script(hook, "#!/bin/sh\necho built\n")
    assert find_hooks(hooks, "output", "post") == [hook]


def test_hook_without_shebang_through_the_command(tmp_path: Path, config_dir: Path) -> None:
    script(config_dir / "hooks.d/prep/pre/10-x", "echo hi\n")
    (config_dir / "local.yaml").write_text(
        f"OUTPUT_URL: file://{tmp_path / 'out'}\nTMPDIR: {tmp_path / 'tmp'}\n"
        f"LAYOUT_DIR: {tmp_path / 'layout'}\n"
    )
    result = mkmedia(
        "build", "-c", str(config_dir), "--log-file", str(tmp_path / "log"), tmp=tmp_path
    )
    assert result.returncode == EXIT_FAILURE
    one_paragraph(result, "10-x", "'#!' line")
    assert list((tmp_path / "tmp").iterdir()) == [], "the build directory is removed"


def test_run_names_a_script_exec_cannot_start(tmp_path: Path) -> None:
    no_shebang = script(tmp_path / "job", "echo hi\n")
    with pytest.raises(CommandError, match="'#!' line") as err:
        run([str(no_shebang)])
    assert str(no_shebang) in str(err.value)
    with pytest.raises(CommandError, match=r"Permission denied|Is a directory"):
        run([str(tmp_path)])
    with pytest.raises(CommandError, match=f"in the directory {tmp_path / 'gone'}"):
        run(["true"], cwd=tmp_path / "gone")


# --- TMPDIR ---------------------------------------------------------------------------------


def test_tmpdir_that_is_a_file_or_cannot_be_made(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(ConfigError, match=f"TMPDIR={plain}: it exists and is not a directory"):
        make_build_dir(plain)
    with pytest.raises(ConfigError, match=f"TMPDIR={plain / 'sub'}: Not a directory"):
        make_build_dir(plain / "sub")
    made = make_build_dir(tmp_path / "new" / "parent")
    assert made.is_dir() and made.parent == tmp_path / "new" / "parent"


def test_tmpdir_error_through_the_command(tmp_path: Path, config_dir: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    for bad in (plain, plain / "sub"):
        log = str(tmp_path / "log")
        argv = ["build", "-c", str(config_dir), "--set", f"TMPDIR={bad}", "--log-file", log]
        result = mkmedia(*argv, tmp=tmp_path)
        assert result.returncode == EXIT_CONFIG
        one_paragraph(result, f"TMPDIR={bad}", "--set TMPDIR=DIR")


# --- layout.json ----------------------------------------------------------------------------


def small_layout() -> Layout:
    part = Partition("/dev/vda1", 1, 1048576, 1073741824, "83", disk="/dev/vda")
    return Layout(
        hostname="web01",
        disks=[Disk("/dev/vda", 2147483648, table="dos", partitions=[part])],
        mounts=[Mount("/", "/dev/vda1", "ext4"), Mount("/srv", "/dev/vda2", "xfs")],
    )


def test_layout_that_is_binary_or_a_directory(tmp_path: Path) -> None:
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / JSON_NAME).write_bytes(b'{"format_version": 1, "hostname": "\xff\xfe"}')
    with pytest.raises(ConfigError, match="is not a text file"):
        load(binary)
    directory = tmp_path / "directory"
    (directory / JSON_NAME).mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot be read: Is a directory"):
        load(directory)


def test_layout_record_missing_a_field_is_named() -> None:
    data = json.loads(to_json(small_layout()))
    del data["mounts"][1]["device"]
    with pytest.raises(ConfigError) as err:
        from_json(json.dumps(data), source="/x/layout.json")
    message = str(err.value)
    assert "/x/layout.json" in message
    assert "layout.mounts[1] (mountpoint '/srv'): the field 'device' is missing" in message
    assert "__init__" not in message

    data = json.loads(to_json(small_layout()))
    data["disks"][0]["partitions"][0]["size"] = "1G"
    with pytest.raises(ConfigError, match=r"layout.disks\[0\].partitions\[0\].size: expected int"):
        from_json(json.dumps(data))
    for version in (True, "1", None):
        data["format_version"] = version
        with pytest.raises(ConfigError, match="format_version"):
            from_json(json.dumps(data))


def test_layout_save_into_a_file_is_an_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    for target in (plain, plain / "sub"):
        with pytest.raises(MkmediaError, match=f"Cannot save the layout in {target}"):
            save(small_layout(), target)
    assert load(save(small_layout(), tmp_path / "ok").parent) == small_layout()


@pytest.mark.parametrize("entry", [["-m", "mkmedia"], ["-m", "rescue_runtime"]])
def test_bad_layout_through_both_commands(tmp_path: Path, entry: list[str]) -> None:
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / JSON_NAME).write_bytes(os.urandom(64) + b"\xff")
    (tmp_path / "directory" / JSON_NAME).mkdir(parents=True)
    (tmp_path / "field").mkdir()
    data = json.loads(to_json(small_layout()))
    del data["mounts"][0]["fstype"]
    (tmp_path / "field" / JSON_NAME).write_text(json.dumps(data))
    env = dict(os.environ, MKMEDIA_LOCK_FILE=str(tmp_path / "lock"))
    for name in ("binary", "directory", "field"):
        for command in (["layout", "show"], ["checklayout"]):
            argv = [sys.executable, *entry, *command, "--dir", str(tmp_path / name)]
            result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env)
            assert result.returncode == EXIT_CONFIG, (argv, result.stderr)
            one_paragraph(result, str(tmp_path / name / JSON_NAME))


# --- the lock file --------------------------------------------------------------------------


def test_lock_file_that_cannot_be_opened(tmp_path: Path, config_dir: Path) -> None:
    (tmp_path / "dir").mkdir()
    plain = tmp_path / "plain"
    plain.write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(tmp_path / "fifo")
    for path, problem in (
        (tmp_path / "fifo", "it is not a regular file"),
        (tmp_path / "dir", "Is a directory"),
        (plain / "lock", f"{plain} exists and is not a directory"),
        (tmp_path / "link", "it is a symbolic link"),
    ):
        with pytest.raises(MkmediaError, match=f"Cannot open the lock file {path}: {problem}"):
            RunLock(path).acquire()
    assert not (tmp_path / "elsewhere").exists(), "the link was not followed"
    argv = ["build", "-c", str(config_dir), "--log-file", str(tmp_path / "log")]
    result = mkmedia(*argv, env={"MKMEDIA_LOCK_FILE": str(tmp_path / "dir")}, tmp=tmp_path)
    assert result.returncode == EXIT_FAILURE
    one_paragraph(result, "MKMEDIA_LOCK_FILE")


# --- the rescue system's rescue.json (an update overlay may replace it) --------------------


def test_rescue_configuration_that_cannot_be_used(tmp_path: Path) -> None:
    path = tmp_path / "rescue.json"
    assert rescueconf.load(path) == rescueconf.RescueConfig(), "missing: a bare test tree"
    for content in (b"\xff\xfe", b"{", b"[1, 2]", b'{"saved_interfaces": [{"mtu": 1}]}'):
        path.write_bytes(content)
        with pytest.raises(ConfigError, match=f"The rescue configuration {path} cannot be used"):
            rescueconf.load(path)
