"""Optional backend: Orthogonal Subspace Fine-Tuning through `training_hub` (GPU only).

Used only where the `training_hub` package is installed and a GPU exists
(`ktools.train.detect_backends()`); the parameters follow training_hub's public OSFT
example. training_hub launches its own torchrun workers (`nproc_per_node`), so ktools
hands it the GPU count instead of launching workers itself. The call cannot run on the
CPU machines ktools is tested on; the argument mapping is tested (tests/unit/test_train_osft.py).
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from pathlib import Path
from typing import Any

from ktools.train.config import TrainConfig

log = logging.getLogger(__name__)

# training_hub's public OSFT example values.
OSFT_DEFAULTS: dict[str, Any] = {
    "unfreeze_rank_ratio": 0.25,
    "effective_batch_size": 16,
    "max_tokens_per_gpu": 2048,
    "learning_rate": 5e-6,
    "num_epochs": 3,
}
INSTALL_HINT = "pip install training-hub (on a machine with a CUDA GPU)"


def osft_arguments(config: TrainConfig, model_path: str, n_gpus: int = 1, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of `training_hub.osft()` for `config` (overrides win)."""
    params: dict[str, Any] = {
        **OSFT_DEFAULTS,
        "model_path": model_path,
        "data_path": str(config.mix_path),  # our mix rows (messages, unmask) are training_hub's format
        "ckpt_output_dir": str(Path(config.output_dir)),
        "max_seq_len": config.max_seq_len,
        "seed": config.seed,
        "num_epochs": max(1, math.ceil(config.epochs)),
        "nproc_per_node": max(1, n_gpus),
    }
    if config.learning_rate is not None:
        params["learning_rate"] = config.learning_rate
    params.update(overrides)
    return params


def import_training_hub() -> Any:
    try:
        return importlib.import_module("training_hub")
    except ImportError as exc:
        raise RuntimeError(f"backend 'osft' needs the training_hub package, which is not installed: "
                           f"{INSTALL_HINT}; or use backend='sft'") from exc


def train_osft(config: TrainConfig, n_gpus: int | None = None, **overrides: Any) -> Any:
    from ktools.models import resolve_model_path
    from ktools.train.hardware import gpu_count
    from ktools.train.result import TrainResult

    training_hub = import_training_hub()
    params = osft_arguments(config, resolve_model_path(config.model_name),
                            gpu_count() if n_gpus is None else n_gpus, **overrides)
    log.info("training with training_hub OSFT: %s", params)
    start = time.perf_counter()
    training_hub.osft(**params)
    elapsed = time.perf_counter() - start
    return TrainResult(model_dir=str(config.output_dir), method="osft", backend="osft", steps=0, planned_steps=0,
                       steps_per_epoch=0, epochs_done=float(params["num_epochs"]), train_seconds=elapsed,
                       tokens_trained=0, tokens_per_second=0.0, first_loss=None, final_loss=None,
                       config=config.as_dict())
