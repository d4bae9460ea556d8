"""The step plan fits the time budget, is reused on resume, and is discarded for another run."""

from __future__ import annotations

import json

import pytest

from ktools.config import load_settings
from ktools.evaluate import make_judge_client
from ktools.train.config import TrainConfig
from ktools.train.trainer import _plan


@pytest.fixture
def config(tmp_path):
    mix = tmp_path / "mix.jsonl"
    mix.write_text("{}\n")
    return TrainConfig(mix_path=str(mix), checkpoints_dir=str(tmp_path / "ckpt"), epochs=3.0,
                       time_budget_minutes=7.0)


def test_plan_keeps_all_epochs_when_they_fit(config, tmp_path):
    plan = _plan(config, tmp_path / "ckpt", steps_per_epoch=10, avg_batch_tokens=1000, seconds_per_token=0.001)
    assert plan["max_steps"] == 30  # 1 s per step: 30 s << 7 min
    assert plan["save_steps"] == 30  # every 2 min would be after the end


def test_plan_cuts_steps_to_the_budget(config, tmp_path):
    plan = _plan(config, tmp_path / "ckpt", steps_per_epoch=10, avg_batch_tokens=1000, seconds_per_token=0.03)
    assert plan["max_steps"] == 14  # 30 s per step, 420 s budget
    assert plan["save_steps"] == 4  # about every 2 minutes


def test_plan_is_reused_for_the_same_run_and_reset_for_another(config, tmp_path):
    ckpt = tmp_path / "ckpt"
    first = _plan(config, ckpt, steps_per_epoch=10, avg_batch_tokens=1000, seconds_per_token=0.03)
    (ckpt / "checkpoint-4").mkdir()
    again = _plan(config, ckpt, steps_per_epoch=10, avg_batch_tokens=1000, seconds_per_token=0.001)
    assert again == first and (ckpt / "checkpoint-4").is_dir()
    other = _plan(config.replace(learning_rate=3e-5), ckpt, steps_per_epoch=10, avg_batch_tokens=1000,
                  seconds_per_token=0.001)
    assert other["max_steps"] == 30 and not (ckpt / "checkpoint-4").exists()
    assert json.loads((ckpt / "plan.json").read_text())["max_steps"] == 30


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="qlora")
    with pytest.raises(ValueError, match="tokens_per_batch"):
        TrainConfig(tokens_per_batch=256, max_seq_len=512)
    assert TrainConfig(method="lora").effective_learning_rate == 2e-4


def test_from_settings_uses_the_output_layout(tmp_output, tmp_path):
    settings = load_settings(environ={"KTOOLS_OUTPUT_DIR": str(tmp_output), "CUT_SIZES": "5,50"},
                             repo_root=tmp_path)
    config = TrainConfig.from_settings(settings)
    assert config.mix_path.endswith("step_04/training_mix/combined_cut_5x.jsonl")
    assert config.output_dir.endswith("fine_tuned_model/SmolLM2-135M-Instruct")


def test_judge_is_off_by_default_for_the_embedded_teacher(tmp_path):
    settings = load_settings(environ={}, repo_root=tmp_path)  # no .env: the embedded teacher
    assert settings.uses_embedded_teacher
    assert make_judge_client(settings) is None
    assert make_judge_client(settings, use_judge=False) is None


def test_speed_probe_counts_tokens_of_one_row_even_for_padded_batches():
    import time

    import torch

    from ktools.train.trainer import measure_seconds_per_token

    class SlowModel:
        device = torch.device("cpu")

        def train(self):
            pass

        def zero_grad(self, set_to_none=True):
            pass

        def __call__(self, input_ids, labels=None, use_cache=False, **kwargs):
            time.sleep(0.0005 * input_ids.numel())  # 0.5 ms per token processed
            loss = torch.zeros((), requires_grad=True)
            return type("Out", (), {"loss": loss})()

    padded = {"input_ids": torch.zeros((8, 200), dtype=torch.long), "labels": torch.zeros((8, 200), dtype=torch.long),
              "attention_mask": torch.ones((8, 200), dtype=torch.long)}
    per_token = measure_seconds_per_token(SlowModel(), padded, probe_tokens=100)
    assert 0.0004 < per_token < 0.001


def test_speed_probe_takes_the_median_so_one_slow_pass_does_not_set_the_plan():
    import time

    import torch

    from ktools.train.trainer import measure_seconds_per_token

    class OnceSlowModel:
        """0.5 ms a token, but the first timed pass (after the warm-up) takes 4x as long."""
        device = torch.device("cpu")
        calls = 0

        def train(self):
            pass

        def zero_grad(self, set_to_none=True):
            pass

        def __call__(self, input_ids, labels=None, use_cache=False, **kwargs):
            OnceSlowModel.calls += 1
            time.sleep(0.0005 * input_ids.numel() * (4 if OnceSlowModel.calls == 2 else 1))
            return type("Out", (), {"loss": torch.zeros((), requires_grad=True)})()

    batch = {"input_ids": torch.zeros((1, 100), dtype=torch.long), "labels": torch.zeros((1, 100), dtype=torch.long)}
    assert 0.0004 < measure_seconds_per_token(OnceSlowModel(), batch, probe_tokens=100) < 0.001
    OnceSlowModel.calls = 0
    assert measure_seconds_per_token(OnceSlowModel(), batch, probe_tokens=100, repeats=1) > 0.0018


def test_default_learning_rate_follows_method_and_model_size():
    from ktools.train.config import TrainConfig, default_learning_rate

    assert default_learning_rate("full", 135_000_000) == 2e-4
    assert default_learning_rate("lora", 135_000_000) == 2e-4
    assert default_learning_rate("full", 7_000_000_000) == 5e-5
    assert default_learning_rate("lora", 7_000_000_000) == 1e-4
    assert default_learning_rate("full", None) == 2e-4  # unknown size: the embedded student's rate
    assert TrainConfig().effective_learning_rate == 2e-4  # the embedded SmolLM2-135M, counted from its files
    assert TrainConfig(learning_rate=3e-5).effective_learning_rate == 3e-5


def test_step05_follows_step04s_fallback_mix_and_nothing_else(tmp_output, tmp_path, caplog):
    """Step 04 asked for cut 2 with one summary per chunk left builds cut 1 instead and records
    it (mixing.cuts); step 05 asked for cut 2 trains on that mix (a fresh --profile learn run
    stopped here), loudly, and guesses at nothing else."""
    from ktools.paths import OutputPaths

    paths = OutputPaths(tmp_output)
    paths.training_mix_dir.mkdir(parents=True)
    paths.training_mix(1).write_text('{"messages": []}\n')
    feasibility = [{"cut": 1, "status": "fallback", "reason": "built one mix with all 1 per chunk instead"},
                   {"cut": 2, "status": "dropped", "reason": "no chunk has 2 summaries (max 1)"}]
    paths.mix_stats.write_text(json.dumps({"feasibility": feasibility}))
    settings = load_settings(environ={"KTOOLS_OUTPUT_DIR": str(tmp_output), "CUT_SIZES": "2"}, repo_root=tmp_path)
    with caplog.at_level("WARNING"):
        config = TrainConfig.from_settings(settings, cut=2)
    assert config.mix_path == str(paths.training_mix(1))
    assert "step 04 dropped it (no chunk has 2 summaries (max 1)) and built cut 1 instead" in caplog.text
    # A cut step 04 was never asked for is not guessed at: the missing file is named.
    assert TrainConfig.from_settings(settings, cut=5).mix_path == str(paths.training_mix(5))
    # Nor is a cut step 04 built but whose file is gone.
    paths.training_mix(1).unlink()
    assert TrainConfig.from_settings(settings, cut=2).mix_path == str(paths.training_mix(2))
