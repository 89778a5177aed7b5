"""The pieces a recreate script is made of: a guarded block of quoted command lines."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass
class Block:
    """One component's commands; `programs` collects the tools they run."""

    id: str
    title: str
    lines: list[str] = field(default_factory=list)
    programs: list[str] = field(default_factory=list)
    probe_mount: str | None = None  # mounts: skip when already mounted, keep no state
    comments: list[str] = field(default_factory=list)

    def run(self, *argv: str, stdin: str | None = None, env: str = "") -> None:
        """A command line: argv quoted for bash; `stdin` becomes a quoted here-document."""
        self.use(argv[0])
        line = " ".join(quote(a) for a in argv)
        if env:
            line = f"{env} {line}"
        if stdin is not None:
            line += " <<'EOF'\n" + stdin.rstrip("\n") + "\nEOF"
        self.lines.append(line)

    def raw(self, line: str, *programs: str) -> None:
        """A line written by hand (a loop, a substitution); `programs` it runs."""
        for program in programs:
            self.use(program)
        self.lines.append(line)

    def use(self, program: str) -> None:
        if program not in self.programs and not program.startswith(("$", "wait_", "key_")):
            self.programs.append(program)


def quote(arg: str) -> str:
    """Shell-quote, but leave "$VAR..." words (the script's own variables) expandable."""
    if arg.startswith('"$') and arg.endswith('"'):
        return arg
    return shlex.quote(arg)


def size_arg(size: int) -> str:
    """A size for LVM's options: KiB when it is whole KiB, else 512-byte sectors."""
    return f"{size // 1024}k" if size % 1024 == 0 else f"{size // 512}s"
