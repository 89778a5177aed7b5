"""The resolver agrees with `ldd` on every dynamic program of /usr/bin and /usr/sbin."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from mkmedia.elf.resolver import ElfResolver
from rescue_runtime.run import run

pytestmark = pytest.mark.integration

# "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "\tlibfoo.so => not found",
# "\t/lib64/ld-linux-x86-64.so.2 (0x...)"
_ARROW = re.compile(r"^\s*(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$")
_LOADER = re.compile(r"^\s*(/\S+) \(0x[0-9a-f]+\)$")


def parse_ldd(output: str) -> tuple[set[str], set[str]]:
    """(real paths of the resolved objects, names not found) from ldd's output."""
    found: set[str] = set()
    missing: set[str] = set()
    for line in output.splitlines():
        m = _ARROW.match(line)
        if m:
            name, target = m.groups()
            if target == "not found":
                missing.add(name)
            elif target.startswith("/"):
                found.add(os.path.realpath(target))
            continue
        m = _LOADER.match(line)
        if m:
            found.add(os.path.realpath(m.group(1)))
    return found, missing


def dynamic_programs(resolver: ElfResolver) -> list[str]:
    """Every ELF file with a PT_INTERP in /usr/bin and /usr/sbin (real paths, once each)."""
    seen: set[str] = set()
    out: list[str] = []
    for directory in ("/usr/bin", "/usr/sbin"):
        for name in sorted(os.listdir(directory)):
            real = os.path.realpath(os.path.join(directory, name))
            if real in seen or not os.path.isfile(real):
                continue
            seen.add(real)
            try:
                info = resolver.info(real)
            except Exception:
                continue
            if info is not None and info.interp is not None:
                out.append(real)
    return out


def test_resolver_agrees_with_ldd_on_usr_bin_and_sbin() -> None:
    if os.environ.get("LD_LIBRARY_PATH") or os.environ.get("LD_PRELOAD"):
        pytest.skip("ldd would follow LD_LIBRARY_PATH/LD_PRELOAD, which the resolver ignores")
    resolver = ElfResolver()
    programs = dynamic_programs(resolver)
    assert len(programs) > 100, "expected the hundreds of programs of a Debian system"

    def ldd(path: str) -> tuple[str, str]:
        return path, run(["ldd", path], check=False).stdout

    with ThreadPoolExecutor(max_workers=2) as pool:
        outputs = dict(pool.map(ldd, programs))

    differences: list[str] = []
    for program in programs:
        ldd_found, ldd_missing = parse_ldd(outputs[program])
        paths, missing = resolver.libraries_of(program)
        ours = {resolver.paths.realpath(p) or p for p in paths}
        our_missing = {name for _, name in missing}
        if ours != ldd_found or our_missing != ldd_missing:
            differences.append(
                f"{program}: only resolver {sorted(ours - ldd_found)}, "
                f"only ldd {sorted(ldd_found - ours)}, "
                f"missing resolver {sorted(our_missing)} vs ldd {sorted(ldd_missing)}"
            )
    assert not differences, f"{len(differences)} of {len(programs)} differ:\n" + "\n".join(
        differences
    )
