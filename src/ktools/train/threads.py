"""How many CPU threads torch should use.

On a CPU shared with other busy processes, two OpenMP threads that wait for each other
at every operator are far slower than one: measured here under load (load average ~5 on
2 cores), greedy decoding ran at 12.6 tokens/s with 1 thread and 2.5 tokens/s with 2.
A run started at load 1.9 with 2 threads was as slow again. The rule is the one the
embedded teacher uses too (`ktools.cpuload.CpuUse.threads`): half the cores (1 on
2 cores) as soon as other work keeps half of them busy, else all of them, and never
more than torch's default (physical cores). "Busy" is `ktools.cpuload.busy_cores`: the work running now
(a 2 s sample) or the load average beyond what the pipeline's own previous step can
have left in it, whichever is larger.
`KTOOLS_TORCH_THREADS` overrides the choice.

Training re-chooses it between steps (`FollowTheMachine`, the embedded teacher's
`ThreadGovernor`): a check of the re-plan with a one-core busy loop during the first
2.5 minutes chose 1 thread at the start and kept it for all 6 minutes, the steps taking
~31 s after the loop had stopped, against 12-14 s with 2 threads.
"""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback

from ktools.config import setting
from ktools.cpuload import ThreadGovernor, cpu_use

log = logging.getLogger(__name__)


def choose_torch_threads() -> int:
    """Set and return torch's intra-op thread count (see the module docstring)."""
    import torch

    configured = setting("torch_threads")  # KTOOLS_TORCH_THREADS, declared in ktools.config (empty/0: choose)
    if configured:
        threads = configured
    elif torch.cuda.is_available():
        return torch.get_num_threads()
    else:
        use = cpu_use()
        threads = min(use.threads, torch.get_num_threads())
        if threads < torch.get_num_threads():
            log.info("the CPU is busy (%.1f of %d cores in use): torch uses %d thread(s), which is faster then",
                     use.busy, use.cores, threads)
    torch.set_num_threads(threads)
    return threads


def thread_governor(threads: int, most: int) -> ThreadGovernor:
    """A governor that starts at `threads` and never goes beyond `most` (torch's count before
    `choose_torch_threads`: physical cores); fixed when KTOOLS_TORCH_THREADS is set."""
    return ThreadGovernor(threads, fixed=bool(setting("torch_threads")), most=most)


class FollowTheMachine(TrainerCallback):
    """Re-chooses torch's thread count before each training step when the machine's load
    changed (two samples that agree, at least 5 s apart); `changes` lists each move."""

    def __init__(self, governor: ThreadGovernor):
        self.governor = governor
        self.changes: list[dict[str, Any]] = []

    def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        import torch

        threads = self.governor.poll()
        if threads is not None:
            torch.set_num_threads(threads)
            self.changes.append({"at_step": state.global_step, "threads": threads,
                                 "others_busy": round(self.governor.others_busy or 0.0, 2)})
        return control
