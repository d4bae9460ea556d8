"""How many CPU cores other processes keep busy right now.

The thread choices (trainer, evaluation, embedded teacher) used the 1-minute load
average. Inside `ktools run` that figure mostly measures the pipeline itself: after
step 03's teacher or step 05's training kept both cores busy for minutes, the load
average is ~2 for another minute or more, so the next step saw a "busy" machine and
ran single-threaded (the demo's training and step-06 evaluation both ran with 1 thread
on an otherwise idle machine; 2 threads decoded 1.5x faster there). A short sample of
/proc/stat while this process waits counts only the work that is running now.

Other people's jobs are bursty, though: a 1 s sample taken between two of their test
runs read "idle" at load average 4.4, and step 01 then decoded with 2 oversubscribed
threads at a third of its usual speed. So the load average still counts, minus what
the pipeline itself can have left in it: our steps use at most every core, so anything
above `cores` in the 1-minute load average is somebody else's. The estimate is the
larger of the two.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (idle=3, iowait=4 are not busy)


def cpu_times() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat; None where it is missing."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[i] for i in _BUSY_FIELDS if i < len(fields))
    return busy, sum(fields[:8])


def sampled_busy_cores(sample_seconds: float = 2.0) -> float | None:
    """Cores busy during a short sample (this process only sleeps meanwhile); None without /proc/stat."""
    before = cpu_times()
    if before is None:
        return None
    time.sleep(sample_seconds)
    after = cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def busy_cores(sample_seconds: float = 2.0) -> float:
    """Cores other work keeps busy: max(now, 1-minute load average - cores) (see the module docstring)."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    sampled = sampled_busy_cores(sample_seconds)
    if sampled is None:
        return load
    return max(sampled, load - cores)


@dataclass(frozen=True)
class CpuUse:
    cores: int
    busy: float  # cores kept busy by other work right now

    @property
    def oversubscribed(self) -> bool:
        """Half the cores or more already busy: then torch's intra-op threads wait on each
        other at every operator, and fewer threads are faster (the rule the trainer, the
        evaluation and the embedded teacher share; their modules give the measurements)."""
        return self.busy >= self.cores / 2

    @property
    def threads(self) -> int:
        """The one thread rule of ktools (trainer, evaluation, embedded teacher): all cores when
        other work leaves at least half of them free, else half of them (at least 1)."""
        return max(1, self.cores // 2) if self.oversubscribed else self.cores


def cpu_use(sample_seconds: float = 1.0) -> CpuUse:
    return CpuUse(os.cpu_count() or 1, busy_cores(sample_seconds))


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class ThreadGovernor:
    """Call `poll()` between steps (decode or training); it returns a new thread count when one
    is due, at most `most`.

    Why not once at start-up: the embedded teacher's count used to be chosen from a moment's
    CPU use when the server started. A machine busy for that moment (a package install in
    another terminal) kept the teacher on one of two cores for the whole run, and one started
    on an idle machine kept two oversubscribed threads when other work arrived later; step
    05's training the same (run f3). Torch's and ggml's worker threads wait on each other at
    every operator, so a thread that loses its core stalls all of them (numbers in
    `llm.local.server.default_threads`). Every `interval` seconds the governor samples what
    other work keeps busy now (all processes' CPU time from /proc/stat less this process's
    own, os.times) and applies the one thread rule, `CpuUse.threads`. A new count is taken
    only when two samples in a row agree, so one burst does not flip it back and forth."""

    def __init__(self, initial: int, *, fixed: bool = False, interval: float = 5.0, cores: int | None = None,
                 most: int | None = None,
                 system: Callable[[], tuple[float, float] | None] = cpu_times,
                 own: Callable[[], float] = _own_cpu_seconds, clock: Callable[[], float] = time.monotonic):
        self.threads = initial
        self.fixed = fixed  # `--threads N` given: never change it
        self.interval = interval
        self.cores = cores or os.cpu_count() or 1
        self.most = most or self.cores
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
        wanted = min(self.most, CpuUse(self.cores, self.others_busy).threads)
        if wanted == self.threads:
            self._pending = None
            return None
        if self._pending != wanted:  # wait for a second sample that agrees
            self._pending = wanted
            return None
        log.info("other work keeps %.1f of %d cores busy: %d thread(s) instead of %d",
                 self.others_busy, self.cores, wanted, self.threads)
        self.threads, self._pending = wanted, None
        self.changes += 1
        return wanted
