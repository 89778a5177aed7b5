"""Which files a set of programs and libraries needs to run, answered as glibc's loader would.

- reader.py: what the loader reads from one ELF file (a `struct` reader, no parsing library).
- searchpath.py: where the loader looks: RPATH/RUNPATH, ld.so.conf, default directories, hwcaps.
- scripts.py: shebang scripts and `#!/usr/bin/env NAME`.
- resolver.py: `ElfResolver`, which simulates the loader per program and closes over it all.

Paths are absolute paths inside a root (the host, or a rescue tree): mkmedia.rootpaths.
"""
