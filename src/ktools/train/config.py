"""Training parameters and their defaults (the reasons are in 05_Model_Training/README.md)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ktools.config import EMBEDDED_MODEL_NAME, Settings
from ktools.paths import OutputPaths
from ktools.train.batching import STRATEGIES
from ktools.train.mix_choice import training_mix_for
from ktools.train.schedule import SCHEDULERS

METHODS = ("full", "lora")
BACKENDS = ("auto", "sft", "osft")
# Peak learning rates for models of up to SMALL_MODEL_PARAMS parameters (SmolLM2-135M), and
# for larger ones. Measured on the sample document (05_Model_Training/README.md): full
# fine-tuning of the 135M student at 2e-4 with the knowledge components and 10 % general
# replay kept 19 of 21 general answers and learned more of the document than 1e-4; 3e-4
# without replay lost 10 of 21. Larger models store facts with smaller steps and forget
# faster at high rates, hence the usual lower rates for them.
SMALL_MODEL_PARAMS = 400_000_000
DEFAULT_LEARNING_RATE = {"full": 2e-4, "lora": 2e-4}
LARGE_MODEL_LEARNING_RATE = {"full": 5e-5, "lora": 1e-4}


def model_parameters(model_name: str) -> int | None:
    """Parameter count of a local model (from its safetensors headers), None when unknown."""
    from ktools.models import resolve_model_path
    from ktools.train.hardware import count_parameters

    try:
        return count_parameters(resolve_model_path(model_name))
    except (OSError, ValueError):
        return None


def default_learning_rate(method: str, n_params: int | None) -> float:
    """The peak rate for `method` and a model of `n_params` (unknown size: the small-model rate,
    as the embedded student is the default)."""
    small = n_params is None or n_params <= SMALL_MODEL_PARAMS
    return (DEFAULT_LEARNING_RATE if small else LARGE_MODEL_LEARNING_RATE)[method]


@dataclass(frozen=True)
class TrainConfig:
    model_name: str = EMBEDDED_MODEL_NAME
    mix_path: str = ""
    output_dir: str = ""          # the final model directory (default: output/fine_tuned_model/<model>)
    checkpoints_dir: str = ""     # default: output/step_05/checkpoints
    report_dir: str = ""          # loss curve + train_report.json (default: output/step_05)
    method: str = "full"          # full | lora (merged into the weights on save)
    backend: str = "auto"         # auto | sft | osft (training_hub, GPU only)
    learning_rate: float | None = None  # None: by method and model size (default_learning_rate)
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs
    time_budget_minutes: float | None = 7.0  # plan the step count to fit; None = no limit
    max_seq_len: int = 512
    tokens_per_batch: int = 2048
    batching: str = "length"      # length | packing | length-spread (ktools.train.batching; length was faster here)
    lr_scheduler: str = "cosine"  # cosine | linear | constant | wsd (train.schedule)
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    max_rows: int | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    save_every_minutes: float = 2.0
    save_steps: int | None = None  # overrides save_every_minutes
    resume: bool = True
    device: str | None = None
    precision: str = "auto"       # auto (bf16 autocast on a bf16 GPU or a CPU with AMX/AVX512-BF16, else fp32) | fp32 | bf16
    # λ of the retention KL on step 04's general-replay rows (train.retention); 0 = off, no base model loaded.
    retention_kl: float = 0.0
    # Keep the token embeddings (and the output head, tied to them or not) as they were: the
    # document's names then cannot raise their tokens' logits everywhere (train.freeze).
    freeze_embeddings: bool = False
    # The lowest N transformer blocks keep their weights too (full method): the backward pass
    # stops above them, so a step is cheaper and a time budget buys more epochs (train.freeze).
    freeze_lower_layers: int = 0
    # Share of each weight tensor's entries an optimizer step moves, those with the largest
    # Adam momentum (train.mofo, MoFO); 1.0 = plain AdamW.
    update_fraction: float = 1.0
    # Held-out Q&A the temperature is fitted on after training (train.calibrate); "" = no calibration.
    calibration_path: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.lr_scheduler not in SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {SCHEDULERS}, got {self.lr_scheduler!r}")
        if self.freeze_lower_layers < 0:
            raise ValueError(f"freeze_lower_layers must be >= 0 (0 = every block learns), got {self.freeze_lower_layers!r}")
        if self.freeze_lower_layers and self.method != "full":
            raise ValueError("freeze_lower_layers applies to full fine-tuning (LoRA already leaves the blocks' "
                             "weights as they were); set it to 0 or use method='full'")
        if self.batching not in STRATEGIES:
            raise ValueError(f"batching must be one of {', '.join(STRATEGIES)}, got {self.batching!r}")
        if not self.retention_kl >= 0:  # also refuses NaN
            raise ValueError(f"retention_kl must be >= 0 (0 = off), got {self.retention_kl!r}")
        if not 0.0 < self.update_fraction <= 1.0:  # also refuses NaN
            raise ValueError(f"update_fraction must be in (0, 1] (1 = plain AdamW), got {self.update_fraction!r}")
        if self.tokens_per_batch < self.max_seq_len:
            raise ValueError(f"tokens_per_batch ({self.tokens_per_batch}) must be >= max_seq_len "
                             f"({self.max_seq_len}) so that the longest example fits a batch")

    @property
    def effective_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return default_learning_rate(self.method, model_parameters(self.model_name))

    @classmethod
    def from_settings(cls, settings: Settings, cut: int | None = None, **overrides: Any) -> TrainConfig:
        """Paths from the output layout; the mix of `cut` (default: the smallest configured cut), or
        the one step 04 built instead when it had to fall back (`mix_choice`)."""
        paths = OutputPaths.from_settings(settings)
        cut = cut if cut is not None else min(settings.cut_sizes)
        model = overrides.pop("model_name", None) or settings.student_model_name
        defaults: dict[str, Any] = {
            "model_name": model,
            "mix_path": str(training_mix_for(paths, cut)),
            "output_dir": str(paths.fine_tuned_model(model)),
            "checkpoints_dir": str(paths.checkpoints_dir),
            "report_dir": str(paths.step(5)),
            "calibration_path": str(paths.eval_set),
        }
        defaults.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**defaults)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed (not the time budget or paths of outputs)."""
        mix = Path(self.mix_path)
        stat = mix.stat() if mix.is_file() else None
        keys = {k: v for k, v in self.as_dict().items()
                if k not in {"time_budget_minutes", "output_dir", "report_dir", "resume", "save_every_minutes",
                             "save_steps", "device", "calibration_path"}}
        keys["mix"] = [str(mix.resolve()), stat.st_size if stat else None, stat.st_mtime_ns if stat else None]
        return hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()[:16]
