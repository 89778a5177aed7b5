"""Files that make a tree a mkmedia rescue system: /init, rescue.json, the shell profile."""

from __future__ import annotations

import time
from pathlib import Path

from rescue_runtime.rescueconf import RescueConfig
from rescue_runtime.run import SYSTEM_PATH

INIT_SCRIPT = """\
#!/usr/bin/python3 -I
# The rescue system's PID 1: see rescue_runtime/init/boot.py.
from rescue_runtime.init.boot import entry

entry()
"""

PROFILE = r"""# mkmedia rescue system
export PATH=@PATH@
export PS1='RESCUE \h:\w # '
export HISTFILE=/root/.bash_history
alias ll='ls -l'
# no init system to ask: reboot and power off through sysrq, after a sync
sysrq() { sync; for key in s u "$1"; do echo "$key" > /proc/sysrq-trigger; done; }
reboot() { sysrq b; }
poweroff() { sysrq o; }
""".replace("@PATH@", ":".join(SYSTEM_PATH))


def build_time(source_date_epoch: int | None) -> str:
    stamp = source_date_epoch if source_date_epoch is not None else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def write_rescue_files(tree: Path, rescue: RescueConfig) -> None:
    init = tree / "init"
    init.write_text(INIT_SCRIPT)
    init.chmod(0o755)
    conf = tree / "etc/mkmedia/rescue.json"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(rescue.to_json())
    (tree / "etc/profile").write_text(PROFILE)
    bashrc = tree / "root/.bashrc"
    bashrc.parent.mkdir(parents=True, exist_ok=True)
    bashrc.write_text(". /etc/profile\n")
    (tree / "etc/hostname").write_text(rescue.hostname + "\n")
