"""Assemble the rescue root file system tree.

- `assemble_tree()` (assemble.py): the whole build of a tree from the recipe's lists.
- `TreeCopier` (copy.py): copy paths with their symlink chains and metadata.
- `find_programs()` (programs.py): PROGS / REQUIRED_PROGS lookup.
- `copy_as_is()` (copy_as_is.py): COPY_AS_IS with EXCLUDE.
- skeleton.py: directories, accounts, os-release, ld.so.conf and ldconfig.
- `check_tree()` / `problems_to_errors()` (check.py): the self-sufficiency check.
- `smoke_run()` (smoke.py): commands run in `chroot TREE`.
- `size_report()` (size.py): the tree's size by part.
- `write_rescue_files()` (rescuefiles.py): /init, rescue.json and the shell profile.
"""

from mkmedia.rootfs.assemble import AssemblyResult, assemble_tree
from mkmedia.rootfs.check import TreeProblem, check_tree, problems_to_errors
from mkmedia.rootfs.copy import TreeCopier
from mkmedia.rootfs.copy_as_is import CopyAsIsResult, copy_as_is
from mkmedia.rootfs.programs import ProgramLookup, find_programs
from mkmedia.rootfs.size import SizeReport, size_report
from mkmedia.rootfs.smoke import SmokeResult, failures, smoke_run

__all__ = [
    "AssemblyResult",
    "CopyAsIsResult",
    "ProgramLookup",
    "SizeReport",
    "SmokeResult",
    "TreeCopier",
    "TreeProblem",
    "assemble_tree",
    "check_tree",
    "copy_as_is",
    "failures",
    "find_programs",
    "problems_to_errors",
    "size_report",
    "smoke_run",
]
