"""Run inside a rescue system: back up one mounted tree through a NETFS URL, as mkbackuponly
does (the layout captured from the tree's device, the URL mounted by its scheme, volumes and
manifest written, the backup renamed into place on the share). Standard library and
rescue_runtime only: the rescue system has nothing else.

    python3 netfs_writer.py ROOT DEVICE URL OPTIONS HOSTNAME

Prints the closing line ("Backed up N files, ... to URL").
"""

from __future__ import annotations

import sys
from pathlib import Path

from rescue_runtime.backup.netfs import Netfs, closing_line
from rescue_runtime.backup.sources import plan_backup
from rescue_runtime.layout.capture import capture


def main(argv: list[str]) -> int:
    root, device, url, options, hostname = argv
    plan = plan_backup(capture(root, devices=[device]))
    work = Path("/run/netfs-writer")
    work.mkdir(exist_ok=True)
    with Netfs.target(url, hostname, options=options, work_dir=work) as directory:
        manifest = Netfs.backup(plan, directory, url=url, layout_sha256=None)
    print(closing_line(manifest), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
