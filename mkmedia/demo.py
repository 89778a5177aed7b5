"""`mkmedia demo`: build the default rescue media for this machine and boot it in QEMU.

The verdict comes from inside the guest: the rescue prompt must arrive on the serial console
and `mkmedia dump` must run there.
"""

from __future__ import annotations

import json
from pathlib import Path

from mkmedia.qemu import Guest, Machine
from mkmedia.session.log import say
from rescue_runtime.errors import MkmediaError

PROMPT = r"RESCUE [^\s:]+:[^\n]*# "


def machine_for(manifest: Path, firmware: str) -> Machine:
    """Boot what the build wrote: the ISO as a CD, or kernel + initrd directly."""
    document = json.loads(manifest.read_text())
    by_kind = {a["kind"]: Path(a["path"]) for a in document["artifacts"]}
    if "iso" in by_kind:
        return Machine(firmware=firmware, cdrom=by_kind["iso"], boot_order="d")
    if "kernel" in by_kind and "initrd" in by_kind:
        return Machine(
            firmware=firmware,
            kernel=by_kind["kernel"],
            initrd=by_kind["initrd"],
            append="console=tty0 console=ttyS0,115200",
        )
    raise MkmediaError(
        f"The manifest {manifest} lists no ISO and no kernel/initrd pair, so there is "
        "nothing the demo can boot."
    )


def boot_and_check(manifest: Path, *, firmware: str = "bios", timeout: float = 600) -> float:
    """Boot the media, wait for the rescue prompt, run `mkmedia dump`; return seconds to prompt."""
    machine = machine_for(manifest, firmware)
    console_log = manifest.parent / f"demo-console-{firmware}.log"
    say(f"booting the rescue media in QEMU ({firmware}, software emulation)")
    say(f"  console log {console_log}")
    with Guest(
        machine, deadline=timeout + 120, console_log=console_log, name="rescue media"
    ) as guest:
        guest.expect(PROMPT, timeout)
        seconds = guest.elapsed()
        status, out = guest.shell("mkmedia dump | head -5", timeout=120)
        if status != 0:
            raise MkmediaError(f"`mkmedia dump` failed inside the rescue system:\n{out}")
        print(out.rstrip())
    say(f"the rescue system reached its prompt {seconds:.1f} s after QEMU started")
    return seconds
