"""Trainer callbacks: a progress bar that shows the loss, and a wall-clock limit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)


class LossProgressCallback(TrainerCallback):
    """`tqdm.auto` bar over optimizer steps with the latest loss and learning rate."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001 - transformers' signature
        from tqdm.auto import tqdm

        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step")

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.bar is not None:
            if self.bar.total != state.max_steps:  # re-planned (train.budget)
                self.bar.total = state.max_steps
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if self.bar is not None and logs and "loss" in logs:
            postfix = {"loss": f"{logs['loss']:.3f}", "lr": f"{logs.get('learning_rate', 0):.1e}"}
            if "retention_kl" in logs:  # train.retention: the KL to the base on replay rows
                postfix["kl"] = f"{logs['retention_kl']:.4f}"
            self.bar.set_postfix(postfix)

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TimeLimitCallback(TrainerCallback):
    """Stop (with a checkpoint and the final save) once `seconds` of training have passed."""

    def __init__(self, seconds: float | None, agree: Callable[[bool], bool] | None = None):
        self.seconds = seconds
        # Distributed workers must stop at the same step: `agree` makes one worker's
        # "time is up" everyone's (a collective, so it is called on every step by every rank).
        self.agree = agree
        self.start = 0.0
        self.triggered = False

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        over = bool(self.seconds) and time.monotonic() - self.start > self.seconds
        if self.agree is not None and self.seconds:
            over = self.agree(over)
        if over and state.global_step < state.max_steps:
            log.warning("time limit of %.0f s reached at step %d of %d; stopping (the model is saved)",
                        self.seconds, state.global_step, state.max_steps)
            self.triggered = True
            control.should_training_stop = True
            control.should_save = True
        return control
