"""OUTPUT=USB: the rescue system onto a stick made by `mkmedia format` (device or image file).

The kernel and initrd go to rescue/<host>/<stamp>/ on the data partition (MKMEDIA-000); the
host's images beyond the newest USB_RETAIN are removed, and the menu, listing every image on
the stick newest first, is written again. The stick is found by USB_DEVICE, or by the label.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from mkmedia.emit import Artifact, Emitter, bootmenu, grub
from mkmedia.session.artifacts import sha256_file
from mkmedia.usb import format as usbformat
from mkmedia.usb import menu, safety
from mkmedia.usb.fs import DataFs, settle
from mkmedia.usb.partition import DATA_LABEL, read_table
from rescue_runtime import atomic
from rescue_runtime.backup.medium import marker_path
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.run import require, run


def find_stick() -> Path:
    """The one disk whose data partition is labelled MKMEDIA-000."""
    lsblk = require("lsblk", package="util-linux")
    result = run([lsblk, "-J", "-o", "PATH,LABEL,PKNAME,TYPE"], what="looking for the stick")
    nodes = []
    pending = list(json.loads(result.stdout).get("blockdevices") or [])
    while pending:
        node = pending.pop()
        pending += node.get("children") or []
        if node.get("label") == DATA_LABEL and node.get("pkname"):
            nodes.append(f"/dev/{node['pkname']}")
    if len(nodes) != 1:
        found = ", ".join(sorted(nodes)) or "none"
        raise MissingError(
            f"OUTPUT=USB needs exactly one disk with a {DATA_LABEL} partition; found {found}.",
            hint="Prepare a stick with `mkmedia format /dev/sdX` and plug it in, or name the "
            "device or image file with USB_DEVICE.",
        )
    return Path(nodes[0])


def _stamp(existing: set[str]) -> str:
    base = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    stamp, count = base, 1
    while stamp in existing:  # two builds within a second
        count += 1
        stamp = f"{base}{count}"
    return stamp


class UsbEmitter(Emitter):
    """The rescue system on the stick, and the stick's new menu beside the other outputs."""

    name = "USB"

    def stick(self) -> tuple[Path, DataFs, dict[str, object]]:
        path = Path(self.spec.device) if self.spec.device else find_stick()
        target = safety.inspect(path)
        if target.mounts:
            raise ConfigError(
                f"The USB stick {path} is mounted ({'; '.join(target.mounts)}); mkmedia writes "
                "its data partition directly.",
                hint="Unmount it first.",
            )
        layout = read_table(path)
        data = DataFs(path, layout.data()) if layout else None
        record_text = data.read(usbformat.FORMAT_RECORD) if data else None
        if data is None or record_text is None:
            raise ConfigError(
                f"{path} (USB_DEVICE) is not a stick made by `mkmedia format`.",
                hint=f"Format it first: mkmedia format {path}",
            )
        record: dict[str, object] = json.loads(record_text)
        if self.spec.secure_boot and not record.get("secure_boot"):
            raise ConfigError(
                f"SECURE_BOOT is on but the stick {path} was formatted without the signed "
                "boot loaders, so Secure Boot firmware would refuse it.",
                hint=f"Format it again with SECURE_BOOT=yes: mkmedia format --set "
                f"SECURE_BOOT=yes {path}",
            )
        return path, data, record

    def check(self) -> None:
        if self.spec.usb_retain < 0:
            raise ConfigError(
                f"USB_RETAIN is {self.spec.usb_retain}, but it counts rescue images to keep.",
                hint="Set USB_RETAIN to 1 or more, or 0 to keep every image.",
            )
        self.stick()
        if self.spec.payload_dirs:
            raise ConfigError(
                f"OUTPUT=USB cannot carry {', '.join(sorted(self.spec.payload_dirs))} yet.",
                hint="Use OUTPUT=ISO for a backup inside the media, or BACKUP_URL=file://.",
            )

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        self.check()
        spec = self.spec
        if spec.secure_boot and not grub.kernel_is_signed(kernel):
            raise ConfigError(
                f"SECURE_BOOT is on but the kernel {kernel} carries no signature.",
                hint="Use the distribution's signed kernel, or set SECURE_BOOT=no.",
            )
        path, data, _ = self.stick()
        host = spec.host.split(".")[0]
        index = menu.Index.parse(data.read(menu.INDEX), f"{path}:{menu.INDEX}")
        stamp = _stamp({i.stamp for i in index.images if i.host == host})
        directory = f"/rescue/{host}/{stamp}"
        boot = bootmenu.build_menu(
            host=spec.host,
            kernel_cmdline=spec.kernel_cmdline,
            consoles=spec.consoles,
            boot_default=spec.boot_default,
            boot_timeout=spec.boot_timeout,
        )
        dropped = index.add(
            menu.image_of(boot, host=host, stamp=stamp, directory=directory), spec.usb_retain
        )
        work = work_dir / "usb"
        work.mkdir(parents=True, exist_ok=True)
        (work / "images.json").write_text(index.dump())
        menu_file = spec.directory / f"{spec.prefix}-usb-grub.cfg"
        atomic.write_text(menu_file, menu.render(index))

        commands = [] if data.exists(f"/rescue/{host}") else [f'mkdir "/rescue/{host}"']
        commands += [
            f'mkdir "{directory}"',
            f'write "{kernel}" "{directory}/vmlinuz"',
            f'write "{initrd}" "{directory}/initrd"',
        ]
        if spec.medium_id:
            # the marker this rescue system was built to look for (rescue.json's medium_id)
            marker = f"/{marker_path(spec.medium_id)}"
            (work / "marker").write_text(f"mkmedia rescue medium {spec.medium_id} for {host}\n")
            if not data.exists(marker):
                commands.append(f'write "{work / "marker"}" "{marker}"')
        data.apply(commands, f"writing the rescue image {directory}")
        for image in dropped:
            data.apply(data.remove_tree(image.dir), f"removing the old rescue image {image.dir}")
        # the index and the menu last: a stick cut off before lists only complete images
        data.apply(
            [
                *data.put(work / "images.json", menu.INDEX, exists=data.exists(menu.INDEX)),
                *data.put(menu_file, menu.MENU, exists=data.exists(menu.MENU)),
            ],
            "writing the stick's menu",
        )
        settle(path)
        on_stick = [(kernel, "vmlinuz", "usb-kernel"), (initrd, "initrd", "usb-initrd")]
        return [
            *(
                Artifact(
                    Path(f"{path}:{directory}/{name}"), kind, src.stat().st_size, sha256_file(src)
                )
                for src, name, kind in on_stick
            ),
            Artifact.of(menu_file, "usb-menu"),
        ]


EMITTER = UsbEmitter
