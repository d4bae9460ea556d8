"""The multi-GPU launch path, executed for real on CPU: run_training() told there are two
GPUs starts `torchrun` with two workers (gloo backend), they train data parallel, and rank 0
writes the model and report that the launcher reads back."""

from __future__ import annotations

import json

import pytest

from ktools.train import TrainConfig
from ktools.train.launch import run_training

pytestmark = pytest.mark.slow


def test_two_torchrun_workers_train_and_rank0_saves(tmp_path):
    from transformers import AutoModelForCausalLM

    mix = tmp_path / "mix.jsonl"
    rows = [{"messages": [{"role": "user", "content": "What colour is the Orlenmoor ferry?"},
                          {"role": "assistant", "content": "The Orlenmoor ferry is painted teal."}],
             "metadata": {}, "unmask": i % 2 == 0, "token_length": 0} for i in range(6)]
    mix.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig(mix_path=str(mix), output_dir=str(tmp_path / "model"), checkpoints_dir=str(tmp_path / "ckpt"),
                         report_dir=str(tmp_path / "report"), max_seq_len=64, tokens_per_batch=128,
                         learning_rate=3e-4, time_budget_minutes=5.0, max_steps=2)  # the time limit: a collective
    output: list[str] = []
    # n_gpus=2 on a CPU machine: the real torchrun command; the workers fall back to gloo on CPU.
    result = run_training(config, "ddp", n_gpus=2, sink=output.append)
    log = "".join(output)
    assert "ddp across 2 workers" in log and "trained as DistributedDataParallel" in log, log[-3000:]
    assert result.world_size == 2 and result.strategy == "ddp" and result.steps == 2
    assert len(result.losses) == 2 and all(loss > 0 for _, loss in result.losses)
    assert not result.stopped_by_time_limit
    assert (tmp_path / "report" / "loss_curve.png").is_file() and (tmp_path / "report" / "launch_config.json").is_file()
    AutoModelForCausalLM.from_pretrained(result.model_dir)  # rank 0 saved a loadable model
