"""Fit the step count to the time budget from the training steps' own times.

Why: the step plan (`trainer._plan`) comes from a speed probe timed before training, and on
2-core CPUs it was off by 13-40 %, always high (runs fresh1 13 %, nu2 40 %, fresh2 27 %):
the last 4-9 minutes of a 30-minute budget went unused, and with them a quarter of the
epochs the knowledge recipe needs. A probe cannot do much better: batches of one mix
differ in cost (a forward+backward took 13.7 s for one batch of 1,944 tokens and 15-21 s
for one of 2,030, on an AVX2 CPU in float32), and the first passes run while the
allocator still grows.

So the steps re-plan themselves. At 5 %, 25 %, 50 % and 75 % of the current plan, the
mean time of the recent steps says how many more fit in what is left of the budget: the
steps since the last re-plan point (at least MIN_WINDOW_STEPS of them; else all steps so
far, the first one excluded: it pays the warm-up). Recent, not all: in run f3 another job
shared the CPU for the first 8 minutes (30 s a step), then the steps took 12 s, and the
mean since the start still said 17 s at step 53, planning 153 steps where ~200 fit. The
step count moves there, never above the epochs asked for and never below the step just
done, and the learning-rate schedule is stretched or shrunk to end where training now
ends (its warm-up unchanged). The Trainer is built for the largest count (the epochs
asked), so its epoch loop has room to go on; this callback sets the count it really
stops at.

Single-process runs only: distributed workers would have to agree on the count, so they
keep the probe's plan. A resumed run keeps the count its plan file holds (the last
re-plan is written there) and does not re-plan.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from ktools.train.schedule import moved_horizon

log = logging.getLogger(__name__)

REPLAN_AT = (0.05, 0.25, 0.5, 0.75)  # shares of the current plan
MIN_MEASURED_STEPS = 2  # steps after the first before the first re-plan
MIN_WINDOW_STEPS = 5  # fewest steps since the last re-plan point to time the rate by (batches vary)


def retarget_schedule(lr_scheduler: Any, total_steps: int) -> bool:
    """Make a transformers warm-up/decay schedule end at `total_steps`; the current learning
    rate follows at once. False when the schedule has no horizon to move (constant ones,
    or a scheduler that is not a LambdaLR over transformers' `partial` lambdas)."""
    lambdas = getattr(lr_scheduler, "lr_lambdas", None)
    if not lambdas or not all(isinstance(fn, functools.partial) for fn in lambdas):
        return False
    moved = [moved_horizon(fn.keywords, total_steps) for fn in lambdas]
    if any(keywords is None for keywords in moved):
        return False
    lr_scheduler.lr_lambdas = [functools.partial(fn.func, *fn.args, **keywords)
                               for fn, keywords in zip(lambdas, moved, strict=True)]
    step = lr_scheduler.last_epoch
    rates = [base * fn(step) for base, fn in zip(lr_scheduler.base_lrs, lr_scheduler.lr_lambdas, strict=True)]
    for group, rate in zip(lr_scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    lr_scheduler._last_lr = rates
    return True


def fitted_steps(step: int, elapsed: float, seconds_per_step: float, budget: float, cap: int) -> int:
    """The step count that fits `budget` seconds: `step` done after `elapsed` seconds, the rest
    at `seconds_per_step`; at most `cap`, at least `step`."""
    more = math.floor(max(0.0, budget - elapsed) / seconds_per_step) if seconds_per_step > 0 else cap
    return max(step, min(cap, step + more))


class StepBudgetCallback(TrainerCallback):
    """Sets the Trainer's step count to the plan, then re-plans it to fill the time budget.

    `planned`: the probe's step count (or the last re-plan's, on resume); `cap`: the steps
    of the epochs asked for, which the Trainer was built with; `budget_seconds`: the time
    budget of the training steps; `replan`: False keeps `planned` (resumed or distributed
    runs); `on_replan(max_steps, record)`: persists a new count (the plan file)."""

    def __init__(self, planned: int, cap: int, budget_seconds: float, *, replan: bool = True,
                 on_replan: Callable[[int, dict[str, Any]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.planned = max(1, min(planned, cap))
        self.cap = cap
        self.budget = budget_seconds
        self.replan = replan
        self.on_replan = on_replan
        self.clock = clock
        self.replans: list[dict[str, Any]] = []
        self._start = 0.0
        self._begin_step = 0
        self._first_end: float | None = None
        self._points: list[float] = []
        self._mark: tuple[float, int] | None = None  # (time, steps done) at the last re-plan point

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):  # noqa: ANN001
        state.max_steps = self.planned
        if lr_scheduler is not None:
            retarget_schedule(lr_scheduler, self.planned)
        self._start = self.clock()
        self._begin_step = state.global_step
        self._points = list(REPLAN_AT) if self.replan else []

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):  # noqa: ANN001
        now = self.clock()
        done = state.global_step - self._begin_step
        if done == 1:
            self._first_end = now
            self._mark = (now, done)
        if not self._points or self._first_end is None or done <= MIN_MEASURED_STEPS:
            return control
        if done < self._points[0] * state.max_steps:
            return control
        while self._points and done >= self._points[0] * state.max_steps:
            self._points.pop(0)
        seconds_per_step = self._recent_seconds_per_step(now, done)
        elapsed = now - self._start
        steps = fitted_steps(state.global_step, elapsed, seconds_per_step, self.budget, self.cap)
        if steps == state.max_steps:
            return control
        record = {"at_step": state.global_step, "elapsed_seconds": round(elapsed, 1),
                  "seconds_per_step": round(seconds_per_step, 3), "from_steps": state.max_steps, "to_steps": steps}
        log.info("re-planned at step %d: %.2f s a step so far, so %d steps fit the %.0f-minute budget (was %d)",
                 state.global_step, seconds_per_step, steps, self.budget / 60, state.max_steps)
        state.max_steps = steps
        if lr_scheduler is not None:
            record["schedule_moved"] = retarget_schedule(lr_scheduler, steps)
        self.replans.append(record)
        if self.on_replan is not None:
            self.on_replan(steps, record)
        if state.global_step >= steps:
            control.should_training_stop = True
            control.should_save = True
        return control

    def _recent_seconds_per_step(self, now: float, done: int) -> float:
        """Mean seconds a step since the last re-plan point (all steps after the first when
        fewer than MIN_WINDOW_STEPS have run since); the point moves here."""
        assert self._first_end is not None and self._mark is not None
        mark_time, mark_done = self._mark
        self._mark = (now, done)
        if done - mark_done >= MIN_WINDOW_STEPS:
            return (now - mark_time) / (done - mark_done)
        return (now - self._first_end) / (done - 1)
