"""What a training run returns and where it writes its report.

`TrainResult` is built by `trainer.train()` (and `osft.train_osft()`) in this process, or read
back from rank 0's `train_report.json` after a torchrun launch (`launch.run_training`); it lives
here, below all three, so they need not import each other for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ktools.io import read_json
from ktools.train.config import TrainConfig


@dataclass
class TrainResult:
    model_dir: str
    method: str
    backend: str
    steps: int
    planned_steps: int
    steps_per_epoch: int
    epochs_done: float
    train_seconds: float
    tokens_trained: int          # real (unpadded) tokens processed in this run
    tokens_per_second: float
    first_loss: float | None
    final_loss: float | None
    losses: list[tuple[int, float]] = field(default_factory=list)
    stopped_by_time_limit: bool = False
    resumed_from: str | None = None
    n_rows: int = 0
    n_examples: int = 0
    n_truncated: int = 0
    tokens_per_epoch: int = 0
    loss_tokens_per_epoch: int = 0
    seconds_per_token_estimate: float | None = None
    torch_threads: int | None = None
    loss_curve: str | None = None
    report_path: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    world_size: int = 1
    strategy: str = "single"
    calibration: dict[str, Any] | None = None  # train.calibrate.calibrate_model's record, when it ran
    # Mean KL(base || student) over the batches with replay rows (retention_kl > 0 only; train.retention).
    retention_kl_mean: float | None = None
    # Step counts re-planned during training to fill the time budget (train.budget); planned_steps is the probe's.
    replans: list[dict[str, Any]] = field(default_factory=list)
    thread_changes: list[dict[str, Any]] = field(default_factory=list)  # torch threads re-chosen mid-run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_report(cls, path: str | Path) -> TrainResult:
        """The result a (distributed) run wrote to its train_report.json."""
        data = read_json(path)
        data["losses"] = [tuple(pair) for pair in data.get("losses", [])]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def report_dir(config: TrainConfig) -> Path:
    """Where train() writes train_report.json (its default: the checkpoint folder's parent)."""
    return Path(config.report_dir or Path(config.checkpoints_dir or "checkpoints").parent)
