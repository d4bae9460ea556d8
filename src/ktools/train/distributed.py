"""What a training process needs to know about its peers (one of `torchrun`'s workers, or
the only process): rank, world size, and the few collective steps `train()` takes.

In the single-process case every method is a no-op, so `train()` reads the same either way.
`trainer_arguments` gives the `TrainingArguments` a worker of each strategy adds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DistContext:
    strategy: str = "single"   # single | ddp | fsdp
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls, strategy: str, environ: Mapping[str, str] | None = None) -> DistContext:
        """From the variables torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE)."""
        env = os.environ if environ is None else environ
        if strategy == "single":
            return cls()
        return cls(strategy, int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)),
                   int(env.get("WORLD_SIZE", 1)))

    @property
    def enabled(self) -> bool:
        return self.strategy != "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def model_device(self, cuda: bool) -> str | None:
        """Where to load the model: FSDP loads on the CPU and shards onto the GPUs itself (the
        whole model may not fit one); DDP puts a full copy on this worker's GPU."""
        if not self.enabled:
            return None
        if self.strategy == "fsdp":
            return "cpu"
        return f"cuda:{self.local_rank}" if cuda else "cpu"

    def init(self, cuda: bool) -> None:
        """Join the process group (before the Trainer, so ranks can agree on the plan first)."""
        if not self.enabled:
            return
        import torch
        import torch.distributed as dist

        if cuda:
            torch.cuda.set_device(self.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def _all_reduce(self, value: float, op_name: str) -> float:
        import torch
        import torch.distributed as dist

        device = f"cuda:{self.local_rank}" if dist.get_backend() == "nccl" else "cpu"
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op_name))
        return float(tensor.item())

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on one (e.g. the time limit: all stop at the same step)."""
        return bool(self._all_reduce(float(flag), "MAX")) if self.enabled else flag

    def sum(self, value: int) -> int:
        return int(self._all_reduce(float(value), "SUM")) if self.enabled else value

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def trainer_arguments(strategy: str, *, cuda: bool, layer_classes: Sequence[str] = ()) -> dict[str, Any]:
    """Extra `TrainingArguments` for a worker of `strategy` ("single": none)."""
    if strategy == "single":
        return {}
    args: dict[str, Any] = {
        "ddp_backend": "nccl" if cuda else "gloo",
        # Every parameter gets a gradient in a causal LM (LoRA: every adapter), so DDP
        # need not search the graph for unused ones at each step.
        "ddp_find_unused_parameters": False,
    }
    if strategy == "fsdp":
        config: dict[str, Any] = {
            "transformer_layer_cls_to_wrap": list(layer_classes),  # one FSDP unit per decoder layer
            "use_orig_params": True,
            "sync_module_states": True,
            "state_dict_type": "FULL_STATE_DICT",  # the final save is one ordinary HF checkpoint
        }
        if transformers_major() >= 5:  # the string form is deprecated there
            args["fsdp"] = True
            args["fsdp_config"] = {**config, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                   "reshard_after_forward": True}  # = full_shard
        else:
            args["fsdp"] = "full_shard auto_wrap"
            args["fsdp_config"] = config
    return args


def transformers_major() -> int:
    from importlib.metadata import version

    return int(version("transformers").split(".")[0])
