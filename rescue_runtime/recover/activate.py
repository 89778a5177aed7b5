"""Bring a saved layout up for repair without recreating anything, and take it down again.

`plan()` turns the layout into steps in dependency order (assemble an MD array, open a LUKS
volume, activate a VG, mount a file system, bind a pseudo file system); `Activator` runs them
under a target root (default /mnt/local) and records each in the state file before it runs
(activate_state.py); `deactivate()` undoes what that file lists, newest first. Devices are
found by UUID where the layout has one, since names can differ in the rescue system. Swap is
never activated: repair needs none and it would write to the disks.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.errors import CommandError, ConfigError, MissingError, MkmediaError
from rescue_runtime.layout.graph import build_graph, dm_name
from rescue_runtime.layout.model import Layout, LuksDevice, MdArray, Mount, VolumeGroup
from rescue_runtime.recover.activate_state import Entry, State, StateFile, _now
from rescue_runtime.recover.options import DEFAULT_TARGET
from rescue_runtime.run import run, which

log = logging.getLogger("mkmedia.activate")

PASSPHRASE_TRIES = 3
# fstab options that are about when and by whom to mount, not for mount(8) here.
NOT_FOR_MOUNT = frozenset(
    {"defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "nofail"}
    | {"_netdev", "rw", "ro"}
)
# Pseudo file systems bound into the target so that a chroot works (source, under target).
BINDS = ("/proc", "/sys", "/dev", "/dev/pts", "/run")
EFIVARS = "/sys/firmware/efi/efivars"
# Sub-mounts of the bound trees, bound (or mounted) only where the rescue system has them.
OWN_MOUNTS = ("/dev/pts", EFIVARS)
# cryptsetup's exit status for "no key available with this passphrase".
CRYPTSETUP_BAD_KEY = 2


class ActivateError(MkmediaError):
    """A step of mountonly or umount failed; the message says what is still up."""


@dataclass
class Step:
    """One thing to bring up: kind md | luks | vg | mount | bind."""

    kind: str
    md: MdArray | None = None
    luks: LuksDevice | None = None
    vg: VolumeGroup | None = None
    mount: Mount | None = None
    bind: str = ""  # the pseudo file system's path (bind steps)

    @property
    def label(self) -> str:
        if self.md:
            return f"md {self.md.path}"
        if self.luks:
            return f"luks {self.luks.name}"
        if self.vg:
            return f"vg {self.vg.name}"
        if self.mount:
            return f"mount {self.mount.mountpoint}"
        return f"bind {self.bind}"


def wanted_mount(mount: Mount) -> bool:
    """Every file system of the layout, except swap and what fstab says not to mount."""
    if mount.fstype == "swap":
        return False
    return mount.mounted or "noauto" not in (mount.fstab_options or [])


def plan(layout: Layout, *, efi: bool = False) -> list[Step]:
    """The steps in dependency order: each one's dependencies come before it."""
    graph = build_graph(layout)
    wanted = [m.id for m in layout.mounts if wanted_mount(m)] + [vg.id for vg in layout.vgs]
    steps: list[Step] = []
    for node_id in graph.closure(wanted):
        node = graph.nodes[node_id]
        if isinstance(node, MdArray):
            steps.append(Step("md", md=node))
        elif isinstance(node, LuksDevice):
            steps.append(Step("luks", luks=node))
        elif isinstance(node, VolumeGroup):
            steps.append(Step("vg", vg=node))
        elif isinstance(node, Mount):
            steps.append(Step("mount", mount=node))
    binds = [*BINDS, EFIVARS] if efi else list(BINDS)
    return steps + [Step("bind", bind=b) for b in binds]


def mount_options(mount: Mount, ro: bool) -> list[str]:
    """fstab's options (the live ones where fstab has no entry) that mount(8) needs here;
    btrfs subvolumes as fstab names them, else the subvolume that was mounted."""
    given = mount.fstab_options
    keep = [
        o
        for o in (given or [])
        if o not in NOT_FOR_MOUNT and not o.startswith(("x-", "comment=", "subvolid="))
    ]
    if mount.fstype == "btrfs" and given is None and mount.fsroot not in ("", "/"):
        keep.append(f"subvol={mount.fsroot}")
    return ["ro" if ro else "rw", *keep]


def under(target: str, path: str) -> str:
    return os.path.normpath(os.path.join(target, path.lstrip("/")))


# -- what is up right now ----------------------------------------------------------------------
def _unescape(field_text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def mounted_paths() -> list[str]:
    """Mount points, in the kernel's order (/proc/self/mountinfo's fifth field)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    return [_unescape(line.split()[4]) for line in lines if len(line.split()) > 4]


def dm_names() -> set[str]:
    """Device-mapper names of the active mappings (sysfs: no udev needed)."""
    names = set()
    for block in Path("/sys/block").glob("dm-*"):
        try:
            names.add((block / "dm" / "name").read_text().strip())
        except OSError:
            continue
    return names


def md_state(device: str) -> str | None:
    """The array's state (clean, active, inactive, ...), None when the kernel has none."""
    name = os.path.basename(os.path.realpath(device))
    try:
        state = Path(f"/sys/block/{name}/md/array_state").read_text().strip()
    except OSError:
        return None
    return None if state == "clear" else state


def active_md_uuids() -> dict[str, str]:
    """UUID (mdadm's colon form) -> device of every running array."""
    out = run(["mdadm", "--detail", "--scan"], check=False, what="listing MD arrays").stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        uuid = next((p[5:] for p in parts if p.startswith("UUID=")), None)
        if len(parts) > 1 and parts[0] == "ARRAY" and uuid:
            found[uuid.lower()] = parts[1]
    return found


def probe_uuid(device: str) -> str | None:
    result = run(
        ["blkid", "-c", "/dev/null", "-p", "-s", "UUID", "-o", "value", device], check=False
    )
    if not result.ok:
        return None
    return result.stdout.strip().lower() or None


def find_by_uuid(uuid: str, saved: str | None) -> str | None:
    """The device carrying `uuid`: the saved path when it still carries it (a RAID1 member
    with metadata at the end shows the same UUID), else udev's link, else blkid's scan."""
    uuid = uuid.lower()
    if saved and os.path.exists(saved) and probe_uuid(saved) == uuid:
        return saved
    link = Path("/dev/disk/by-uuid") / uuid
    if link.exists():
        return os.path.realpath(link)
    result = run(["blkid", "-c", "/dev/null", "-o", "device", "-t", f"UUID={uuid}"], check=False)
    devices = result.stdout.split() if result.ok else []
    return devices[0] if devices else None


def settle() -> None:
    if which("udevadm"):
        run(["udevadm", "settle", "--timeout=30"], check=False)


# -- bringing it up ------------------------------------------------------------------------------
def ask_passphrase(prompt: str) -> str | None:
    """From the terminal without echo; from stdin, one line per try, when it is no terminal."""
    if sys.stdin.isatty():
        try:
            return getpass.getpass(prompt)
        except EOFError:
            return None
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    print()
    return line.removesuffix("\n") if line else None


@dataclass
class Activator:
    layout: Layout
    target: str = DEFAULT_TARGET
    ro: bool = False
    key_files: dict[str, str] = field(default_factory=dict)  # mapping name (or "*") -> path
    state_file: StateFile = field(default_factory=StateFile)
    ask: Callable[[str], str | None] = ask_passphrase
    command: str = "mountonly"
    say: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self.target = os.path.normpath(self.target)
        self.state = self.state_file.load() or State(target=self.target, started_at=_now())
        if self.state.entries and self.state.target != self.target:
            raise ActivateError(
                f"mountonly is already active under {self.state.target} "
                f"({self.state_file.path}); it cannot also mount under {self.target}.",
                hint="Run `mkmedia umount` first.",
            )
        self.state.target = self.target
        # What was up before this run: never taken down by umount.
        self.md_before = active_md_uuids() if self.layout.mds else {}
        self.dm_before = dm_names()
        self.mounted_before = set(mounted_paths())
        self.md_device: dict[str, str] = {}  # layout path -> the device it runs as

    def run(self) -> list[str]:
        """Bring everything up; returns notes for the user."""
        require_tools()
        steps, notes = self.planned()
        notes += self.bring_up(steps)
        return notes + self.closing_notes()

    def planned(self) -> tuple[list[Step], list[str]]:
        """The steps to run and notes about what is left out; refuses a layout with nothing
        to mount before anything is changed."""
        steps = plan(self.layout, efi=os.path.isdir(EFIVARS))
        mounts = [s.mount.mountpoint for s in steps if s.mount]
        if not mounts:
            raise ActivateError(
                "The saved layout has no file system to mount; nothing was changed.",
                hint="Check it with `mkmedia layout show`.",
            )
        notes = []
        if "/" not in mounts:
            # Nothing to chroot into: the pseudo file systems would only clutter the target.
            steps = [s for s in steps if s.kind != "bind"]
            notes.append("the layout has no root file system: /proc, /sys, /dev not bound")
        return steps, notes

    def bring_up(self, steps: list[Step]) -> list[str]:
        """Run these steps in their order; returns their notes."""
        return [note for note in map(self.do, steps) if note]

    def closing_notes(self) -> list[str]:
        swaps = [m.device for m in self.layout.mounts if m.fstype == "swap"]
        return [f"swap not activated ({', '.join(swaps)})"] if swaps else []

    def do(self, step: Step) -> str | None:
        if step.md:
            return self.assemble(step.md)
        if step.luks:
            return self.open_luks(step.luks)
        if step.vg:
            return self.activate_vg(step.vg)
        if step.mount:
            return self.mount(step.mount)
        return self.bind(step.bind)

    def _begin(self, entry: Entry) -> Entry:
        self.state_file.begin(self.state, entry, self.command)
        return entry

    def _done(self, entry: Entry, message: str) -> None:
        self.state_file.done(self.state, entry)
        self.say(f"mkmedia {self.command}: {message}")

    def assemble(self, md: MdArray) -> str | None:
        uuid = (md.uuid or "").lower()
        if uuid and uuid in self.md_before:
            self.md_device[md.path] = self.md_before[uuid]
            return f"{md.path} was already running as {self.md_before[uuid]}"
        if md.path and md_state(md.path) is not None and not uuid:
            return f"{md.path} was already running"
        require("mdadm")
        entry = self._begin(Entry("md", device=md.path, uuid=md.uuid))
        # By UUID, the members found wherever they are now (DEVICE partitions by default).
        argv = ["mdadm", "--assemble", md.path]
        argv += [f"--uuid={md.uuid}"] if md.uuid else md.members + md.spares
        run(argv, what=f"assembling the MD array {md.path}")
        self.md_device[md.path] = md.path
        settle()
        self._done(entry, f"assembled {md.path} ({md.level})")
        return None

    def luks_container(self, luks: LuksDevice) -> str:
        saved = self.md_device.get(luks.device, luks.device)
        device = find_by_uuid(luks.uuid, saved) if luks.uuid else saved
        if device is None or not os.path.exists(device):
            raise ActivateError(
                f"The LUKS volume {luks.name} (UUID {luks.uuid}, saved on {luks.device}) is "
                "on no device of this machine.",
                hint="Check that its disks are attached (lsblk), then run `mkmedia umount` "
                "and mountonly again.",
            )
        return device

    def open_luks(self, luks: LuksDevice) -> str | None:
        if luks.name in self.dm_before:
            return f"LUKS mapping {luks.name} was already open"
        require("cryptsetup")
        device = self.luks_container(luks)
        argv = ["cryptsetup", "open", "--type", "luks"]
        if "discard" in luks.options:
            argv.append("--allow-discards")
        key_file = self.key_files.get(luks.name, self.key_files.get("*"))
        entry = self._begin(Entry("luks", name=luks.name, device=device, uuid=luks.uuid))
        what = f"opening the LUKS volume {luks.name} on {device}"
        if key_file:
            result = run([*argv, "--key-file", key_file, device, luks.name], check=False)
            if not result.ok:
                raise ActivateError(
                    f"The key file {key_file} does not open the LUKS volume {luks.name} on "
                    f"{device} (cryptsetup: {result.stderr.strip() or result.returncode}).",
                    hint="Give the right one with --key-file NAME=PATH (or none, to be asked "
                    "for the passphrase); `mkmedia umount` takes down what is up so far.",
                )
        else:
            self.open_with_passphrase(argv, device, luks.name, what)
        settle()
        self._done(entry, f"opened {device} as /dev/mapper/{luks.name}")
        return None

    def open_with_passphrase(self, argv: list[str], device: str, name: str, what: str) -> None:
        for attempt in range(1, PASSPHRASE_TRIES + 1):
            passphrase = self.ask(f"Passphrase for the LUKS volume {name} on {device}: ")
            if passphrase is None:
                break
            # Without --key-file cryptsetup reads the passphrase up to the first newline.
            result = run([*argv, device, name], input=passphrase + "\n", check=False, what=what)
            if result.ok:
                return
            if result.returncode != CRYPTSETUP_BAD_KEY:
                raise CommandError(
                    f"cryptsetup failed with exit status {result.returncode} while {what}: "
                    f"{result.stderr.strip()}",
                    hint="`mkmedia umount` takes down what is up so far.",
                )
            self.say(f"mkmedia {self.command}: wrong passphrase ({attempt}/{PASSPHRASE_TRIES})")
        raise ActivateError(
            f"No passphrase opened the LUKS volume {name} on {device} "
            f"({PASSPHRASE_TRIES} tries at most).",
            hint="Run `mkmedia umount` to take down what is up so far, then mountonly again "
            "(with --force), or give a key file with --key-file NAME=PATH.",
        )

    def activate_vg(self, vg: VolumeGroup) -> str | None:
        lvs = [lv for lv in self.layout.lvs if lv.vg == vg.name]
        if lvs and all(dm_name(lv.vg, lv.name) in self.dm_before for lv in lvs):
            return f"volume group {vg.name} was already active"
        require("lvm")
        argv = ["lvm", "vgchange", "--activate", "y", "--monitor", "n"]
        if any(lv.segtype == "thin-pool" for lv in lvs) and which("thin_check") is None:
            # Without thin_check LVM refuses thin pools; the check is for recreation.
            argv += ["--config", 'global/thin_check_executable=""']
        entry = self._begin(Entry("vg", name=vg.name, uuid=vg.uuid))
        run([*argv, vg.name], what=f"activating the volume group {vg.name}")
        settle()
        self._done(entry, f"activated volume group {vg.name}")
        return None

    def mount_source(self, mount: Mount) -> str:
        fs = self.layout.filesystem(mount.device)
        saved = self.md_device.get(mount.device, mount.device)
        device = find_by_uuid(fs.uuid, saved) if fs and fs.uuid else saved
        if device is None or not os.path.exists(device):
            raise ActivateError(
                f"The file system for {mount.mountpoint} ({mount.fstype}, UUID "
                f"{fs.uuid if fs else None}, saved on {mount.device}) is on no device here.",
                hint="`mkmedia umount` takes down what is up so far.",
            )
        return device

    def mountpoint(self, path: str, what: str) -> None:
        if os.path.isdir(path):
            return
        if self.ro:
            raise ActivateError(
                f"The mount point {path} for {what} does not exist, and the file system it "
                "would be made in is mounted read-only.",
                hint="Run `mkmedia umount`, then mountonly without --ro.",
            )
        os.makedirs(path)

    def mount(self, mount: Mount) -> str | None:
        path = under(self.target, mount.mountpoint)
        if path in self.mounted_before:
            return f"{path} was already mounted"
        device = self.mount_source(mount)
        self.mountpoint(path, mount.mountpoint)
        options = ",".join(mount_options(mount, self.ro))
        entry = self._begin(Entry("mount", path=path, device=device))
        run(
            ["mount", "-t", mount.fstype, "-o", options, device, path],
            what=f"mounting {mount.mountpoint}",
        )
        self._done(entry, f"mounted {device} on {path} ({mount.fstype}, {options})")
        return None

    def bind(self, source: str) -> str | None:
        path = under(self.target, source)
        if path in self.mounted_before:
            return None
        if source in OWN_MOUNTS and source not in mounted_paths():
            return None  # not mounted in the rescue system: nothing to bind
        if not os.path.isdir(source):
            return f"{source} is missing here: not bound"
        if not os.path.isdir(path):
            if self.ro or source == EFIVARS:
                return f"{path} is missing: {source} not bound"
            os.makedirs(path)
        entry = self._begin(Entry("bind", path=path, device=source))
        if source == EFIVARS:
            # /sys is bound without its sub-mounts: efivarfs is mounted afresh.
            argv = ["mount", "-t", "efivarfs", "efivarfs", path]
        else:
            argv = ["mount", "--bind", source, path]
        run(argv, what=f"binding {source} into {self.target}")
        self._done(entry, f"bound {source} on {path}")
        return None


def require_tools() -> None:
    """What every mountonly needs, whatever the layout holds."""
    for tool, package in (("blkid", "util-linux"), ("mount", "mount")):
        if which(tool) is None:
            raise MissingError(f"{tool} is needed by mountonly.", hint=f"Install {package}.")


def require(program: str) -> None:
    if which(program) is None:
        raise MissingError(
            f"{program} is needed to bring up this layout but is not in the rescue system.",
            hint="Add it to the recipe's PROGS and build the rescue media again.",
        )


# -- taking it down -------------------------------------------------------------------------------
def undo_command(entry: Entry) -> list[str]:
    if entry.kind in ("mount", "bind"):
        return ["umount", entry.path]
    if entry.kind == "vg":
        return ["lvm", "vgchange", "--activate", "n", entry.name]
    if entry.kind == "luks":
        return ["cryptsetup", "close", entry.name]
    if entry.kind == "md":
        return ["mdadm", "--stop", entry.device]
    raise ConfigError(f"unknown mountonly step {entry.kind!r} in the state file")


def undo_order(state: State) -> list[tuple[Entry, list[str]]]:
    """Newest first, pending entries too (a failed step may have left something up)."""
    return [(e, undo_command(e)) for e in reversed(state.entries)]


def is_up(entry: Entry) -> bool:
    if entry.kind in ("mount", "bind"):
        return entry.path in mounted_paths()
    if entry.kind == "vg":
        prefix = entry.name.replace("-", "--") + "-"
        return any(n.startswith(prefix) for n in dm_names())
    if entry.kind == "luks":
        return entry.name in dm_names()
    return md_state(entry.device) is not None


def deactivate(
    state_file: StateFile | None = None, say: Callable[[str], None] = print
) -> list[str]:
    """Undo what the state file lists, newest first; returns what was taken down. Stops at
    the first failure with the rest still recorded, so that a second run can finish."""
    state_file = state_file or StateFile()
    state = state_file.load()
    if state is None:
        return []
    taken: list[str] = []
    for entry, argv in undo_order(state):
        if is_up(entry):
            result = run(argv, check=False, what=f"taking down {entry.describe()}")
            if not result.ok:
                busy = (
                    " (in use: a shell inside it, an open file?)"
                    if "busy" in (result.stderr.lower())
                    else ""
                )
                raise ActivateError(
                    f"Could not take down {entry.describe()}{busy}: `{' '.join(argv)}` failed "
                    f"with exit status {result.returncode}: {result.stderr.strip()}",
                    hint=f"Fix that and run `mkmedia umount` again; {state_file.path} still "
                    "lists what is up.",
                )
            if entry.kind in ("vg", "luks"):
                settle()
            taken.append(entry.describe())
            say(f"mkmedia umount: took down {entry.describe()}")
        state_file.forget(state, entry)
    return taken
