"""The scheduler of tests/parallel.py's units (imports xdist: loaded only when xdist runs).

xdist's scope scheduling, with the scopes read from the workers' unit maps instead of from
the node ids, units handed out in the workers' order (costliest first), and its look-ahead
changed: a worker runs a test only once the next one is queued, so when a worker is down to
its last queued test it gets the next unit. If that last test is long, the unit will only start
after it: it gets a short unit then (if one is left), and the costly ones wait for the first
free worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xdist.scheduler.loadscope import LoadScopeScheduling
from xdist.workermanage import WorkerController

from tests.parallel import LONG, read_units


class UnitScheduling(LoadScopeScheduling):
    def __init__(self, config: Any, log: Any, units_dir: Path) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False  # the workers' order is the one to keep
        self._units_dir = units_dir
        self._units: dict[str, tuple[str, float]] = {}

    def schedule(self) -> None:
        if not self._units:  # every worker has written its map before reporting its collection
            self._units = read_units(self._units_dir)
        super().schedule()

    def _split_scope(self, nodeid: str) -> str:
        known = self._units.get(nodeid)
        return known[0] if known else nodeid.split("::", 1)[0]

    def _reschedule(self, node: WorkerController) -> None:
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        pending = [
            nodeid
            for unit in self.assigned_work[node].values()
            for nodeid, done in unit.items()
            if not done
        ]
        if len(pending) > 1:
            return
        # A short unit after a long test (if there is one left): the long units wait for
        # whichever worker is free first. Otherwise the costliest.
        long_last = bool(pending) and self._cost([pending[0]]) >= LONG
        cheapest = next(reversed(self.workqueue.values()))
        self._assign(node, cheapest=long_last and self._cost(cheapest) < LONG)

    def _cost(self, nodeids: Iterable[str]) -> float:
        return sum(self._units.get(nodeid, ("", 0.0))[1] for nodeid in nodeids)

    def _assign(self, node: WorkerController, *, cheapest: bool) -> None:
        scope, work_unit = self.workqueue.popitem(last=cheapest)
        self.assigned_work.setdefault(node, {})[scope] = work_unit
        collection = self.registered_collections[node]
        node.send_runtest_some(
            [collection.index(nodeid) for nodeid, done in work_unit.items() if not done]
        )
