"""The embedded teacher's decode thread count, re-chosen while it runs.

Why not once at start-up: the choice used to be made from a moment's CPU use when the
server started. A machine that was busy for that moment (a package install in another
terminal) kept the teacher on one of two cores for the whole run, and a teacher started
on an idle machine kept two oversubscribed threads when other work arrived later. Both
torch's and ggml's worker threads wait on each other at every operator, so a thread
that loses its core to another process stalls all of them (see `server.default_threads`
for the numbers measured here).

`ThreadGovernor` (in ktools.cpuload, since step 05's training follows it too) samples the
machine every `interval` seconds between decode steps: the CPU time of all processes
(`ktools.cpuload.cpu_times`, /proc/stat) less this process's own (os.times), i.e. what
other work keeps busy now, and applies the one thread rule of
ktools (`ktools.cpuload.CpuUse.threads`, shared with the start-up choice and the
trainer). A new count is taken only when two samples in a row agree, so one burst does
not flip it back and forth.
"""

from __future__ import annotations

from ktools.cpuload import CpuUse, ThreadGovernor

__all__ = ["ThreadGovernor", "threads_for"]


def threads_for(use: CpuUse) -> int:
    """All cores when the others leave at least half of them free, else half (at least 1)."""
    return use.threads
