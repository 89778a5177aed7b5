"""Run `mkmedia` with the layout capture limited to one mounted file system, so a test's
`mkmedia mkbackup` backs up a small system of its own and not this machine's root:

    python -m tests.capture_root ROOT DEVICE COMMAND [ARGS...]

ROOT is where the small system is mounted, DEVICE its block device (a loop device). Only the
capture's scope changes; the workflow, its steps and the media are the product's own.
"""

from __future__ import annotations

import functools
import sys

from mkmedia.cli import main
from rescue_runtime.layout import capture

if __name__ == "__main__":
    root, device, *argv = sys.argv[1:]
    capture.capture = functools.partial(capture.capture, root, devices=[device])
    raise SystemExit(main(argv))
