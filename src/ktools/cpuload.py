"""How many CPU cores other processes keep busy right now.

The thread choices (trainer, evaluation, embedded teacher) used the 1-minute load
average. Inside `ktools run` that figure mostly measures the pipeline itself: after
step 03's teacher or step 05's training kept both cores busy for minutes, the load
average is ~2 for another minute or more, so the next step saw a "busy" machine and
ran single-threaded (the demo's training and step-06 evaluation both ran with 1 thread
on an otherwise idle machine; 2 threads decoded 1.5x faster there). A short sample of
/proc/stat while this process waits counts only the work that is running now.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (idle=3, iowait=4 are not busy)


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[i] for i in _BUSY_FIELDS if i < len(fields))
    return busy, sum(fields[:8])


def busy_cores(sample_seconds: float = 1.0) -> float:
    """Cores busy with other work during a short sample (this process only sleeps meanwhile).

    Falls back to the 1-minute load average where /proc/stat does not exist."""
    before = _cpu_times()
    if before is None:
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    time.sleep(sample_seconds)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


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


def cpu_use(sample_seconds: float = 1.0) -> CpuUse:
    return CpuUse(os.cpu_count() or 1, busy_cores(sample_seconds))
