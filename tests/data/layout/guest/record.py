"""Record every tool output, file and link that capture() reads, for replaying on the host.

Run inside the QEMU guest of tests/vm/test_layout_guest.py once its stacks are built and
mounted (see ../README.md): `python3 record.py replay.json`. The result answers capture's
probe calls in tests/unit/test_layout_guest_replay.py, so the parsers and capture are
tested on real device-mapper, MD and LUKS outputs without a guest.
"""

import json
import sys

from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.probe import SystemProbe


class RecordingProbe(SystemProbe):
    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []
        self.files: dict[str, str | None] = {}
        self.dirs: dict[str, dict[str, str]] = {}
        self.unreadable: dict[str, str] = {}

    def tool(self, argv, *, what, ok_codes=(0,)):  # type: ignore[no-untyped-def]
        out = super().tool(argv, what=what, ok_codes=ok_codes)
        self.calls.append({"argv": argv, "stdout": out})
        return out

    def read(self, path):  # type: ignore[no-untyped-def]
        self.files[path] = super().read(path)
        return self.files[path]

    def links(self, directory):  # type: ignore[no-untyped-def]
        self.dirs[directory] = super().links(directory)
        return self.dirs[directory]

    def cannot_open(self, device):  # type: ignore[no-untyped-def]
        problem = super().cannot_open(device)
        if problem is not None:
            self.unreadable[device] = problem
        return problem


probe = RecordingProbe()
capture("/", probe=probe)
with open(sys.argv[1], "w") as f:
    record = {
        "calls": probe.calls,
        "files": probe.files,
        "links": probe.dirs,
        "unreadable": probe.unreadable,
    }
    json.dump(record, f, indent=1, sort_keys=True)
    f.write("\n")
