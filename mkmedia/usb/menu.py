"""The stick's index of rescue images (mkmedia/images.json) and the one menu made from it.

Each OUTPUT=USB build adds an image under rescue/<host>/<stamp>/ with the menu entries of its
own configuration; the menu lists every image on the stick, newest first, then the local disk.
The newest image keeps the plain entry ids (BOOT_DEFAULT names them); older ones get a suffix.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from mkmedia.emit import bootmenu
from rescue_runtime.errors import ConfigError

INDEX = "/mkmedia/images.json"
MENU = "/boot/grub/grub.cfg"
LOCAL_LABEL = next(e.label for e in bootmenu.ENTRIES if e.id == "local")


@dataclass(frozen=True)
class Image:
    host: str
    stamp: str  # UTC, sortable: 20261202T011500Z
    dir: str  # rescue/<host>/<stamp>, absolute inside the data partition
    entries: list[dict[str, str]]  # id, label, cmdline of the linux entries
    default: str = "local"
    timeout: int = 30
    serial: dict[str, int] | None = None  # unit, speed


@dataclass
class Index:
    images: list[Image] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None, where: str) -> Index:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls([Image(**item) for item in data["images"]])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"The stick's image index {where} is damaged ({exc}).",
                hint="Format the stick again with `mkmedia format` (its images are lost).",
            ) from None

    def dump(self) -> str:
        return json.dumps({"images": [asdict(i) for i in self.images]}, indent=2) + "\n"

    def newest_first(self) -> list[Image]:
        return sorted(self.images, key=lambda image: (image.stamp, image.host), reverse=True)

    def add(self, image: Image, retain: int) -> list[Image]:
        """Add `image`, drop the host's images beyond the newest `retain`; return the dropped."""
        self.images.append(image)
        same = [i for i in self.newest_first() if i.host == image.host]
        dropped = same[retain:] if retain > 0 else []
        self.images = [i for i in self.images if i not in dropped]
        return dropped


def image_of(menu: bootmenu.BootMenu, *, host: str, stamp: str, directory: str) -> Image:
    when = f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]} UTC"
    entries = [
        {"id": e.id, "label": f"{e.label}, {when}", "cmdline": e.cmdline}
        for e in menu.entries
        if e.kind == "linux"
    ]
    serial = None if menu.serial is None else asdict(menu.serial)
    return Image(host, stamp, directory, entries, menu.default, menu.timeout, serial)


def render(index: Index) -> str:
    images = index.newest_first()
    shown = []
    for position, image in enumerate(images):
        suffix = "" if position == 0 else f"-{position}"
        entries = [{**e, "id": e["id"] + suffix} for e in image.entries]
        shown.append({"dir": image.dir, "entries": entries})
    newest = images[0] if images else None
    return bootmenu.render(
        "grub-usb.cfg.j2",
        images=shown,
        serial=newest.serial if newest else None,
        timeout=newest.timeout if newest else 30,
        default=newest.default if newest else "local",
        local_label=LOCAL_LABEL,
    )
