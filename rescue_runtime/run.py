"""The one wrapper every external command goes through.

argv lists only (never a shell string), the command line and its output go to the log, and a
failure raises CommandError naming the command, how it ended (an exit status the caller did
not accept, a signal, a program it could not find or start) and the tail of its output.
Standard input is /dev/null unless the caller gives some: a command waiting for input it will
never get would hang the run.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from rescue_runtime.errors import CommandError, MissingError, MkmediaError

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


def _cannot_start(
    program: str, exc: OSError, cwd: str | os.PathLike[str] | None = None
) -> MkmediaError:
    """The error for a program that could not be started at all (chdir or exec failed)."""
    if cwd is not None and exc.filename is not None and os.fspath(exc.filename) == os.fspath(cwd):
        return CommandError(
            f"Cannot run {program!r} in the directory {os.fspath(cwd)}: {exc.strerror}."
        )
    if isinstance(exc, FileNotFoundError):
        return MissingError(
            f"Cannot run {program!r}: the program was not found ({exc.strerror}).",
            hint="Install the package that provides it, or check the recipe's program list.",
        )
    if exc.errno == errno.ENOEXEC:
        return CommandError(
            f"Cannot run {program!r}: it is neither a program nor a script that starts with "
            "a '#!' line naming its interpreter (exec: Exec format error).",
            hint="Add a first line such as #!/bin/sh to the script.",
        )
    return CommandError(
        f"Cannot run {program!r}: {exc.strerror or exc}.",
        hint="Check that the file is an executable program and that mkmedia may run it.",
    )


def ended(code: int) -> str:
    """How a command ended, for an error message: the signal that killed it, or its exit
    status with what 126 and 127 mean (a shell, env or chroot could not run a program)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} ({-code})"
    if code == 127:
        return "failed with exit status 127 (a program it runs was not found)"
    if code == 126:
        return "failed with exit status 126 (a program it runs could not be executed)"
    return f"failed with exit status {code}"


def merged_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """The caller's variables over this process's environment (None: this one as it is)."""
    return None if env is None else {**os.environ, **env}


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    parts = text.rstrip().splitlines()
    return "\n".join(parts[-lines:])


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    ok_codes: Sequence[int] = (0,),
    input: str | bytes | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    binary: bool = False,
    what: str | None = None,
) -> Result:
    """Run a command, log it with its output, and raise CommandError when `check` and its
    exit status is not in `ok_codes`.

    `what` is a short phrase for the error message ("writing the ISO", ...). With `binary`,
    stdout/stderr are decoded with errors replaced (used for tools that print raw bytes).
    """
    args = [os.fspath(a) for a in argv]
    if not args:
        raise ValueError("run() needs a command")
    cmdline = shlex.join(args)
    log.debug("run: %s%s", cmdline, f"  (cwd={cwd})" if cwd else "")
    data = input.encode() if isinstance(input, str) else input
    proc = _complete(args, data, cwd=cwd, env=env, timeout=timeout, what=what)
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    if stdout.strip():
        log.debug("stdout of %s:\n%s", args[0], stdout.rstrip())
    if stderr.strip():
        log.debug("stderr of %s:\n%s", args[0], stderr.rstrip())
    log.debug("exit status %d: %s", proc.returncode, args[0])
    result = Result(args, proc.returncode, stdout, stderr)
    if check and proc.returncode not in ok_codes:
        tail = _tail(stderr) or _tail(stdout) or "(no output)"
        raise _failed(cmdline, proc.returncode, what, tail)
    return result


def _complete(
    args: list[str],
    data: bytes | None,
    *,
    cwd: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    what: str | None,
) -> subprocess.CompletedProcess[bytes]:
    """Run to completion, output captured, stdin /dev/null unless `data` is given."""
    try:
        return subprocess.run(
            args,
            input=data,
            stdin=subprocess.DEVNULL if data is None else None,
            capture_output=True,
            cwd=cwd,
            env=merged_env(env),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(
            f"The command `{shlex.join(args)}` did not finish within {timeout} seconds"
            + (f" while {what}" if what else "")
            + "; it was stopped."
        ) from exc
    except OSError as exc:
        raise _cannot_start(args[0], exc, cwd) from exc


def _failed(cmdline: str, code: int, what: str | None, tail: str) -> CommandError:
    return CommandError(
        f"The command `{cmdline}` {ended(code)}"
        + (f" while {what}" if what else "")
        + f". The end of its output:\n{tail}",
        hint="The log file holds the full output.",
    )


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
    proc = _complete(args, input, cwd=cwd, what=what)
    stderr = proc.stderr.decode(errors="replace")
    if stderr.strip():
        log.debug("stderr of %s:\n%s", args[0], stderr.rstrip())
    if proc.returncode != 0:
        raise _failed(cmdline, proc.returncode, what, _tail(stderr) or "(no output)")
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
            env=merged_env(env),
            start_new_session=new_session or controlling_tty,
            preexec_fn=take_tty if controlling_tty else None,
        )
    except OSError as exc:
        raise _cannot_start(args[0], exc) from exc


@dataclass(frozen=True)
class PipelineResult:
    argvs: list[list[str]]
    returncodes: list[int]
    stderrs: list[str]


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        proc.wait()


def pipeline(
    argvs: Sequence[Sequence[str | os.PathLike[str]]],
    *,
    stdin_path: str | os.PathLike[str] | None = None,
    stdout_path: str | os.PathLike[str] | None = None,
    ok_codes: Sequence[Sequence[int]] | None = None,
    on_tick: Callable[[list[int]], None] | None = None,
    tick: float = 0.5,
    what: str | None = None,
) -> PipelineResult:
    """Run `a | b | ...` with the kernel's pipes between the commands (no Python in the data
    path): the first reads `stdin_path` (or nothing), the last writes `stdout_path`.

    Logged like run(); `ok_codes[i]` lists the exit statuses accepted from command i (default
    0 only). `on_tick` gets the pids every `tick` seconds while the commands run (progress).
    Every command is killed if the caller is interrupted; CommandError names each one that
    failed with the tail of its stderr.
    """
    args = [[os.fspath(a) for a in argv] for argv in argvs]
    if not args or not all(args):
        raise ValueError("pipeline() needs commands")
    cmdline = " | ".join(shlex.join(a) for a in args)
    log.debug(
        "run: %s%s%s",
        cmdline,
        f" < {shlex.quote(os.fspath(stdin_path))}" if stdin_path is not None else "",
        f" > {shlex.quote(os.fspath(stdout_path))}" if stdout_path is not None else "",
    )
    accepted = [set(codes) for codes in ok_codes] if ok_codes else [{0} for _ in args]
    procs: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        errs = [stack.enter_context(tempfile.TemporaryFile()) for _ in args]
        first_in: IO[bytes] | int = subprocess.DEVNULL
        last_out: IO[bytes] | int = subprocess.DEVNULL
        if stdin_path is not None:
            first_in = stack.enter_context(open(stdin_path, "rb"))
        if stdout_path is not None:
            last_out = stack.enter_context(open(stdout_path, "wb"))
        try:
            upstream: IO[bytes] | int | None = first_in
            for i, argv in enumerate(args):
                last = i == len(args) - 1
                try:
                    proc = subprocess.Popen(
                        argv,
                        stdin=upstream,
                        stdout=last_out if last else subprocess.PIPE,
                        stderr=errs[i],
                    )
                except FileNotFoundError as exc:
                    raise MissingError(
                        f"Cannot run {argv[0]!r}: the program was not found ({exc.strerror}).",
                        hint="Install the package that provides it.",
                    ) from exc
                if (
                    upstream is not first_in
                    and upstream is not None
                    and not isinstance(upstream, int)
                ):
                    # The child holds its own copy; ours would keep the pipe open after it exits.
                    upstream.close()
                upstream = proc.stdout
                procs.append(proc)
            while True:
                try:
                    procs[-1].wait(timeout=tick)
                except subprocess.TimeoutExpired:
                    if on_tick is not None:
                        on_tick([p.pid for p in procs])
                    continue
                break
            codes = [p.wait() for p in procs]
        except BaseException:
            _stop(procs)
            raise
        texts = []
        for err in errs:
            err.seek(0)
            texts.append(err.read().decode(errors="replace"))
    stderrs = texts
    for argv, text in zip(args, texts, strict=True):
        if text.strip():
            log.debug("stderr of %s:\n%s", argv[0], text.rstrip())
    log.debug("exit statuses %s: %s", codes, cmdline)
    failed = [i for i, code in enumerate(codes) if code not in accepted[i]]
    if failed:
        details = "; ".join(
            f"`{args[i][0]}` {ended(codes[i])}: {_tail(stderrs[i], 5) or '(no output)'}"
            for i in failed
        )
        raise CommandError(
            f"The pipeline `{cmdline}` failed"
            + (f" while {what}" if what else "")
            + f". {details}",
            hint="The log file holds the full output.",
        )
    return PipelineResult(args, codes, stderrs)
