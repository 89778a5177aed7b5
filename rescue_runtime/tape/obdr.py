"""In a rescue system booted from an OBDR tape: the drive back from CD emulation to tape mode.

An HP OBDR drive booted with its button presents itself as a CD-ROM (lsscsi lists it as
`cd/dvd` with the drive's own vendor and model); it becomes a tape drive again through its
vendor mode page 0x3E, written with sg_wr_mode. The page's bytes come from the drive's SCSI
manual (TAPE_OBDR_MODE_PAGE); without them the operator switches the drive (its manual's way,
or a power cycle with the tape left in). This cannot be exercised without such a drive.
"""

from __future__ import annotations

import glob
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from rescue_runtime.run import run, which

log = logging.getLogger("mkmedia.tape")

# [0:0:3:0]    cd/dvd  HP       Ultrium 3-SCSI   G63W  /dev/sr0   /dev/sg1
_LSSCSI = re.compile(
    r"^\[(?P<host>\d+):\d+:\d+:\d+\]\s+(?P<type>\S+)\s+(?P<vendor>\S+)\s+(?P<rest>.*?)\s+"
    r"(?P<dev>/dev/\S+|-)\s+(?P<sg>/dev/sg\d+)\s*$"
)
TAPE_MODELS = ("ultrium", "dat", "dds", "lto", "sdlt")


@dataclass(frozen=True)
class EmulatingDrive:
    host: int  # the SCSI host, rescanned after the switch
    model: str
    cd_device: str
    sg_device: str


def emulating_drives(lsscsi_output: str) -> list[EmulatingDrive]:
    """The HP tape drives lsscsi -g lists as CD-ROMs (in OBDR's CD emulation)."""
    found = []
    for line in lsscsi_output.splitlines():
        match = _LSSCSI.match(line.strip())
        if not match or match["type"] != "cd/dvd" or match["vendor"].upper() != "HP":
            continue
        model = match["rest"].strip()
        if any(word in model.lower() for word in TAPE_MODELS):
            found.append(EmulatingDrive(int(match["host"]), model, match["dev"], match["sg"]))
    return found


def switch_to_tape_mode(mode_page: str, *, sys_root: Path = Path("/sys")) -> list[str]:
    """Switch every drive found in CD emulation back to tape mode; returns what was done
    (notes for the operator). Nothing happens when a tape drive is present already."""
    if glob.glob("/dev/nst[0-9]*") or not which("lsscsi"):
        return []
    drives = emulating_drives(run(["lsscsi", "-g"], check=False).stdout)
    notes = []
    for drive in drives:
        if not mode_page:
            notes.append(
                f"{drive.cd_device} is the HP drive {drive.model} in OBDR CD emulation; "
                "TAPE_OBDR_MODE_PAGE is empty, so switch it back to tape mode its manual's "
                "way (or power-cycle it with the tape in) before the restore."
            )
            continue
        run(
            ["sg_wr_mode", "--page=0x3e", f"--contents={mode_page}", "--force", drive.sg_device],
            what=f"switching {drive.model} from CD emulation to tape mode",
        )
        (sys_root / "class" / "scsi_host" / f"host{drive.host}" / "scan").write_text("- - -\n")
        if which("udevadm"):
            run(["udevadm", "settle", "--timeout=30"], check=False)
        notes.append(f"{drive.model} ({drive.sg_device}) switched back to tape mode")
    for note in notes:
        log.warning("%s", note)
    return notes
