"""One process or several: how step 05 trains on the GPUs that are there.

- 0 or 1 GPU (this CPU machine included): `train()` runs in this process, unchanged.
- 2+ GPUs: `torchrun` starts one worker process per GPU
  (`python -m torch.distributed.run --standalone --nproc_per_node N -m ktools.train.worker
  --config <json> --strategy ddp|fsdp`), each training on its share of the batches.
  - **ddp** (default): every GPU holds the whole model; gradients are averaged.
  - **fsdp**: weights, gradients and optimizer state are sharded across the GPUs (for a
    model that does not fit one GPU). `auto` picks it when the training memory estimate
    (parameters x 4 bytes x 4: weights, gradients, two Adam moments) exceeds one GPU's memory.

The decision and the command line are pure functions of the GPU count and memory (given
as parameters in tests); `run_training()` is the one call the CLI and the notebook make.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.train.config import TrainConfig
from ktools.train.hardware import count_parameters, gpu_count, gpu_memory_bytes
from ktools.train.result import report_dir

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "ddp", "fsdp")
WORKER_MODULE = "ktools.train.worker"
# fp32 weights + gradients + Adam's two moments; activations come on top.
FULL_TRAINING_BYTES_PER_PARAM = 4 * 4
# LoRA: the frozen fp32 weights dominate; adapters, their gradients and moments are small.
LORA_TRAINING_BYTES_PER_PARAM = 4 * 1.2
# Leave room for activations, the CUDA context and fragmentation.
USABLE_GPU_FRACTION = 0.8
LAUNCH_CONFIG_FILE = "launch_config.json"
STRATEGY_ENV = "KTOOLS_TRAIN_STRATEGY"


@dataclass(frozen=True)
class LaunchPlan:
    """How to run: `strategy` is "single" (in this process), "ddp" or "fsdp"."""

    strategy: str
    nproc: int
    reason: str
    estimated_bytes: int | None = None
    gpu_memory_bytes: int | None = None
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def in_process(self) -> bool:
        return self.strategy == "single"


def training_memory_bytes(n_params: int, method: str) -> int:
    per_param = FULL_TRAINING_BYTES_PER_PARAM if method == "full" else LORA_TRAINING_BYTES_PER_PARAM
    return int(n_params * per_param)


def choose_strategy(requested: str, n_gpus: int, estimated_bytes: int | None,
                    gpu_bytes: int | None) -> tuple[str, str]:
    """(strategy, reason): "single" below 2 GPUs whatever was asked, else ddp or fsdp."""
    if requested not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {requested!r}")
    if n_gpus < 2:
        where = "no GPU" if n_gpus == 0 else "one GPU"
        suffix = f" ({requested!r} needs 2+ GPUs)" if requested != "auto" else ""
        return "single", f"{where}: training in this process{suffix}"
    if requested != "auto":
        return requested, f"{n_gpus} GPUs, {requested} as requested"
    if estimated_bytes is None or gpu_bytes is None:
        return "ddp", f"{n_gpus} GPUs, model size unknown: ddp"
    budget = gpu_bytes * USABLE_GPU_FRACTION
    if estimated_bytes > budget:
        return "fsdp", (f"{n_gpus} GPUs; training needs ~{estimated_bytes / 2**30:.1f} GiB, more than "
                        f"{budget / 2**30:.1f} GiB usable on one GPU: fsdp")
    return "ddp", (f"{n_gpus} GPUs; training needs ~{estimated_bytes / 2**30:.1f} GiB, fits one GPU "
                   f"({budget / 2**30:.1f} GiB usable): ddp")


def torchrun_command(nproc: int, config_path: str | Path, strategy: str, *, python: str | None = None,
                     master_port: int | None = None) -> list[str]:
    """`python -m torch.distributed.run` (= `torchrun`, but surely the same environment's)."""
    command = [python or sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
               "--nproc_per_node", str(nproc)]
    if master_port is None:
        command.append("--standalone")  # a free local rendezvous port, so concurrent runs don't collide
    else:
        command += ["--master_addr", "127.0.0.1", "--master_port", str(master_port)]
    return command + ["-m", WORKER_MODULE, "--config", str(config_path), "--strategy", strategy]


def worker_env(nproc: int, strategy: str, base: Mapping[str, str] | None = None,
               cpu_count: int | None = None) -> dict[str, str]:
    """The workers' environment: the caller's, plus unbuffered output and a fair thread share."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the notebook as they are written
    env[STRATEGY_ENV] = strategy
    env.setdefault("OMP_NUM_THREADS", str(max(1, (cpu_count or os.cpu_count() or 1) // nproc)))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def plan_launch(config: TrainConfig, strategy: str = "auto", *, n_gpus: int | None = None,
                gpu_bytes: int | None = None, n_params: int | None = None,
                master_port: int | None = None, environ: Mapping[str, str] | None = None) -> LaunchPlan:
    """Decide how to train `config`; the GPU count, memory and parameter count are measured
    here unless given."""
    n_gpus = gpu_count() if n_gpus is None else n_gpus
    estimated = None
    if n_gpus >= 2 and strategy == "auto":
        if gpu_bytes is None:
            gpu_bytes = gpu_memory_bytes()
        if n_params is None:
            from ktools.models import resolve_model_path

            n_params = count_parameters(resolve_model_path(config.model_name))
        estimated = training_memory_bytes(n_params, config.method) if n_params else None
    chosen, reason = choose_strategy(strategy, n_gpus, estimated, gpu_bytes)
    if chosen == "single":
        return LaunchPlan("single", 1, reason, estimated, gpu_bytes)
    if chosen == "fsdp" and config.method == "lora":
        raise ValueError("fsdp with LoRA is not supported here (LoRA's frozen weights must fit one GPU "
                         "anyway): use strategy='ddp' or method='full'")
    command = torchrun_command(n_gpus, launch_config_path(config), chosen, master_port=master_port)
    return LaunchPlan(chosen, n_gpus, reason, estimated, gpu_bytes, tuple(command),
                      worker_env(n_gpus, chosen, environ))


def launch_config_path(config: TrainConfig) -> Path:
    """Beside the report, not among the checkpoints: rank 0 clears the checkpoint folder when
    a new run starts, possibly before another worker has read its config."""
    return report_dir(config) / LAUNCH_CONFIG_FILE


def stream_process(command: Sequence[str], env: Mapping[str, str], sink: Callable[[str], Any]) -> int:
    """Run `command`, handing its merged stdout/stderr to `sink` as it comes (progress bars'
    carriage returns included); the exit code."""
    with subprocess.Popen(list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          bufsize=0) as process:
        assert process.stdout is not None
        while chunk := process.stdout.read1(65536) if hasattr(process.stdout, "read1") else \
                process.stdout.read(65536):
            sink(chunk.decode("utf-8", errors="replace"))
        return process.wait()


def run_training(config: TrainConfig, strategy: str = "auto", *, sink: Callable[[str], Any] | None = None,
                 n_gpus: int | None = None, progress: bool = True) -> Any:
    """Train `config`: in this process on 0-1 GPU, else through torchrun (output streamed to
    `sink`, default stdout); then calibrate the saved model's temperature on
    `config.calibration_path` (train.calibrate). Returns the TrainResult either way."""
    result = _train(config, strategy, sink=sink, n_gpus=n_gpus, progress=progress)
    if config.calibration_path:
        from ktools.train.calibrate import calibrate_model

        result.calibration = calibrate_model(result.model_dir, config.calibration_path,
                                             report_path=result.report_path)
    return result


def _train(config: TrainConfig, strategy: str, *, sink: Callable[[str], Any] | None, n_gpus: int | None,
           progress: bool) -> Any:
    from ktools.train.result import TrainResult
    from ktools.train.trainer import choose_backend, train

    if choose_backend(config.backend) == "osft":  # training_hub starts its own workers
        return train(config, progress=progress)
    plan = plan_launch(config, strategy, n_gpus=n_gpus)
    log.info("training launch: %s", plan.reason)
    if plan.in_process:
        return train(config, progress=progress)
    config_path = launch_config_path(config)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    from ktools.io import write_json

    write_json(config_path, config.as_dict())
    log.info("launching: %s", " ".join(plan.command))
    code = stream_process(plan.command, plan.env, sink or _write_stdout)
    if code != 0:
        raise RuntimeError(f"distributed training failed (exit code {code}); the workers' output is above. "
                           f"Command: {' '.join(plan.command)}")
    return TrainResult.from_report(report_dir(config) / "train_report.json")


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
