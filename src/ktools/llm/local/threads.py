"""The embedded teacher's decode thread count, re-chosen while it runs.

Why not once at start-up: the choice used to be made from a moment's CPU use when the
server started. A machine that was busy for that moment (a package install in another
terminal) kept the teacher on one of two cores for the whole run, and a teacher started
on an idle machine kept two oversubscribed threads when other work arrived later. Both
torch's and ggml's worker threads wait on each other at every operator, so a thread
that loses its core to another process stalls all of them (see `server.default_threads`
for the numbers measured here).

`ThreadGovernor` samples the machine every `interval` seconds between decode steps: the
CPU time of all processes (`ktools.cpuload.cpu_times`, /proc/stat) less this process's
own (os.times), i.e. what other work keeps busy now, and applies the one thread rule of
ktools (`ktools.cpuload.CpuUse.threads`, shared with the start-up choice and the
trainer). A new count is taken only when two samples in a row agree, so one burst does
not flip it back and forth.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from ktools.cpuload import CpuUse, cpu_times

log = logging.getLogger(__name__)


def threads_for(use: CpuUse) -> int:
    """All cores when the others leave at least half of them free, else half (at least 1)."""
    return use.threads


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class ThreadGovernor:
    """Call `poll()` between decode steps; it returns a new thread count when one is due."""

    def __init__(self, initial: int, *, fixed: bool = False, interval: float = 5.0, cores: int | None = None,
                 system: Callable[[], tuple[float, float] | None] = cpu_times,
                 own: Callable[[], float] = _own_cpu_seconds, clock: Callable[[], float] = time.monotonic):
        self.threads = initial
        self.fixed = fixed  # `--threads N` given: never change it
        self.interval = interval
        self.cores = cores or os.cpu_count() or 1
        self.changes = 0
        self.others_busy: float | None = None  # cores other work kept busy in the last sample
        self._system, self._own, self._clock = system, own, clock
        self._last = (self._clock(), self._system(), self._own())
        self._pending: int | None = None

    def poll(self) -> int | None:
        if self.fixed:
            return None
        now = self._clock()
        then, system_then, own_then = self._last
        if now - then < self.interval:
            return None
        system_now, own_now = self._system(), self._own()
        self._last = (now, system_now, own_now)
        if system_now is None or system_then is None or system_now[1] <= system_then[1]:
            return None
        share = (system_now[0] - system_then[0]) / (system_now[1] - system_then[1])
        own_cores = (own_now - own_then) / (now - then)
        self.others_busy = max(0.0, share * self.cores - own_cores)
        wanted = threads_for(CpuUse(self.cores, self.others_busy))
        if wanted == self.threads:
            self._pending = None
            return None
        if self._pending != wanted:  # wait for a second sample that agrees
            self._pending = wanted
            return None
        log.info("other work keeps %.1f of %d cores busy: decoding with %d thread(s) instead of %d",
                 self.others_busy, self.cores, wanted, self.threads)
        self.threads, self._pending = wanted, None
        self.changes += 1
        return wanted
