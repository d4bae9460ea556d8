"""Optional backend: Orthogonal Subspace Fine-Tuning through `training_hub` (GPU only).

Used only where the `training_hub` package is installed and a GPU exists
(`ktools.train.detect_backends()`); the parameters follow training_hub's public OSFT
example. This code path cannot run on the CPU machines ktools is tested on, so it is
kept to a thin, logged call.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ktools.models import resolve_model_path
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


def train_osft(config: TrainConfig, **overrides: Any) -> Any:
    import training_hub  # type: ignore[import-not-found]

    from ktools.train.trainer import TrainResult

    params = {**OSFT_DEFAULTS, "max_seq_len": config.max_seq_len, **overrides}
    if config.learning_rate is not None:
        params["learning_rate"] = config.learning_rate
    log.info("training with training_hub OSFT: %s", params)
    start = time.perf_counter()
    training_hub.osft(model_path=resolve_model_path(config.model_name), data_path=str(config.mix_path),
                      ckpt_output_dir=str(Path(config.output_dir)), **params)
    elapsed = time.perf_counter() - start
    return TrainResult(model_dir=str(config.output_dir), method="osft", backend="osft", steps=0, planned_steps=0,
                       steps_per_epoch=0, epochs_done=float(params["num_epochs"]), train_seconds=elapsed,
                       tokens_trained=0, tokens_per_second=0.0, first_loss=None, final_loss=None,
                       config=config.as_dict())
