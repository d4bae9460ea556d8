"""Steps that re-plan themselves to fill the time budget (train.budget): the arithmetic, the
schedule moved with the step count, the callback on a controlled clock, and a real Trainer
whose speed probe over-estimated a step (as the probe did by 13-40 % on 2-core CPUs)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerControl, TrainerState, get_scheduler

from ktools.models import load_tokenizer
from ktools.train.budget import REPLAN_AT, StepBudgetCallback, fitted_steps, retarget_schedule
from ktools.train.config import TrainConfig
from ktools.train.schedule import scheduler_arguments


def test_fitted_steps_fill_what_is_left_and_stay_within_the_epochs_and_the_step_done():
    assert fitted_steps(step=5, elapsed=50.0, seconds_per_step=10.0, budget=300.0, cap=100) == 30
    assert fitted_steps(step=5, elapsed=50.0, seconds_per_step=1.0, budget=300.0, cap=100) == 100
    assert fitted_steps(step=5, elapsed=400.0, seconds_per_step=10.0, budget=300.0, cap=100) == 5


def schedule(name: str, total: int, warmup: int = 2):
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    return optimizer, get_scheduler(name, optimizer=optimizer, num_warmup_steps=warmup, num_training_steps=total)


@pytest.mark.parametrize("name", ["cosine", "linear"])
def test_retarget_moves_the_end_of_the_decay_and_keeps_the_warmup(name):
    optimizer, scheduler = schedule(name, total=100)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    before = optimizer.param_groups[0]["lr"]
    assert retarget_schedule(scheduler, 10)
    reference_opt, reference = schedule(name, total=10)
    for _ in range(5):
        reference_opt.step()
        reference.step()
    # The current rate follows at once, and the rest of the run is the 10-step schedule's.
    assert optimizer.param_groups[0]["lr"] == pytest.approx(reference_opt.param_groups[0]["lr"])
    assert optimizer.param_groups[0]["lr"] < before
    for _ in range(5):
        optimizer.step()
        scheduler.step()
        reference_opt.step()
        reference.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(reference_opt.param_groups[0]["lr"])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)
    # Warm-up untouched: a schedule moved before its first step ramps up as before.
    optimizer, scheduler = schedule(name, total=100, warmup=4)
    retarget_schedule(scheduler, 50)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25)


def test_retarget_leaves_a_schedule_without_an_end_alone():
    optimizer, scheduler = schedule("constant_with_warmup", total=100)
    assert not retarget_schedule(scheduler, 10)
    assert not retarget_schedule(None, 10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_steps(callback: StepBudgetCallback, clock: Clock, seconds: list[float], first: float | None = None):
    """Drive the callback like the Trainer does: begin, then one on_step_end per step."""
    state, control = TrainerState(), TrainerControl()
    state.max_steps = callback.cap  # what the Trainer was built with
    callback.on_train_begin(None, state, control)
    for index, took in enumerate(seconds):
        if state.global_step >= state.max_steps or control.should_training_stop:
            break
        clock.now += first if (index == 0 and first is not None) else took
        state.global_step += 1
        control = callback.on_step_end(None, state, control) or control
    return state, control


def test_steps_faster_than_the_probe_said_extend_the_plan_to_fill_the_budget():
    clock, saved = Clock(), []
    # The probe said 20 s a step: 30 steps for 10 minutes. They take 10 s (the first 30: warm-up).
    callback = StepBudgetCallback(30, cap=200, budget_seconds=600, clock=clock,
                                  on_replan=lambda steps, record: saved.append((steps, record)))
    state, _ = run_steps(callback, clock, [10.0] * 200, first=30.0)
    assert callback.replans and callback.replans[0]["from_steps"] == 30
    assert callback.replans[0]["seconds_per_step"] == pytest.approx(10.0)
    # 30 s + 57 steps of 10 s = 600 s: the budget is filled, not 30 steps' worth.
    assert state.max_steps == state.global_step == 58
    assert saved[-1][0] == 58 and [r for _, r in saved] == callback.replans


def test_steps_slower_than_the_probe_said_shrink_the_plan_and_stop_in_time():
    clock = Clock()
    callback = StepBudgetCallback(60, cap=200, budget_seconds=600, clock=clock)
    state, _ = run_steps(callback, clock, [20.0] * 200)
    assert state.global_step == state.max_steps == 30
    assert clock.now - 1000.0 == pytest.approx(600.0)


def test_steps_that_speed_up_are_planned_by_their_recent_time_not_the_mean_since_the_start():
    # Run f3's shape: another job shares the CPU for the first 20 steps (30 s each), then the
    # steps take 12 s. The mean since the start would still say ~17 s at step 53 and stop early.
    clock = Clock()
    callback = StepBudgetCallback(150, cap=400, budget_seconds=2700, clock=clock)
    state, _ = run_steps(callback, clock, [30.0] * 20 + [12.0] * 400)
    assert callback.replans[-1]["seconds_per_step"] == pytest.approx(12.0)
    # 20 x 30 s + 175 x 12 s = 2,700 s: the budget is filled to the step.
    assert state.global_step == state.max_steps == 195
    assert clock.now - 1000.0 == pytest.approx(2700.0)
    # The mean since the start, at the last re-plan, would have planned fewer.
    at = callback.replans[-1]["at_step"]
    mean = (20 * 30.0 + (at - 20) * 12.0 - 30.0) / (at - 1)
    assert fitted_steps(at, 20 * 30.0 + (at - 20) * 12.0, mean, 2700, 400) < 195


def test_never_beyond_the_epochs_asked_for():
    clock = Clock()
    callback = StepBudgetCallback(20, cap=40, budget_seconds=600, clock=clock)
    state, _ = run_steps(callback, clock, [1.0] * 100)
    assert state.global_step == state.max_steps == 40


def test_a_resumed_run_keeps_its_plan():
    clock = Clock()
    callback = StepBudgetCallback(30, cap=200, budget_seconds=600, clock=clock, replan=False)
    state, _ = run_steps(callback, clock, [1.0] * 100)
    assert state.global_step == state.max_steps == 30 and callback.replans == []


def test_the_first_replan_waits_for_5_percent_of_the_plan_and_a_run_on_plan_is_left_alone():
    clock = Clock()
    # Plan 100 steps at 10 s; they take 5 s. Steps 3 and 4 are measured but under 5 % of the plan.
    callback = StepBudgetCallback(100, cap=400, budget_seconds=1000, clock=clock)
    run_steps(callback, clock, [5.0] * 400)
    assert REPLAN_AT[0] == 0.05
    assert callback.replans[0]["at_step"] == 5 and callback.replans[0]["to_steps"] == 5 + (1000 - 25) // 5
    clock = Clock()
    callback = StepBudgetCallback(100, cap=100, budget_seconds=1000, clock=clock)
    run_steps(callback, clock, [10.0] * 100)
    assert callback.replans == []  # on plan: nothing to move


def tiny_llama(vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         eos_token_id=1, pad_token_id=0, use_cache=False)
    return LlamaForCausalLM(config)


def test_training_fills_the_budget_when_the_probe_over_estimates(tmp_path, monkeypatch):
    """A real Trainer on a tiny model: the probe claims ~1 s a step, so a 6-second budget plans a
    few steps; they really take milliseconds, so training re-plans, runs on to the epochs asked
    for, ends its learning-rate schedule at 0 there, and the plan file says where it ended."""
    from transformers import TrainerCallback

    from ktools.train import TrainConfig
    from ktools.train import trainer as trainer_module

    tokenizer = load_tokenizer()
    monkeypatch.setattr(trainer_module, "_load_model", lambda config, device=None: tiny_llama(len(tokenizer)))
    monkeypatch.setattr(trainer_module, "measure_seconds_per_token", lambda model, batch, **kwargs: 1 / 128)
    rows = [{"messages": [{"role": "user", "content": f"Question number {i}?"},
                          {"role": "assistant", "content": f"Answer {i} is short."}]} for i in range(8)]
    mix = tmp_path / "mix.jsonl"
    mix.write_text("\n".join(json.dumps(r) for r in rows))
    rates: list[float] = []

    class Rates(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "learning_rate" in logs:
                rates.append(logs["learning_rate"])

    config = TrainConfig(mix_path=str(mix), output_dir=str(tmp_path / "model"), checkpoints_dir=str(tmp_path / "ckpt"),
                         report_dir=str(tmp_path), learning_rate=1e-3, epochs=10.0, time_budget_minutes=0.1,
                         tokens_per_batch=128, max_seq_len=64, resume=False, backend="sft", precision="fp32")
    result = trainer_module.train(config, progress=False, extra_callbacks=[Rates()])
    epoch_steps = result.steps_per_epoch * 10
    assert result.planned_steps < epoch_steps
    assert result.replans and result.replans[0]["from_steps"] == result.planned_steps
    assert result.steps == result.replans[-1]["to_steps"] > result.planned_steps
    plan = json.loads((tmp_path / "ckpt" / "plan.json").read_text())
    assert plan["max_steps"] == result.steps and plan["replans"] == result.replans
    assert all(r["schedule_moved"] for r in result.replans)
    # The cosine schedule ends where training ended: the last step's rate is near 0, not mid-decay.
    assert len(rates) == result.steps and rates[-1] < 0.02 * max(rates)


def wsd(total: int, warmup: int = 2):
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    arguments = scheduler_arguments("wsd", total)
    return optimizer, get_scheduler(arguments["lr_scheduler_type"], optimizer=optimizer, num_warmup_steps=warmup,
                                    num_training_steps=total, scheduler_specific_kwargs=arguments["lr_scheduler_kwargs"])


def rates(optimizer, scheduler, steps: int) -> list[float]:
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_wsd_holds_the_peak_through_a_re_plan_and_cools_down_over_the_last_fifth_of_the_new_count():
    # The f3 shape: built for the epochs asked (300 steps), planned at 153, re-planned to 88 at
    # step 8, then to 174. A cosine's rate moves at each re-plan; the stable part's does not.
    optimizer, scheduler = wsd(300)
    assert retarget_schedule(scheduler, 153)
    seen = rates(optimizer, scheduler, 8)
    assert seen[0] == 0.0 and seen[2:] == [1.0] * 6  # warm-up of 2, then the peak
    assert retarget_schedule(scheduler, 88)
    assert optimizer.param_groups[0]["lr"] == 1.0
    seen += rates(optimizer, scheduler, 60)
    assert retarget_schedule(scheduler, 174)
    assert optimizer.param_groups[0]["lr"] == 1.0  # step 68: still stable under both plans
    seen += rates(optimizer, scheduler, 106)
    decay = round(0.2 * 174)
    assert seen[2:174 - decay] == [1.0] * (172 - decay)
    tail = seen[174 - decay:]
    assert all(a > b for a, b in zip(tail, tail[1:], strict=False)) and tail[-1] < 0.2
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)  # ends at the new count
    # The same run under cosine: the shrunk plan cut the rate at step 8 (to ~0.97) and by step 68
    # the rate was far below the peak, while the run went on to 174.
    optimizer, scheduler = schedule("cosine", total=300)
    retarget_schedule(scheduler, 153)
    rates(optimizer, scheduler, 8)
    retarget_schedule(scheduler, 88)
    rates(optimizer, scheduler, 60)
    assert optimizer.param_groups[0]["lr"] < 0.3


def test_unknown_schedules_are_refused_by_name():
    with pytest.raises(ValueError, match="lr_scheduler must be one of"):
        scheduler_arguments("warmup_stable_decay", 10)
    with pytest.raises(ValueError, match="wsd"):
        TrainConfig(lr_scheduler="cosine_with_restarts")
