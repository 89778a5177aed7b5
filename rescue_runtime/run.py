"""The one wrapper every external command goes through.

argv lists only (never a shell string), the command line and its output go to the log, and a
failure raises CommandError naming the command, its exit status and the tail of its output.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rescue_runtime.errors import CommandError, MissingError

log = logging.getLogger("mkmedia.run")

TAIL_LINES = 15


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# The rescue system's PATH, and where programs are looked up after the caller's PATH (a
# non-root PATH often lacks the sbin directories). The one list: builder and rescue use it.
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def search_path(path_env: str | None = None) -> list[str]:
    """PATH's absolute directories (from the environment unless given), then SYSTEM_PATH's,
    each once."""
    value = os.environ.get("PATH", "") if path_env is None else path_env
    dirs: list[str] = []
    for d in [*value.split(":"), *SYSTEM_PATH]:
        d = d.rstrip("/") or "/"
        if d.startswith("/") and d not in dirs:
            dirs.append(d)
    return dirs


def is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def which(
    program: str,
    *,
    dirs: Sequence[str] | None = None,
    executable: Callable[[str], bool] = is_executable,
) -> str | None:
    """The first DIR/program in `dirs` (default: search_path()) that is an executable file; an
    absolute `program` is checked as it is, a relative one with a '/' is never found.

    `executable` decides what counts: the builder passes one that looks inside a rescue tree
    (mkmedia.rootpaths.RootPaths.which).
    """
    if program.startswith("/"):
        candidates = [program]
    elif not program or "/" in program:
        return None
    else:
        candidates = [posixpath.join(d, program) for d in (search_path() if dirs is None else dirs)]
    for candidate in candidates:
        if executable(candidate):
            return candidate
    return None


def require(program: str, *, package: str | None = None) -> str:
    """Return the path of a program or raise MissingError saying what to install."""
    path = which(program)
    if path is None:
        what = f" (Debian package {package!r})" if package else ""
        raise MissingError(
            f"The program {program!r} is needed but was not found on PATH or in /usr/sbin.",
            hint=f"Install it{what} and run mkmedia again.",
        )
    return path


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    parts = text.rstrip().splitlines()
    return "\n".join(parts[-lines:])


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    input: str | bytes | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    binary: bool = False,
    what: str | None = None,
) -> Result:
    """Run a command, log it with its output, and raise CommandError on failure when `check`.

    `what` is a short phrase for the error message ("writing the ISO", ...). With `binary`,
    stdout/stderr are decoded with errors replaced (used for tools that print raw bytes).
    """
    args = [os.fspath(a) for a in argv]
    if not args:
        raise ValueError("run() needs a command")
    cmdline = shlex.join(args)
    log.debug("run: %s%s", cmdline, f"  (cwd={cwd})" if cwd else "")
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    data = input.encode() if isinstance(input, str) else input
    try:
        proc = subprocess.run(
            args,
            input=data,
            capture_output=True,
            cwd=cwd,
            env=full_env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise MissingError(
            f"Cannot run {args[0]!r}: the program was not found ({exc.strerror}).",
            hint="Install the package that provides it, or check the recipe's program list.",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(
            f"The command `{cmdline}` did not finish within {timeout} seconds"
            + (f" while {what}" if what else "")
            + "; it was stopped."
        ) from exc
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    if stdout.strip():
        log.debug("stdout of %s:\n%s", args[0], stdout.rstrip())
    if stderr.strip():
        log.debug("stderr of %s:\n%s", args[0], stderr.rstrip())
    log.debug("exit status %d: %s", proc.returncode, args[0])
    result = Result(args, proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        tail = _tail(stderr) or _tail(stdout) or "(no output)"
        raise CommandError(
            f"The command `{cmdline}` failed with exit status {proc.returncode}"
            + (f" while {what}" if what else "")
            + f". The end of its output:\n{tail}",
            hint="The log file holds the full output.",
        )
    return result


def run_bytes(
    argv: Sequence[str | os.PathLike[str]],
    *,
    input: bytes | None = None,
    cwd: str | os.PathLike[str] | None = None,
    what: str | None = None,
) -> bytes:
    """Run a command whose stdout is binary data; return it (stderr is logged)."""
    args = [os.fspath(a) for a in argv]
    cmdline = shlex.join(args)
    log.debug("run: %s", cmdline)
    try:
        proc = subprocess.run(args, input=input, capture_output=True, cwd=cwd, check=False)
    except FileNotFoundError as exc:
        raise MissingError(f"Cannot run {args[0]!r}: the program was not found.") from exc
    stderr = proc.stderr.decode(errors="replace")
    if stderr.strip():
        log.debug("stderr of %s:\n%s", args[0], stderr.rstrip())
    if proc.returncode != 0:
        raise CommandError(
            f"The command `{cmdline}` failed with exit status {proc.returncode}"
            + (f" while {what}" if what else "")
            + f". The end of its output:\n{_tail(stderr) or '(no output)'}"
        )
    return proc.stdout


def spawn(
    argv: Sequence[str],
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
    controlling_tty: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a long-running process (daemon, console shell) without waiting; logged like run().

    With `controlling_tty`, the child starts a new session and takes its stdin (a terminal) as
    its controlling terminal, so job control and Ctrl-C work in a console shell.
    """
    args = list(argv)
    log.debug("spawn: %s", shlex.join(args))
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)

    def take_tty() -> None:
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        return subprocess.Popen(
            args,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=full_env,
            start_new_session=new_session or controlling_tty,
            preexec_fn=take_tty if controlling_tty else None,
        )
    except FileNotFoundError as exc:
        raise MissingError(f"Cannot start {args[0]!r}: the program was not found.") from exc
