"""Guest.shell() reads a command's answer between unique markers, checked by its sha256.

A real `sh` stands in for the guest's serial console (no QEMU needed): the harness drives it
through the same pipes. `sh -v` echoes each line it reads, like a console echoes what is
typed. A kernel message cannot be printed on demand here, so a `base64` placed first on PATH
splices a kernel-style line into the middle of its first answer, as the kernel's console
output lands in the middle of a line on a real serial console.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mkmedia.qemu import Guest, Machine

KERNEL_LINE = "[   12.345678] IPv6: ADDRCONF(NETDEV_CHANGE): enp0s2: link becomes ready"


class ConsoleShell(Machine):
    """A shell on the harness's pipes in place of QEMU's serial console."""

    def __init__(self, path: str) -> None:
        super().__init__(network=False)
        self.path = path

    def argv(self, vars_copy: Path | None) -> list[str]:
        return ["env", f"PATH={self.path}", "sh", "-v"]


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Guest]:
    real = shutil.which("base64")
    assert real is not None, "coreutils' base64 is missing"
    shims = tmp_path / "bin"
    shims.mkdir()
    shim = shims / "base64"
    # the first reading is spliced 100 bytes in (inside a line), later ones are clean
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ ! -e {tmp_path}/spliced ]; then : >{tmp_path}/spliced; {real} "$@" >{tmp_path}/b\n'
        f"  head -c 100 {tmp_path}/b; echo '{KERNEL_LINE}'; tail -c +101 {tmp_path}/b; exit 0\n"
        f'fi\nexec {real} "$@"\n'
    )
    shim.chmod(0o755)
    (tmp_path / "spliced").touch()  # armed by the test that wants it
    machine = ConsoleShell(f"{shims}:{os.environ['PATH']}")
    with Guest(machine, deadline=120, name="console shell", shell_dir=str(tmp_path)) as guest:
        yield guest


def test_answer_status_and_shell_state(console: Guest, tmp_path: Path) -> None:
    status, out = console.shell("printf 'a  b\\n\\ttab \\n'; echo to-stderr >&2; (exit 3)")
    assert status == 3
    assert out == "a  b\n\ttab \nto-stderr\n"  # exact: spaces, tabs, stderr, no echo, no \r
    status, out = console.shell(f"cd {tmp_path} && X=kept")
    assert (status, out) == (0, "")
    assert console.shell("pwd; echo $X  # a comment") == (0, f"{tmp_path}\nkept\n")
    assert console.shell("true") == (0, "")


def test_a_kernel_line_spliced_into_the_answer_is_read_again(
    console: Guest, tmp_path: Path
) -> None:
    (tmp_path / "spliced").unlink()  # the next reading gets the kernel line in a line
    status, out = console.shell("seq 1 300")
    assert status == 0
    assert out == "".join(f"{n}\n" for n in range(1, 301))
    assert KERNEL_LINE in console.output  # it was on the console: the check can fail
    # only the latest answer file stays in the guest
    console.shell("true")
    assert len(list(tmp_path.glob(".mkmedia-answer-*"))) == 1
