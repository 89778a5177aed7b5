"""`mkmedia recover` as a workflow on the engine: verify, recreate, restore, finalize.

Its stages are there for `--simulate` and for the hooks the admin prepares; their steps come
with the recover issue (the modules beside this one). Until features.RECOVER is ready, running
it refuses before any disk is touched.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from rescue_runtime import features, rescueconf
from rescue_runtime import workflow as engine
from rescue_runtime.errors import EXIT_OK, MkmediaError

RECOVER = engine.Workflow(
    "recover",
    "recreate the disk layout, restore the backup, reinstall the boot loader",
    ("verify", "recreate", "restore", "finalize"),
)


@dataclass
class RecoverContext:
    unattended: bool


STEPS: list[engine.Step[RecoverContext, None]] = []  # none in this version


def cmd_recover(args: argparse.Namespace) -> int:
    if getattr(args, "demo", None):
        from rescue_runtime.recover.demo import cmd_demo

        return cmd_demo(args)
    planned = engine.plan(RECOVER, STEPS, None)
    if args.simulate:
        print(
            engine.describe_plan(
                RECOVER,
                planned,
                rescueconf.HOOKS_DIR,
                no_steps="(no step in this version: recover is not implemented yet)",
            )
        )
        return EXIT_OK
    if not features.RECOVER.ready:
        mode = "unattended" if args.unattended else "interactive"
        raise MkmediaError(
            f"{features.RECOVER.missing} (asked for an {mode} recovery); no disk was touched.",
            hint="Use the shell to repair the machine by hand.",
        )
    engine.run_plan(
        RECOVER, planned, RecoverContext(args.unattended), hooks_dir=rescueconf.HOOKS_DIR, env={}
    )
    return EXIT_OK
