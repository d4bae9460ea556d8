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
"""

from __future__ import annotations

import logging

from ktools.config import setting
from ktools.cpuload import cpu_use

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
