"""`mkmedia dump`: the system definition, every layer (OK or missing), settings with origins."""

from __future__ import annotations

from mkmedia.config import Config


def _fmt(value: object) -> str:
    if isinstance(value, list):
        return " ".join(value) if value else "(empty)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value != "" else '""'


def render_dump(config: Config) -> str:
    s = config.system
    lines = ["# System definition"]
    facts = [
        ("HOSTNAME", s.hostname),
        ("ARCH", s.arch),
        ("OS", s.os),
        ("OS_VENDOR", s.os_vendor),
        ("OS_VERSION", s.os_version),
        ("OS_CODENAME", s.os_codename or "-"),
        ("FIRMWARE", s.firmware),
        ("RUNNING_KERNEL", s.running_kernel),
        ("KERNELS", " ".join(s.kernels) or "(none in /boot)"),
        ("KERNEL_VERSION", config.kernel_version or "(none)"),
    ]
    lines += [f"{name:<22} {value}" for name, value in facts]
    lines += ["", "# Configuration layers"]
    for layer in config.layers:
        where = (
            str(layer.path)
            if layer.path
            else "(command line)"
            if layer.label == "--set"
            else "(settings table)"
        )
        status = "OK" if layer.status == "OK" else "missing/empty"
        lines.append(f"{layer.label:<14} {where:<58} {status}")
    lines += ["", "# Settings (value, then the layers it came from)"]
    for name, value in config.values.items():
        lines.append(f"{name:<22} {_fmt(value)}")
        lines.append(f"{'':<22}   from {config.origin_text(name)}")
    return "\n".join(lines)


def render_dump_json(config: Config) -> dict[str, object]:
    return {
        "system": config.system.as_dict(),
        "kernel_version": config.kernel_version,
        "layers": [
            {
                "label": layer.label,
                "path": str(layer.path) if layer.path else None,
                "status": layer.status,
            }
            for layer in config.layers
        ],
        "settings": config.as_json(),
    }
