"""The typed model of a machine's storage stack, as recover and mountonly use it.

Every component has an `id` ("disk:/dev/sda", "part:/dev/sda1", "lv:vg0/root", ...) and the
ids of what it is built on (`depends_on`); graph.py turns these into creation order. Sizes
are bytes; device paths are the ones the running kernel uses (lsblk's PATH).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FORMAT_VERSION = 1

# What `unmounted` means on a component (an LV holding a database's raw volume, a second
# disk's copy of the ESP); the text rendering says it too.
UNMOUNTED = "no mount or swap uses it; recovery recreates it, but its content is not in the backup"

# GPT partition type GUIDs (upper case) and MBR type bytes that give a partition a role.
GPT_TYPE_FLAGS: dict[str, str] = {
    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "esp",
    "21686148-6449-6E6F-744E-656564454649": "bios_grub",
    "A19D880F-05FC-4D3B-A006-743F0F84911E": "raid",
    "E6D6D379-F507-44C2-A23C-238F2A3DF928": "lvm",
    "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "swap",
    "BC13C2FF-59E6-4262-A352-B275FD6F7172": "xbootldr",
    "9E1A2D38-C612-4316-AA26-8B49521E5A8B": "prep",
    "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "msftdata",
    "E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "msftres",
    "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC": "diag",
    "CA7D7CCB-63ED-4C53-861C-1742536059CC": "luks",
}
MBR_TYPE_FLAGS: dict[str, str] = {
    "ef": "esp",
    "fd": "raid",
    "8e": "lvm",
    "82": "swap",
    "41": "prep",
    "5": "extended",
    "f": "extended",
    "85": "extended",
}


@dataclass
class Partition:
    path: str
    number: int
    start: int  # bytes from the start of the disk
    size: int  # bytes
    type: str  # GPT type GUID (upper case) or MBR type in hex without 0x ("83")
    type_name: str | None = None
    name: str | None = None  # GPT partition name (PARTLABEL)
    uuid: str | None = None  # PARTUUID
    flags: list[str] = field(default_factory=list)
    attrs: str | None = None  # GPT attribute bits as sfdisk prints them
    kind: str = "primary"  # primary | extended | logical (MBR); primary on GPT
    disk: str = ""  # path of the disk it is on

    unmounted: bool = False  # see UNMOUNTED

    @property
    def id(self) -> str:
        return f"part:{self.path}"


@dataclass
class Disk:
    path: str
    size: int
    logical_sector_size: int = 512
    physical_sector_size: int = 512
    table: str | None = None  # gpt | dos | None (whole-disk use)
    table_id: str | None = None  # disk GUID or MBR id ("0x5eed1234")
    first_lba: int | None = None
    last_lba: int | None = None
    model: str | None = None
    serial: str | None = None
    wwn: str | None = None
    vendor: str | None = None
    transport: str | None = None  # sata, nvme, mmc, usb, virtio (None when unknown)
    rotational: bool | None = None
    by_id: list[str] = field(default_factory=list)
    by_path: list[str] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)

    unmounted: bool = False  # see UNMOUNTED

    @property
    def id(self) -> str:
        return f"disk:{self.path}"


@dataclass
class MdArray:
    path: str  # /dev/md0 (or /dev/md/NAME when that is what mdadm reports)
    level: str  # raid0, raid1, raid5, raid6, raid10, linear
    metadata: str | None = None  # 1.2, 1.0, 0.90, imsm, ddf
    uuid: str | None = None  # mdadm's colon form
    name: str | None = None  # host:name
    chunk_size: int | None = None  # bytes
    layout: str | None = None
    raid_devices: int | None = None
    size: int | None = None  # array size, bytes
    members: list[str] = field(default_factory=list)  # active member device paths
    spares: list[str] = field(default_factory=list)
    bitmap: str | None = None  # internal | none | a file path
    container: str | None = None  # for IMSM/DDF members of a container
    # Recover onto fewer disks: the slots (0-based, in member order) created as `missing`,
    # a degraded array; `members` then lists only the devices that are there.
    missing: list[int] = field(default_factory=list)

    unmounted: bool = False  # see UNMOUNTED

    @property
    def id(self) -> str:
        return f"md:{self.path}"

    def slots(self) -> list[str]:
        """The member devices in slot order, `missing` in the slots left empty (mdadm's)."""
        devices, members = [], iter(self.members)
        for slot in range(len(self.members) + len(self.missing)):
            devices.append("missing" if slot in self.missing else next(members))
        return devices


@dataclass
class LuksDevice:
    path: str  # /dev/mapper/NAME of the opened mapping
    name: str  # the mapping name (crypttab's first column)
    device: str  # the LUKS container's device path
    version: int = 2
    uuid: str | None = None
    label: str | None = None  # LUKS2 only
    subsystem: str | None = None  # LUKS2 only
    cipher: str | None = None  # aes-xts-plain64
    key_size: int | None = None  # bits
    hash: str | None = None
    pbkdf: str | None = None  # argon2id, argon2i, pbkdf2
    # The first key slot's PBKDF cost, so recreate can format with the same parameters.
    pbkdf_iterations: int | None = None  # pbkdf2 iterations, argon2 time cost
    pbkdf_memory: int | None = None  # argon2 memory cost, KiB
    pbkdf_parallel: int | None = None  # argon2 threads
    sector_size: int | None = None  # LUKS2 data segment sector size
    data_offset: int | None = None  # bytes
    key_file: str | None = None  # crypttab's key file, when one is configured
    options: list[str] = field(default_factory=list)  # crypttab options
    header_backup: str | None = None  # file name beside layout.json when one was kept

    unmounted: bool = False  # see UNMOUNTED

    @property
    def id(self) -> str:
        return f"luks:{self.path}"


@dataclass
class PhysicalVolume:
    device: str
    uuid: str
    vg: str | None = None
    size: int | None = None
    metadata_copies: int | None = None
    pe_start: int | None = None  # bytes

    unmounted: bool = False  # see UNMOUNTED

    @property
    def id(self) -> str:
        return f"pv:{self.device}"


@dataclass
class VolumeGroup:
    name: str
    uuid: str
    extent_size: int  # bytes
    pvs: list[str] = field(default_factory=list)  # PV device paths
    tags: list[str] = field(default_factory=list)
    size: int | None = None

    unmounted: bool = False  # see UNMOUNTED

    @property
    def id(self) -> str:
        return f"vg:{self.name}"


@dataclass
class LogicalVolume:
    vg: str
    name: str
    uuid: str
    size: int
    segtype: str  # linear, striped, mirror, raid1, raid5, thin-pool, thin, ...
    path: str  # /dev/mapper/VG-LV (the dm path), or /dev/VG/LV when not active
    stripes: int | None = None
    stripe_size: int | None = None  # bytes
    mirrors: int | None = None
    region_size: int | None = None
    pool: str | None = None  # thin volumes: the pool LV's name
    chunk_size: int | None = None  # thin pools
    metadata_size: int | None = None  # thin pools: the metadata LV's size
    origin: str | None = None  # snapshots
    devices: list[str] = field(default_factory=list)  # PVs the segments sit on
    tags: list[str] = field(default_factory=list)
    active: bool = True

    unmounted: bool = False  # see UNMOUNTED

    @property
    def id(self) -> str:
        return f"lv:{self.vg}/{self.name}"

    @property
    def full_name(self) -> str:
        return f"{self.vg}/{self.name}"


@dataclass
class ExtParams:
    features: list[str] = field(default_factory=list)
    block_size: int | None = None
    inode_size: int | None = None
    inode_count: int | None = None
    block_count: int | None = None
    reserved_blocks: int | None = None
    reserved_percent: float | None = None
    revision: str | None = None
    mount_options: list[str] = field(default_factory=list)


@dataclass
class XfsParams:
    block_size: int | None = None
    inode_size: int | None = None
    sector_size: int | None = None
    agcount: int | None = None
    data_blocks: int | None = None
    log_blocks: int | None = None
    log_internal: bool = True
    sunit: int | None = None
    swidth: int | None = None
    naming_version: int | None = None
    features: dict[str, int] = field(default_factory=dict)  # crc, finobt, reflink, ...


@dataclass
class Subvolume:
    id: int
    path: str
    parent: int | None = None
    top_level: int | None = None
    uuid: str | None = None
    mount_options: list[str] = field(default_factory=list)  # options of its mounts


@dataclass
class BtrfsParams:
    data_profile: str | None = None
    metadata_profile: str | None = None
    system_profile: str | None = None
    devices: list[str] = field(default_factory=list)
    subvolumes: list[Subvolume] = field(default_factory=list)
    default_subvolume: int = 5  # 5 is the top level (FS_TREE)
    default_subvolume_path: str | None = None


@dataclass
class Filesystem:
    device: str  # the device it sits on (first device for multi-device btrfs)
    fstype: str  # ext2, ext3, ext4, xfs, btrfs, vfat, swap, ...
    uuid: str | None = None
    label: str | None = None
    size: int | None = None  # size of the device it sits on
    ext: ExtParams | None = None
    xfs: XfsParams | None = None
    btrfs: BtrfsParams | None = None
    fat_size: int | None = None  # vfat: 12, 16 or 32

    unmounted: bool = False  # see UNMOUNTED

    @property
    def id(self) -> str:
        return f"fs:{self.device}"


@dataclass
class Mount:
    mountpoint: str  # "swap" for swap
    device: str  # the device path (canonical)
    fstype: str
    options: list[str] = field(default_factory=list)
    fsroot: str = "/"  # the subtree mounted (btrfs subvolume path or a bind's source)
    fstab_spec: str | None = None  # what fstab names it by ("UUID=...", "/dev/vg/lv", ...)
    fstab_options: list[str] | None = None
    mounted: bool = True  # False: in fstab only
    dump: int = 0
    passno: int = 0

    @property
    def id(self) -> str:
        if self.fstype == "swap":
            return f"swap:{self.device}"
        return f"mount:{self.mountpoint}"


@dataclass
class Multipath:
    name: str  # mpatha
    path: str  # /dev/mapper/mpatha
    wwid: str | None = None
    vendor: str | None = None
    product: str | None = None
    size: int | None = None
    paths: list[str] = field(default_factory=list)  # member disk paths

    unmounted: bool = False  # see UNMOUNTED

    @property
    def id(self) -> str:
        return f"multipath:{self.path}"


@dataclass
class EfiEntry:
    number: str  # "0003"
    label: str
    active: bool = True
    partition_uuid: str | None = None
    loader: str | None = None  # \EFI\debian\shimx64.efi
    device_path: str | None = None  # the full device path text


@dataclass
class BootLoader:
    kind: str  # grub2-bios, grub2-efi, shim, systemd-boot
    location: str  # disk path (BIOS) or ESP mount point (UEFI)
    files: list[str] = field(default_factory=list)


@dataclass
class Boot:
    firmware: str = "bios"  # bios | uefi
    secure_boot: bool | None = None
    loaders: list[BootLoader] = field(default_factory=list)
    efi_entries: list[EfiEntry] = field(default_factory=list)
    boot_order: list[str] = field(default_factory=list)
    boot_current: str | None = None


@dataclass
class Excluded:
    id: str
    reason: str


@dataclass
class CaptureOptions:
    """How a layout was selected, so that checklayout can capture the same way."""

    root: str = "/"
    devices: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    exclude_disks: list[str] = field(default_factory=list)
    everything: bool = False
    autoexclude: list[str] = field(default_factory=list)  # AUTOEXCLUDE_PATH


@dataclass
class Layout:
    format_version: int = FORMAT_VERSION
    hostname: str | None = None
    captured_at: str | None = None  # ISO 8601, informational
    disks: list[Disk] = field(default_factory=list)
    multipaths: list[Multipath] = field(default_factory=list)
    mds: list[MdArray] = field(default_factory=list)
    luks: list[LuksDevice] = field(default_factory=list)
    pvs: list[PhysicalVolume] = field(default_factory=list)
    vgs: list[VolumeGroup] = field(default_factory=list)
    lvs: list[LogicalVolume] = field(default_factory=list)
    filesystems: list[Filesystem] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    boot: Boot = field(default_factory=Boot)
    excluded: list[Excluded] = field(default_factory=list)
    options: CaptureOptions = field(default_factory=CaptureOptions)
    notes: list[str] = field(default_factory=list)  # what could not be captured and why

    def partitions(self) -> list[Partition]:
        return [p for d in self.disks for p in d.partitions]

    def esps(self) -> list[Partition]:
        """Every EFI system partition (by partition type), mounted or not: a mirrored-boot
        machine has one per disk, and each must get the boot loader again."""
        return [p for p in self.partitions() if "esp" in p.flags]

    def disk(self, path: str) -> Disk | None:
        return next((d for d in self.disks if d.path == path), None)

    def filesystem(self, device: str) -> Filesystem | None:
        return next((f for f in self.filesystems if f.device == device), None)

    def mount(self, mountpoint: str) -> Mount | None:
        return next((m for m in self.mounts if m.mountpoint == mountpoint), None)

    def lv(self, full_name: str) -> LogicalVolume | None:
        return next((lv for lv in self.lvs if lv.full_name == full_name), None)
