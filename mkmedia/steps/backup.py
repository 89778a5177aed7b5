"""backup stage: translate the BACKUP settings into a call of the backup method.

mkbackup plans the backup right after saving the layout (so a bad target stops the run
before the rescue tree is built) and makes it before the output stage (iso:// puts it into
the ISO). mkbackuponly uses the saved layout without overwriting it; the manifest records
the layout (sha256 of layout.json) the backup was taken with.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from mkmedia.config import Config
from mkmedia.emit import isovolumes
from mkmedia.emit.iso import RESERVED
from mkmedia.emit.tapewrite import check_target, staged_backup, write_tape
from mkmedia.session import outputset
from mkmedia.session.artifacts import Artifact
from mkmedia.session.epoch import resolve_epoch
from mkmedia.session.log import say
from mkmedia.steps.output import output_directory
from mkmedia.workflow import Context, need, step
from rescue_runtime.backup import crypt
from rescue_runtime.backup.manifest import MANIFEST_NAME
from rescue_runtime.backup.netfs import Netfs, closing_line, target_source
from rescue_runtime.backup.progress import MiB
from rescue_runtime.backup.sources import BackupPlan, Exclusion, plan_backup, system_path
from rescue_runtime.errors import ConfigError, MkmediaError
from rescue_runtime.layout import capture, store
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.serial import to_json
from rescue_runtime.tape import is_tape_device
from rescue_runtime.tape.label import Label
from rescue_runtime.tape.layout import check_block_size, write_plain
from rescue_runtime.url import parse_url, url_scheme

ISO_PAYLOAD = "iso-payload"
TAPE_STAGING = "tape-backup"
TAPE_FORCE_HINT = "set TAPE_OVERWRITE=yes to write over it"
ISO_FILE_LIMIT = 4 * 1024**3 - 1  # one ISO9660 file extent: larger backups go in volumes


def _netfs(config: Config) -> bool:
    return config.get_str("BACKUP") == "NETFS"


def _saved_layout(ctx: Context) -> tuple[Layout, str]:
    """The saved layout and the sha256 of its layout.json; without one (mkbackuponly on a
    fresh machine) a capture for this backup only, which is not saved."""
    layout_dir = Path(ctx.config.get_str("LAYOUT_DIR"))
    path = layout_dir / store.JSON_NAME
    if path.is_file():
        return store.load(layout_dir), hashlib.sha256(path.read_bytes()).hexdigest()
    ctx.warn(f"no saved layout in {layout_dir}: captured one for this backup only (not saved)")
    layout = capture.capture(exclude=ctx.config.get_list("EXCLUDE_RECREATE"))
    return layout, hashlib.sha256(to_json(layout).encode()).hexdigest()


@contextlib.contextmanager
def backup_directory(ctx: Context) -> Iterator[Path]:
    """Where this run writes the backup: DIR/<host> (file://; sshfs://, nfs://, cifs://,
    usb:// mounted in the build area meanwhile) or the ISO payload (iso://)."""
    url = ctx.config.get_str("BACKUP_URL")
    parsed = parse_url(url)
    if parsed.scheme == "iso":
        yield ctx.build_dir / ISO_PAYLOAD / parsed.path.strip("/")
        return
    if parsed.scheme == "tape":  # staged here, then written onto the tape
        yield ctx.build_dir / TAPE_STAGING / ctx.config.system.hostname.split(".")[0]
        return
    with Netfs.target(
        url,
        ctx.config.system.hostname,
        options=ctx.config.get_str("BACKUP_OPTIONS"),
        work_dir=ctx.build_dir,
    ) as directory:
        yield directory


def _plan(ctx: Context) -> BackupPlan:
    config = ctx.config
    url = config.get_str("BACKUP_URL")
    Netfs.check_url(url)
    if parse_url(url).scheme == "iso" and ctx.workflow != "mkbackup":
        raise ConfigError(
            f"BACKUP_URL={url!r} puts the backup into the rescue ISO, which `mkmedia "
            f"{ctx.workflow}` does not write.",
            hint="Run `mkmedia mkbackup`, or use a file:// BACKUP_URL.",
        )
    name = parse_url(url).path.strip("/")
    if parse_url(url).scheme == "iso" and name.lower() in RESERVED:
        raise ConfigError(
            f"BACKUP_URL={url!r} names the ISO directory /{name}, which holds the boot files "
            f"({', '.join(RESERVED)} are taken).",
            hint="Use another name, e.g. iso:///backup.",
        )
    _check_archive_settings(config, url)
    layout, digest = _saved_layout(ctx)
    ctx.layout_sha256 = digest
    root = layout.options.root or "/"
    host_excludes = [
        (f"{output_directory(config)}/*", "mkmedia's output directory"),
        (str(ctx.build_dir), "mkmedia's build area"),
    ]
    excludes = [(p, "BACKUP_PROG_EXCLUDE") for p in config.get_list("BACKUP_PROG_EXCLUDE")]
    for host_path, reason in host_excludes:
        inside = system_path(host_path, root)
        if inside is not None:
            excludes.append((inside, reason))
    if parse_url(url).scheme == "tape" and not is_tape_device(parse_url(url).path):
        image = Path(parse_url(url).path)
        for path in (image, image.with_name(f".{image.name}.*")):  # and its temporary name
            inside = system_path(str(path), root)
            if inside is not None:
                excludes.append((inside, "the tape image the backup goes to"))
    plan = plan_backup(layout, root=root, excludes=excludes)
    if parse_url(url).scheme != "file":
        return plan  # iso:// lives in the build area, the mounted ones on a server or a stick
    directory = Netfs.backup_dir(url, config.system.hostname)
    source = target_source(directory, plan)
    if source is not None:
        if not config.get_bool("BACKUP_TARGET_ON_BACKED_UP_FS"):
            raise ConfigError(
                f"BACKUP_URL={url!r} puts the backup into {directory}, on the file system "
                f"mounted at {source.path} ({source.device}), which the backup itself covers: "
                "restoring it would need the disk it is meant to rebuild.",
                hint="Point BACKUP_URL at another disk or a mounted share, or set "
                "BACKUP_TARGET_ON_BACKED_UP_FS=yes to allow it (the target is then left out).",
            )
        for path in (directory, directory.with_name(f"{directory.name}.old")):
            inside = system_path(str(path), root)
            if inside is not None:
                plan.exclusions.append(Exclusion(inside, "the backup target (opt-in)"))
    return plan


def _check_tape(ctx: Context, device: str) -> None:
    """tape://: onto the OBDR tape after its ISO (mkbackup, the same tape), or a tape of its
    own, checked before anything is built."""
    config = ctx.config
    if config.get_str("BACKUP_TYPE") != "full" or config.get_int("BACKUP_VOLUME_SIZE"):
        raise ConfigError(
            f"BACKUP_URL=tape://{device} holds one full archive in one volume, but "
            f"BACKUP_TYPE={config.get_str('BACKUP_TYPE')} and "
            f"BACKUP_VOLUME_SIZE={config.get_int('BACKUP_VOLUME_SIZE')}.",
            hint="Use BACKUP_TYPE=full and BACKUP_VOLUME_SIZE=0 with a tape.",
        )
    if config.get_str("OUTPUT") == "OBDR":
        if device != config.get_str("TAPE_DEVICE"):
            raise ConfigError(
                f"OUTPUT=OBDR writes the backup onto its tape after the ISO, but BACKUP_URL "
                f"names tape://{device} and TAPE_DEVICE is {config.get_str('TAPE_DEVICE')!r}.",
                hint="Set BACKUP_URL=tape://<TAPE_DEVICE>, or another OUTPUT for a tape of "
                "the backup alone.",
            )
        if ctx.workflow != "mkbackup":
            raise ConfigError(
                f"`mkmedia {ctx.workflow}` with OUTPUT=OBDR would have to rewrite the "
                "bootable part of the tape; the OBDR tape is written whole.",
                hint="Run `mkmedia mkbackup` (the rescue ISO and the backup, one tape).",
            )
        return  # the emitter checks the tape in the prep stage
    check_block_size(config.get_int("TAPE_BLOCK_SIZE"))
    check_target(
        device,
        force=config.get_bool("TAPE_OVERWRITE"),
        setting="BACKUP_URL",
        force_hint=TAPE_FORCE_HINT,
    )


def _write_plain_tape(ctx: Context, device: str, directory: Path) -> Artifact:
    """tape:// without OUTPUT=OBDR: our label, the backup's manifest and its stream."""
    block_size = ctx.config.get_int("TAPE_BLOCK_SIZE")
    label = Label(
        "plain",
        host=ctx.config.system.hostname,
        written=resolve_epoch(ctx.epoch),
        block_size=block_size,
    )
    backup = staged_backup(directory)
    bar = ProgressBar("tape")
    try:
        return write_tape(
            device,
            lambda t: write_plain(t, label, backup, block_size=block_size, progress=bar),
            "tape-backup",
        )
    finally:
        bar.close()


@step("prep", 300, when=_netfs)
def check_tape_target(ctx: Context) -> None:
    """tape://: the tape checked (its name, what it holds) before the layout is saved."""
    url = ctx.config.get_str("BACKUP_URL")
    if url_scheme(url) == "tape":
        _check_tape(ctx, parse_url(url).path)


def _check_archive_settings(config: Config, url: str) -> None:
    """BACKUP_TYPE, BACKUP_VOLUME_SIZE and BACKUP_CRYPT_KEY_FILE fit the target (before the
    build: a wrong one stops the run before anything is made)."""
    scheme = parse_url(url).scheme
    size = config.get_int("BACKUP_VOLUME_SIZE")
    if size < 0 or (scheme == "iso" and size * MiB > ISO_FILE_LIMIT):
        limit = f" and at most {ISO_FILE_LIMIT // MiB} for iso:// (one ISO 9660 file)"
        raise ConfigError(
            f"BACKUP_VOLUME_SIZE={size} is not a usable volume size in MiB.",
            hint=f"Set it to 0 (one volume) or a size in MiB{limit if scheme == 'iso' else ''}.",
        )
    if scheme == "iso" and config.get_str("BACKUP_TYPE") != "full":
        raise ConfigError(
            f"BACKUP_TYPE={config.get_str('BACKUP_TYPE')} needs the earlier archives of the "
            f"chain beside the new one, but BACKUP_URL={url!r} writes every backup into a new "
            "ISO.",
            hint="Use BACKUP_TYPE=full with iso://, or a file:// or sshfs:// BACKUP_URL.",
        )
    key = config.get_str("BACKUP_CRYPT_KEY_FILE")
    if not key:
        return
    key_path = Path(key)
    if not key_path.is_absolute():
        raise ConfigError(
            f"BACKUP_CRYPT_KEY_FILE={key!r} is not an absolute path; the rescue system looks "
            "for the key at the same path.",
            hint="Write it as an absolute path, e.g. /root/backup.key.",
        )
    crypt.read_key(key_path)
    problem = crypt.check_key_mode(key_path)
    if problem:
        say(f"  warning: {problem}")
    if scheme == "file":
        base = Path(parse_url(url).path).resolve()
        if key_path.resolve().is_relative_to(base):
            raise ConfigError(
                f"BACKUP_CRYPT_KEY_FILE={key} lies under BACKUP_URL={url}: the key would sit "
                "beside the backup it protects.",
                hint="Keep the key elsewhere (and a copy off this machine, e.g. on a stick).",
            )


def _key_file(config: Config) -> Path | None:
    key = config.get_str("BACKUP_CRYPT_KEY_FILE")
    return Path(key) if key else None


@step("layout", 200, when=_netfs)
def plan_backup_sources(ctx: Context) -> None:
    """mkbackup: decide what the backup covers and check its target, before the build."""
    if ctx.workflow != "mkbackup":
        return
    plan = _plan(ctx)
    ctx.backup_plan = plan
    say(f"  backup covers {', '.join(s.path for s in plan.sources)}")


class ProgressBar:
    """tqdm for the method's (done, total) progress calls."""

    def __init__(self, label: str) -> None:
        self.bar = tqdm(desc=label, unit="B", unit_scale=True, unit_divisor=1024, leave=False)

    def __call__(self, done: int, total: int) -> None:
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.update(max(0, done - self.bar.n))

    def close(self) -> None:
        self.bar.close()


@step("backup", 100, when=_netfs)
def make_backup(ctx: Context) -> None:
    """BACKUP=NETFS: tar | zstd -T0 into BACKUP_URL, with its manifest (sizes, sha256)."""
    plan = ctx.backup_plan or _plan(ctx)
    url = ctx.config.get_str("BACKUP_URL")
    bar = ProgressBar("backup")
    with backup_directory(ctx) as directory:
        if directory.is_dir():
            for stale in directory.glob(".*.partial"):
                stale.unlink()
        try:
            manifest = Netfs.backup(
                plan,
                directory,
                url=url,
                layout_sha256=ctx.layout_sha256,
                keep_old=ctx.config.get_bool("NETFS_KEEP_OLD_BACKUP_COPY"),
                progress=bar,
                backup_type=ctx.config.get_str("BACKUP_TYPE"),
                volume_size=ctx.config.get_int("BACKUP_VOLUME_SIZE") * MiB,
                key_file=_key_file(ctx.config),
            )
        finally:
            bar.close()
    listed: list[dict[str, object]] = manifest["volumes"]  # type: ignore[assignment]
    for warning in manifest["warnings"]:  # type: ignore[attr-defined]
        ctx.warn(f"backup: {warning}")
    if parse_url(url).scheme == "iso":
        largest = max(int(str(v["size"])) for v in listed)
        if largest > ISO_FILE_LIMIT:
            shutil.rmtree(directory, ignore_errors=True)
            raise MkmediaError(
                f"The backup has a volume of {largest / 1024**3:.1f} GiB, more than one ISO "
                "9660 file can hold (4 GiB).",
                hint="Set BACKUP_VOLUME_SIZE (MiB, e.g. 4000) to cut it into volumes, or "
                "exclude data with BACKUP_PROG_EXCLUDE.",
            )
        name = parse_url(url).path.strip("/")
        ctx.payload_dirs = {name: directory}
        _spread_over_media(ctx, directory, listed)
    elif parse_url(url).scheme == "tape":
        if ctx.config.get_str("OUTPUT") == "OBDR" and ctx.workflow == "mkbackup":
            ctx.tape_backup = directory  # the OBDR emitter writes it after the ISO
        else:
            ctx.artifacts.append(_write_plain_tape(ctx, parse_url(url).path, directory))
    elif parse_url(url).scheme == "file":
        for volume in listed:
            ctx.artifacts.append(
                Artifact(
                    directory / str(volume["name"]),
                    "backup",
                    int(str(volume["size"])),
                    str(volume["sha256"]),
                )
            )
        ctx.artifacts.append(Artifact.of(directory / MANIFEST_NAME, "backup-manifest"))
    say(f"  {closing_line(manifest)}")


def _spread_over_media(ctx: Context, directory: Path, listed: list[dict[str, object]]) -> None:
    """iso:// with ISO_MAX_SIZE: the volumes that do not fit beside the rescue system go onto
    further ISOs (mkmedia/emit/isovolumes.py); the output stage writes them."""
    capacity = ctx.config.get_int("ISO_MAX_SIZE") * MiB
    if not capacity:
        return
    reserve = sum(p.stat().st_size for p in (ctx.kernel_image, ctx.initrd) if p is not None)
    media = isovolumes.plan_media(
        [(str(v["name"]), int(str(v["size"]))) for v in listed],
        capacity=capacity,
        first_reserve=reserve,
    )
    if len(media) == 1:
        return
    if not ctx.config.get_int("BACKUP_VOLUME_SIZE") or not ctx.medium_id:
        raise ConfigError(
            f"The backup does not fit on one medium of ISO_MAX_SIZE="
            f"{ctx.config.get_int('ISO_MAX_SIZE')} MiB, and it is not cut into volumes.",
            hint="Set BACKUP_VOLUME_SIZE (MiB, below ISO_MAX_SIZE) to spread it over media.",
        )
    staging = ctx.build_dir / "iso-volumes"
    shutil.rmtree(staging, ignore_errors=True)
    ctx.volume_media = isovolumes.spread(directory, media, ctx.medium_id, staging)
    say(f"  the backup spans {len(media)} media (ISO_MAX_SIZE={capacity // MiB} MiB)")


@step("output", 150, when=_netfs)
def write_volume_media(ctx: Context) -> None:
    """iso:// over several media: the further ISOs beside the rescue ISO."""
    if not ctx.volume_media:
        return
    staging = need(ctx.output_staging, "the output staging directory")
    prefix = ctx.config.get_str("OUTPUT_PREFIX")
    total = 1 + len(ctx.volume_media)
    try:
        for medium, directory in ctx.volume_media:
            ctx.artifacts.append(
                isovolumes.write_volume_iso(
                    staging / f"{prefix}-vol{medium.number:03d}.iso",
                    medium=medium,
                    directory=directory,
                    host=ctx.config.system.hostname,
                    total=total,
                    epoch=resolve_epoch(None),
                    work_dir=ctx.build_dir / "emit" / f"vol{medium.number:03d}",
                )
            )
    except BaseException:
        outputset.discard(staging)
        raise
