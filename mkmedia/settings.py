"""The settings table: every setting mkmedia knows, in one place.

Recipe parsing, `--set`, command-line flags, defaults, `mkmedia dump` and `mkmedia settings`
are all driven by this table. Names follow ReaR's where ReaR has one, so its users find their way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from mkmedia import emit
from mkmedia.emit import bootmenu
from rescue_runtime import backup
from rescue_runtime.layout.select import DEFAULT_AUTOEXCLUDE
from rescue_runtime.recover import resize


class Kind(Enum):
    STR = "text"
    INT = "integer"
    BOOL = "boolean"
    LIST = "list"
    CHOICE = "choice"


@dataclass(frozen=True)
class Registry:
    """Which of a setting's choices this version implements, as a registry decides."""

    names: Callable[[], tuple[str, ...]]  # the choices that work, in the order shown
    why_not: Callable[[str], str]  # why another choice is refused (the end of a sentence)


@dataclass(frozen=True)
class Setting:
    name: str
    kind: Kind
    default: object
    help: str
    choices: tuple[str, ...] = ()
    flag: str | None = None  # the command-line flag of build-like commands, when there is one
    expand: bool = True  # ${VARIABLE} expansion applies to its values
    rescue: bool = True  # carried into the rescue system (build-host paths are not)
    # The registry deciding which choices validation accepts and `mkmedia settings` offers;
    # the other choices are names known for later versions, refused with the registry's reason.
    registry: Registry | None = None

    @property
    def offered(self) -> tuple[str, ...]:
        """The choices this version accepts."""
        return self.registry.names() if self.registry else self.choices

    @property
    def is_list(self) -> bool:
        return self.kind is Kind.LIST

    @property
    def merge_rule(self) -> str:
        if self.is_list:
            return (
                "append (or {append, remove, replace}); "
                "--set NAME=a,b replaces, NAME+=a,b appends, NAME-=a,b removes"
            )
        return "last layer wins"


def _s(
    name: str,
    kind: Kind,
    default: object,
    help: str,
    *,
    choices: tuple[str, ...] = (),
    flag: str | None = None,
    expand: bool = True,
    rescue: bool = True,
    registry: Registry | None = None,
) -> Setting:
    return Setting(name, kind, default, help, choices, flag, expand, rescue, registry)


STR, INT, BOOL, LIST, CHOICE = Kind.STR, Kind.INT, Kind.BOOL, Kind.LIST, Kind.CHOICE


def _known(registered: tuple[str, ...], planned: tuple[str, ...]) -> tuple[str, ...]:
    """Every name a recipe may write: the registered ones, then those planned for later."""
    return (*registered, *(name for name in planned if name not in registered))


# Names the design plans; each is refused until its emitter or method is registered.
OUTPUT_KINDS = _known(
    emit.output_names(), ("ISO", "CDROM", "USB", "PXE", "OBDR", "RAMDISK", "RAWDISK")
)
BACKUP_METHODS = _known(backup.method_names(), ("NONE", "NETFS", "TAPE", "CDROM", "EXTERNAL"))
OUTPUT_REGISTRY = Registry(
    emit.output_names,
    lambda name: "has no emitter in this version of mkmedia, so no media would be written",
)
BACKUP_REGISTRY = Registry(
    backup.method_names,
    lambda name: "has no backup method in this version of mkmedia, so no backup would be made",
)
BOOT_DEFAULT_REGISTRY = Registry(bootmenu.available_defaults, bootmenu.why_not)

SETTINGS: tuple[Setting, ...] = (
    # --- what the media is -----------------------------------------------------------------
    _s(
        "OUTPUT",
        CHOICE,
        "ISO",
        "Kind of rescue media to write.",
        choices=OUTPUT_KINDS,
        flag="--output",
        registry=OUTPUT_REGISTRY,
    ),
    _s(
        "OUTPUT_URL",
        STR,
        "file:///var/lib/mkmedia/output",
        "Where the media goes (file://DIR; nfs:// and cifs:// when mounting is supported).",
        flag="--output-url",
        rescue=False,
    ),
    _s(
        "OUTPUT_PREFIX",
        STR,
        "${HOSTNAME}",
        "Subdirectory and file-name prefix of the output (one name: no '/', no leading dot).",
        rescue=False,
    ),
    _s("CDROM_DEVICE", STR, "", "Optical drive OUTPUT=CDROM burns to; empty: the first writer."),
    _s(
        "USB_DEVICE",
        STR,
        "",
        "Stick (or image file) OUTPUT=USB writes to, made by `mkmedia format`; empty: the "
        "one disk with a partition labelled MKMEDIA-000.",
        rescue=False,
    ),
    _s(
        "TAPE_DEVICE",
        STR,
        "",
        "Tape OUTPUT=OBDR writes to: the non-rewinding drive /dev/nstN, or a SIMH tape image "
        "file NAME.tap (written under a temporary name, then renamed).",
        rescue=False,
    ),
    _s(
        "TAPE_BLOCK_SIZE",
        INT,
        65536,
        "Record size of the backup stream on a tape (a multiple of 512; the header and the "
        "ISO always use 512 and 2048).",
    ),
    _s(
        "TAPE_OVERWRITE",
        BOOL,
        False,
        "Write over a tape whose first record is not a mkmedia label (another program's "
        "data); mkmedia's own tapes are always overwritten.",
        rescue=False,
    ),
    _s(
        "TAPE_OBDR_MODE_PAGE",
        STR,
        "",
        "The bytes of the HP drive's mode page 0x3E (sg_wr_mode --contents, from the drive's "
        "SCSI manual) that switch it from OBDR CD emulation back to tape mode in the rescue "
        "system; empty: the operator switches it (power cycle or the drive's own method).",
    ),
    _s("USB_RETAIN", INT, 2, "Rescue images OUTPUT=USB keeps per host on the stick (0: all)."),
    _s("ISO_VOLID", STR, "", "ISO volume label; empty: derived from the host name (at most 32)."),
    _s(
        "ISO_MAX_SIZE",
        INT,
        0,
        "MiB one medium holds (e.g. 4480 for a DVD); an iso:// backup larger than that goes "
        "onto further ISOs <prefix>-vol002.iso, ... (needs BACKUP_VOLUME_SIZE); 0: no limit.",
    ),
    _s(
        "PXE_TFTP_URL",
        STR,
        "",
        "OUTPUT=PXE: the TFTP root the tree goes to (file://DIR); empty: the output directory.",
        rescue=False,
    ),
    _s(
        "PXE_CLIENTS",
        LIST,
        [],
        "OUTPUT=PXE: MAC or IPv4 addresses the host's own menu files are named for; empty: "
        "the MAC and IPv4 addresses of this machine's Ethernet interfaces.",
    ),
    _s(
        "RAWDISK_FORMAT",
        CHOICE,
        "raw",
        "OUTPUT=RAWDISK: write the disk image raw, as qcow2 (qemu-img), or both.",
        choices=("raw", "qcow2", "both"),
    ),
    _s(
        "BACKUP",
        CHOICE,
        "NONE",
        "Backup method.",
        choices=BACKUP_METHODS,
        flag="--backup",
        registry=BACKUP_REGISTRY,
    ),
    _s(
        "BACKUP_URL",
        STR,
        "",
        "Where the backup goes; the BACKUP method says which URL schemes it takes "
        "(NETFS: file:///DIR, iso:///NAME, sshfs://USER@HOST/DIR, nfs://HOST/EXPORT, "
        "cifs://HOST/SHARE, usb:///dev/disk/by-label/MKMEDIA-000, tape:///dev/nstN or "
        "tape:///PATH.tap).",
        flag="--backup-url",
    ),
    _s(
        "BACKUP_OPTIONS",
        STR,
        "",
        "Mount options for the backup location: sshfs -o options (IdentityFile=KEY), NFS "
        "options (vers=4.2), cifs options with credentials=FILE (never password=), usb mount "
        "options.",
    ),
    _s("BACKUP_PROG_EXCLUDE", LIST, [], "Paths and globs the backup leaves out."),
    _s(
        "BACKUP_TARGET_ON_BACKED_UP_FS",
        BOOL,
        False,
        "Allow a file:// backup on a file system the backup covers (the target is left out).",
    ),
    _s(
        "NETFS_KEEP_OLD_BACKUP_COPY",
        BOOL,
        False,
        "Keep the previous NETFS backup as <host>.old once the new one is complete.",
    ),
    _s(
        "BACKUP_TYPE",
        CHOICE,
        "full",
        "NETFS: full starts a new chain; incremental adds what changed since the last archive, "
        "differential what changed since the full one (GNU tar --listed-incremental).",
        choices=("full", "incremental", "differential"),
    ),
    _s(
        "BACKUP_VOLUME_SIZE",
        INT,
        0,
        "NETFS: cut the backup into numbered volumes of this many MiB (0: one volume; "
        "iso://: at most 4095, one ISO 9660 file).",
    ),
    _s(
        "BACKUP_CRYPT_KEY_FILE",
        STR,
        "",
        "NETFS: encrypt the backup (openssl aes-256-ctr) with the key in this file, one line "
        "of 32+ characters; the rescue system reads it from the same path at recover. "
        "Never on the backup target or the rescue medium.",
    ),
    # --- what goes into the rescue system ----------------------------------------------------
    _s("PROGS", LIST, [], "Programs carried when present (names on PATH/sbin, or absolute paths)."),
    _s("REQUIRED_PROGS", LIST, [], "Programs the build fails without."),
    _s("LIBS", LIST, [], "Extra libraries (paths or globs), e.g. dlopen()ed ones: NSS modules."),
    _s(
        "MODULES_POLICY",
        CHOICE,
        "storage+network",
        "Which kernel modules go in besides MODULES.",
        choices=("explicit", "loaded", "storage+network", "all"),
    ),
    _s("MODULES", LIST, [], "Kernel modules always included (names or globs)."),
    _s("MODULES_LOAD", LIST, [], "Kernel modules the rescue system loads at boot."),
    _s("FIRMWARE", LIST, [], "Extra firmware files or globs under /lib/firmware."),
    _s("COPY_AS_IS", LIST, [], "Files and trees copied verbatim (globs allowed)."),
    _s("EXCLUDE", LIST, [], "Globs left out of the rescue system."),
    _s("PYTHON", STR, "/usr/bin/python3", "Interpreter embedded in the rescue system."),
    _s("KERNEL", STR, "auto", "Kernel: auto, a version, or a path to an image.", flag="--kernel"),
    _s(
        "KERNEL_CMDLINE",
        STR,
        "",
        "Extra kernel command line options of the rescue system.",
    ),
    _s(
        "CONSOLES",
        LIST,
        ["tty0", "ttyS0,115200"],
        "Kernel consoles (the last one is /dev/console).",
    ),
    # --- packing -----------------------------------------------------------------------------
    _s(
        "COMPRESSION",
        CHOICE,
        "zstd",
        "Initrd compression.",
        choices=("zstd", "gzip", "xz", "none"),
        flag="--compression",
    ),
    _s("COMPRESSION_LEVEL", INT, 0, "Compression level; 0: the method's tuned default."),
    # --- booting -----------------------------------------------------------------------------
    _s(
        "BOOT_DEFAULT",
        CHOICE,
        "local",
        "Boot menu default: boot the local disk, or the rescue system.",
        choices=bootmenu.BOOT_DEFAULTS,
        registry=BOOT_DEFAULT_REGISTRY,
    ),
    _s("BOOT_TIMEOUT", INT, 30, "Seconds the boot menu waits before its default (0-3599)."),
    _s(
        "SECURE_BOOT",
        CHOICE,
        "auto",
        "Use the signed shim/GRUB/kernel chain.",
        choices=("auto", "yes", "no"),
    ),
    # --- the rescue system at run time -------------------------------------------------------
    _s(
        "NETWORK",
        CHOICE,
        "dhcp",
        "Rescue network: DHCP on every link, the host's saved addresses, or none.",
        choices=("dhcp", "saved", "none"),
    ),
    _s(
        "SSH_AUTHORIZED_KEYS",
        LIST,
        [],
        "Public keys allowed to log in to the rescue system as root.",
    ),
    _s("SSH_ROOT_PASSWORD_HASH", STR, "", "crypt(3) hash for root's password; empty: no password."),
    _s(
        "UNATTENDED_ACTION",
        CHOICE,
        "reboot",
        "What an unattended recovery does when it has finished (recover comes later).",
        choices=("reboot", "poweroff", "shell"),
    ),
    # --- updating a running rescue system (mkmedia update) ----------------------------------
    _s(
        "RECOVERY_UPDATE_URL",
        STR,
        "",
        "Overlay (mkmedia update pack) the rescue system applies with `mkmedia update` and at "
        "the start of recover: file://, http(s)://; ${HOSTNAME}, ${MAC} (first link with "
        "carrier) and ${SERIAL} (DMI) expand there, on the machine it runs on.",
        expand=False,
    ),
    _s(
        "UPDATE_ALLOWED_SIGNERS",
        STR,
        "",
        "ssh-keygen allowed-signers file built into the media; when set, the rescue system "
        "applies only overlays signed by a key in it (mkmedia update pack --sign-key).",
        rescue=False,
    ),
    _s("UPDATE_MAX_MIB", INT, 64, "Largest overlay the rescue system accepts, in MiB."),
    # --- layout ------------------------------------------------------------------------------
    _s(
        "LAYOUT_DIR",
        STR,
        "/var/lib/mkmedia/layout",
        "Where the saved disk layout lives.",
        rescue=False,
    ),
    _s(
        "EXCLUDE_RECREATE",
        LIST,
        [],
        "Layout components not recreated: mount points, devices, VGs, vg/lv or ids (vg:backup).",
    ),
    _s(
        "AUTOEXCLUDE_PATH",
        LIST,
        list(DEFAULT_AUTOEXCLUDE),
        "File systems mounted below these directories (USB sticks, job disks) are left out of "
        "the layout, and a disk with nothing else kept on it too.",
    ),
    _s(
        "RESIZE_PARTITIONS",
        CHOICE,
        "proportional",
        "How recover shares a larger disk's new space: every partition by its share, the "
        "last one, or none (the LVs of a grown VG grow with it in proportional mode).",
        choices=resize.MODES,
    ),
    _s("LUKS_HEADER_BACKUP", BOOL, False, "Keep LUKS header backups with the layout (sensitive)."),
    # --- the run itself ----------------------------------------------------------------------
    _s("TMPDIR", STR, "/var/tmp", "Parent directory of the private build area.", rescue=False),
    _s(
        "REPORT",
        BOOL,
        True,
        "Write a size report of the rescue system beside the media.",
        rescue=False,
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

# Keys with a meaning of their own in a recipe file, not settings.
RECIPE_KEYWORDS = ("EXTENDS", "DESCRIPTION")


def lookup(name: str) -> Setting | None:
    return BY_NAME.get(name.upper())
