"""What text may go into a boot loader configuration line (grub.cfg, isolinux.cfg).

Every menu value is written into one line of a boot loader configuration: a control character
(a newline above all) would start a command of its own, and GRUB's script parser acts on its
metacharacters in a `linux` line.
"""

from __future__ import annotations

# Characters GRUB's script parser acts on in a `linux` line (expansion, command separators,
# redirections, blocks, quoting): a kernel option holding one would not reach the kernel as
# written. Double quotes are left out: GRUB regroups a quoted value the way the kernel does.
GRUB_SPECIAL = frozenset("$;&|<>{}\\'`")


def control_character(text: str) -> str | None:
    """The first control character in `text`, written readably; None when there is none.

    Every menu line is one line of a boot loader config: a newline would start a new command.
    """
    for char in text:
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return repr(char)
    return None


def grub_special(text: str) -> str | None:
    """The GRUB script characters in `text`, space-separated; None when there are none."""
    found = sorted({char for char in text if char in GRUB_SPECIAL})
    return " ".join(found) if found else None
