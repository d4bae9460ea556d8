"""The learning-rate schedule, and how it follows a step count that the time budget moves.

`cosine` (the notebooks' default) decays from the first step after warm-up to zero at the
last. Under a time budget the last step is a guess that `train.budget` corrects as the steps
run, and every correction moves a cosine's rate at once: in run f3 the plan shrank from 153
to 88 steps at step 8, so the rate dipped, then rose again over three more re-plans. And a
cosine's mean rate is half its peak.

`wsd` (warm-up, stable, decay; Hu et al. 2024 "MiniCPM", Hägele et al. 2024 "Scaling Laws
and Compute-Optimal Training Beyond Fixed Training Durations") holds the peak rate until the
last `WSD_DECAY_SHARE` of the steps, then cools down along 1 − sqrt, the shape Hägele et al.
found best. The re-plans fall in the stable part (at 5-75 % of the plan), where moving the
end changes nothing of the rate so far; only the cool-down's start follows the last one. The
mean rate is ~0.87 of the peak, so a run cut short by its time budget still trains at the
rate it was asked for.
"""

from __future__ import annotations

from typing import Any

SCHEDULERS = ("cosine", "linear", "constant", "wsd")
WSD_DECAY_SHARE = 0.2  # the cool-down's share of the steps (Hägele et al.: 20 % matches cosine)


def scheduler_arguments(name: str, total_steps: int) -> dict[str, Any]:
    """TrainingArguments' schedule fields for `name` over `total_steps`."""
    if name not in SCHEDULERS:
        raise ValueError(f"lr_scheduler must be one of {SCHEDULERS}, got {name!r}")
    if name != "wsd":
        return {"lr_scheduler_type": name}
    return {"lr_scheduler_type": "warmup_stable_decay",
            "lr_scheduler_kwargs": {"num_decay_steps": decay_steps(total_steps), "decay_type": "1-sqrt"}}


def decay_steps(total_steps: int) -> int:
    return max(1, round(WSD_DECAY_SHARE * total_steps))


def moved_horizon(keywords: dict[str, Any], total_steps: int) -> dict[str, Any] | None:
    """The keywords of a transformers schedule lambda that make it end at `total_steps`, or None
    when the schedule has no end to move. The warm-up is kept; a warm-up/stable/decay schedule
    keeps the cool-down's share of the whole and gives the stable part the rest."""
    if "num_training_steps" in keywords:
        return {**keywords, "num_training_steps": total_steps}
    if {"num_warmup_steps", "num_stable_steps", "num_decay_steps"} <= keywords.keys():
        warmup = keywords["num_warmup_steps"]
        decay = decay_steps(total_steps)
        return {**keywords, "num_decay_steps": decay, "num_stable_steps": max(0, total_steps - warmup - decay)}
    return None
