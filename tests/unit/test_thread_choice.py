"""One busy-CPU rule (ktools.cpuload.CpuUse) behind the trainer's and the embedded teacher's thread counts."""

from __future__ import annotations

import pytest

from ktools.cpuload import CpuUse


def test_half_the_cores_busy_is_oversubscribed():
    assert CpuUse(2, 1.0).oversubscribed and CpuUse(8, 4.5).oversubscribed
    assert not CpuUse(2, 0.9).oversubscribed and not CpuUse(8, 3.9).oversubscribed


@pytest.mark.parametrize(("use", "expected"), [(CpuUse(2, 0.2), 2), (CpuUse(2, 1.5), 1), (CpuUse(8, 5.0), 4),
                                               (CpuUse(8, 1.0), 8)])
def test_embedded_teacher_takes_all_cores_when_idle_and_half_when_busy(monkeypatch, use, expected):
    from ktools.llm.local import server

    monkeypatch.setattr("ktools.cpuload.cpu_use", lambda: use)
    assert server.default_threads() == expected


@pytest.mark.parametrize(("use", "one_thread"), [(CpuUse(2, 1.5), True), (CpuUse(2, 0.5), False),
                                                 (CpuUse(8, 6.0), False)])  # 8 busy cores: half = 4, capped by torch's 2
def test_trainer_follows_the_same_rule_capped_by_torchs_default(monkeypatch, use, one_thread):
    import torch

    from ktools.train import threads

    monkeypatch.delenv("KTOOLS_TORCH_THREADS", raising=False)
    monkeypatch.setattr(threads, "cpu_use", lambda: use)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert threads.choose_torch_threads() == (1 if one_thread else 2)
        monkeypatch.setenv("KTOOLS_TORCH_THREADS", "3")
        assert threads.choose_torch_threads() == 3
        monkeypatch.setenv("KTOOLS_TORCH_THREADS", "0")  # as declared in ktools.config: 0 = choose
        torch.set_num_threads(2)
        assert threads.choose_torch_threads() == (1 if one_thread else 2)
    finally:
        torch.set_num_threads(before)


def test_training_takes_the_cores_back_when_the_machine_frees_up(monkeypatch):
    """Step 05 started on a busy machine (1 thread) goes to 2 once two samples say it is idle,
    and never beyond torch's own count."""
    import torch
    from test_teacher_steadiness import FakeMachine  # tests/unit is on sys.path (rootdir conftest)
    from transformers import TrainerControl, TrainerState

    from ktools.train.threads import FollowTheMachine, thread_governor

    machine = FakeMachine(cores=2)
    follow, state, control = FollowTheMachine(machine.governor(1, most=2)), TrainerState(), TrainerControl()
    applied = []
    monkeypatch.setattr(torch, "set_num_threads", applied.append)
    for step, others in enumerate([1.0, 1.0, 0.0, 0.0, 0.0]):  # a busy loop, then nothing else
        state.global_step = step
        machine.run(12.0, others=others, own=1.0)
        follow.on_step_begin(None, state, control)
    assert applied == [2]
    assert follow.changes == [{"at_step": 3, "threads": 2, "others_busy": 0.0}]
    # Capped: a machine of 4 logical cores whose torch uses 2 (physical) never gets 4.
    machine = FakeMachine(cores=4)
    capped = machine.governor(1, most=2)
    for _ in range(3):
        machine.run(12.0, others=1.0, own=1.0)
        result = capped.poll()
    # Others keep 1 of the 4 cores busy, so the rule says all 4; torch's 2 is the ceiling.
    assert capped.others_busy == pytest.approx(1.0) and capped.threads == 2 and result in (None, 2)
    monkeypatch.setenv("KTOOLS_TORCH_THREADS", "1")
    assert thread_governor(1, 2).fixed  # a count the user set is kept
