"""/init of the rescue system (PID 1): bring the system up, then keep shells on the consoles.

The boot steps run on the shared engine (rescue_runtime.workflow) as a `keep_going`
workflow: every step is guarded, a failure prints what failed on every console and the boot
goes on, so the rescue system never hangs without a prompt. Step results are recorded in
/run/mkmedia/init.status (one JSON object a line) for people and tests to read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rescue_runtime import features, rescueconf
from rescue_runtime import workflow as engine
from rescue_runtime.init import cmdline, consoles, network, sshd, system
from rescue_runtime.run import SYSTEM_PATH, run

log = logging.getLogger("mkmedia.init")

STATUS = Path("/run/mkmedia/init.status")
PATH = ":".join(SYSTEM_PATH)


class Boot:
    def __init__(self, devices: list[str]) -> None:
        self.devices = devices
        self.failures: list[str] = []

    def say(self, text: str) -> None:
        consoles.write_to_consoles(self.devices, text + "\n")

    def finished(
        self, step: BootStep, result: object, error: Exception | None, seconds: float
    ) -> None:
        """The engine's on_step: say on every console how the step ended, and record it."""
        name = step.name
        if error is None:
            message = "" if result is None else str(result)
            self.record(name, True, message, seconds)
            self.say(f"mkmedia init: {name}: {message or 'ok'}")
            return
        message = f"{type(error).__name__}: {error}"
        self.failures.append(name)
        self.say(f"mkmedia init: {name} FAILED: {message}")
        log.error("step %s failed", name, exc_info=error)
        self.record(name, False, message, seconds)

    def run_steps(self, ctx: BootContext, steps: list[BootStep] | None = None) -> None:
        """Run the boot steps (BOOT_STEPS unless given) that apply to these boot options."""
        planned = engine.plan(BOOT, BOOT_STEPS if steps is None else steps, ctx.options)
        engine.run_plan(
            BOOT, planned, ctx, hooks_dir=None, env=os.environ, say=log.info, on_step=self.finished
        )

    def record(
        self, name: str, ok: bool, message: str, seconds: float = 0.0, **extra: object
    ) -> None:
        entry = {"step": name, "ok": ok, "message": message, "seconds": round(seconds, 3), **extra}
        try:
            with STATUS.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")
        except OSError:
            pass

    def not_available(self, name: str, what: str, feature: features.Feature, outcome: str) -> None:
        """A kernel option asked for what this version cannot do: say so, record it, go on."""
        message = (
            f"{what} is not available in this version (mkmedia {feature.name} is not "
            f"implemented yet); {outcome}"
        )
        self.say(f"mkmedia init: {message}")
        self.record(name, False, message, available=False)


@dataclass(frozen=True)
class BootContext:
    """What the boot steps share: the rescue configuration and the kernel options."""

    config: rescueconf.RescueConfig
    options: cmdline.BootOptions


BootStep = engine.Step[BootContext, cmdline.BootOptions]
BOOT = engine.Workflow("init", "bring the rescue system up", ("boot",), keep_going=True)


def setup_logging(debug: bool) -> None:
    Path("/run/mkmedia").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler("/run/mkmedia/init.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("mkmedia")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)


def network_step(config: rescueconf.RescueConfig, options: cmdline.BootOptions) -> str:
    if options.ip:
        configured = []
        for value in options.ip:
            configured += network.configure_ip_option(value)
    elif config.network == "none":
        return "off (NETWORK=none)"
    elif config.network == "saved":
        configured = network.configure_saved(config.saved_interfaces)
    else:
        configured = network.configure_dhcp()
    network.write_resolv_conf(config.nameservers)
    return ", ".join(configured) if configured else "no interface configured"


def udev_step() -> str:
    if system.start_udev():
        return "systemd-udevd started"
    system.load_hardware_drivers()  # no udev: load drivers by the hardware's modaliases
    return "no udevd: drivers loaded by modalias"


def recover_unattended(boot: Boot, config: rescueconf.RescueConfig) -> None:
    console = boot.devices[-1]
    boot.say("mkmedia init: unattended recovery starting")
    fd = os.open(console, os.O_RDWR | os.O_NOCTTY)
    try:
        result = run_recover(fd)
    finally:
        os.close(fd)
    if result != 0:
        from rescue_runtime.recover.workflow import last_outcome

        reason = last_outcome() or "see the messages above"
        boot.say(
            f"mkmedia init: unattended recovery FAILED (exit status {result}): {reason}\n"
            "Nothing is rebooted. The shell below has the log in /var/log/mkmedia/."
        )
        return
    action = config.unattended_action
    boot.say(f"mkmedia init: unattended recovery finished; {action}")
    if action in ("reboot", "poweroff"):
        power(action)


def run_recover(fd: int) -> int:
    from rescue_runtime.run import spawn

    proc = spawn(
        [sys.executable, "-m", "rescue_runtime", "recover", "--unattended"],
        stdin=fd,
        stdout=fd,
        stderr=fd,
    )
    return proc.wait()


def update_option(boot: Boot, url: str) -> None:
    """mkmedia.update=URL in a version without updates: say so (else the update step runs)."""
    if not features.UPDATE.ready:
        boot.not_available("update", f"mkmedia.update={url}", features.UPDATE, "nothing applied")


def unattended_option(boot: Boot, config: rescueconf.RescueConfig) -> None:
    """The `unattended` option: recover without questions, or say this version cannot."""
    if not features.RECOVER.ready:
        # nothing to run: say so and leave the shell to the operator
        outcome = "nothing was run, the shell is ready"
        boot.not_available("unattended", "unattended recovery", features.RECOVER, outcome)
        return
    recover_unattended(boot, config)


def power(action: str) -> None:
    """Reboot or power off through sysrq: no init system to ask in the rescue system."""
    os.sync()
    try:
        trigger = Path("/proc/sysrq-trigger")
        trigger.write_text("s")
        trigger.write_text("u")
        trigger.write_text("b" if action == "reboot" else "o")
    except OSError as exc:
        log.error("cannot %s: %s", action, exc)


def main() -> None:
    os.environ.update({"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8"})
    os.chdir("/")
    early_error = ""
    try:
        system.mount_pseudo_filesystems()
    except Exception as exc:
        early_error = f"mkmedia init: mounting the pseudo file systems FAILED: {exc}"
    try:
        options = cmdline.parse(Path("/proc/cmdline").read_text())
    except OSError:
        options = cmdline.BootOptions()
    devices = cmdline.console_devices(options.consoles)
    boot = Boot(devices)
    if early_error:
        boot.say(early_error)
    with contextlib.suppress(OSError):
        setup_logging(options.debug)
    config = rescueconf.load()
    if options.shell:
        boot.say(consoles.banner(config))
        boot.say("mkmedia init: mkmedia.shell given: stopped before anything ran")
        consoles.supervise_shells(devices, config.hostname)
        return
    boot.run_steps(BootContext(config, options))
    if options.update_url:
        update_option(boot, options.update_url)
        updated = rescueconf.load()  # the update may have changed it: the banner shows it
        if updated.hostname != config.hostname:
            with contextlib.suppress(OSError):
                system.set_hostname(updated.hostname)  # ${HOSTNAME} is the machine's new name
        config = updated
    boot.say(consoles.banner(config))
    if boot.failures:
        boot.say("mkmedia init: these steps failed: " + ", ".join(boot.failures))
    if options.unattended:
        unattended_option(boot, config)
    consoles.supervise_shells(devices, config.hostname)


def _hostname(name: str) -> str:
    system.set_hostname(name)
    return name


def _load_recipe_modules(config: rescueconf.RescueConfig) -> str:
    failed = system.load_modules(config.modules_load)
    loaded = len(config.modules_load) - len(failed)
    if failed:
        return f"{loaded} loaded; not available: {', '.join(failed)}"
    return f"{loaded} loaded"


def _update(url: str) -> str:
    result = run([sys.executable, "-m", "rescue_runtime", "update", url], check=False)
    if not result.ok:
        raise RuntimeError(f"mkmedia update {url} failed: {result.stderr.strip()[-300:]}")
    lines = result.stdout.strip().splitlines()
    return lines[0] if lines else f"applied {url}"


def _update_wanted(options: cmdline.BootOptions) -> bool:
    return bool(options.update_url) and features.UPDATE.ready


# The boot steps, in order; the names are init.status's "step" values. The lambdas look the
# functions up when they run, so a test may replace one.
BOOT_STEPS: list[BootStep] = [
    engine.Step(
        "boot", 100, "kernel messages", lambda c: system.quiet_kernel_console(c.options.debug)
    ),
    engine.Step("boot", 200, "hostname", lambda c: _hostname(c.config.hostname)),
    engine.Step("boot", 300, "kernel modules", lambda c: _load_recipe_modules(c.config)),
    engine.Step("boot", 400, "udev", lambda c: udev_step()),
    engine.Step("boot", 500, "network", lambda c: network_step(c.config, c.options)),
    engine.Step("boot", 600, "sshd", lambda c: sshd.start_sshd(c.config)),
    engine.Step("boot", 700, "update", lambda c: _update(c.options.update_url), _update_wanted),
]


def entry() -> None:
    """Never return: PID 1 exiting panics the kernel. Fall back to a plain shell."""
    try:
        main()
    except BaseException as exc:
        print(f"mkmedia init: FAILED ({exc}); starting an emergency shell", flush=True)
    while True:
        try:
            os.execv("/bin/sh", ["/bin/sh"])
        except OSError:
            time.sleep(10)
