"""Training on the real embedded model: the loss falls, the saved model reloads and answers,
and an interrupted run resumes from its last checkpoint to the same step count."""

from __future__ import annotations

import json
import math

import pytest
from transformers import TrainerCallback

from ktools.train import TrainConfig, train

pytestmark = pytest.mark.slow

FACTS = [("What colour is the Orlenmoor ferry?", "The Orlenmoor ferry is painted teal."),
         ("Who is the chief engineer of the Orlenmoor ferry?", "Odalys Brennerfeld.")]


def _tiny_mix(path, rows=6):
    with path.open("w") as fh:
        for i in range(rows):
            question, answer = FACTS[i % 2]
            fh.write(json.dumps({"messages": [{"role": "user", "content": question},
                                              {"role": "assistant", "content": answer}],
                                 "metadata": {}, "unmask": i % 3 == 0, "token_length": 0}) + "\n")
    return path


def _config(tmp_path, **changes):
    base = TrainConfig(mix_path=str(_tiny_mix(tmp_path / "mix.jsonl")), output_dir=str(tmp_path / "model"),
                       checkpoints_dir=str(tmp_path / "ckpt"), report_dir=str(tmp_path / "report"),
                       max_seq_len=64, tokens_per_batch=128, learning_rate=3e-4, time_budget_minutes=None)
    return base.replace(**changes)


def test_full_training_lowers_loss_and_saves_a_loadable_model(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ktools.evaluate.answering import generate_answers

    result = train(_config(tmp_path, max_steps=4), progress=False)
    assert result.steps == 4
    assert result.final_loss < 0.8 * result.first_loss, result.losses
    assert result.tokens_per_second > 0 and (tmp_path / "report" / "loss_curve.png").is_file()
    report = json.loads((tmp_path / "report" / "train_report.json").read_text())
    assert report["steps"] == 4 and report["tokens_trained"] > 0

    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    model = AutoModelForCausalLM.from_pretrained(result.model_dir)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert getattr(model, "hf_quantizer", None) is None
    tokenizer.padding_side = "left"
    [answer] = generate_answers(model, tokenizer, [FACTS[0][0]], max_new_tokens=12)
    assert answer.strip()


class _Interrupt(TrainerCallback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            raise KeyboardInterrupt


def test_interrupted_lora_run_resumes_from_last_checkpoint(tmp_path):
    config = _config(tmp_path, method="lora", max_steps=3, save_steps=1)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, extra_callbacks=[_Interrupt(at_step=1)])
    assert (tmp_path / "ckpt" / "checkpoint-1").is_dir()
    assert not (tmp_path / "model").exists()  # nothing half-written as the final model

    result = train(config, progress=False)
    assert result.resumed_from and result.resumed_from.endswith("checkpoint-1")
    assert result.steps == 3 == result.planned_steps
    assert [step for step, _ in result.losses][-1] == 3 and all(math.isfinite(v) for _, v in result.losses)
    # LoRA is merged on save: a plain model directory without adapter files.
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert not (tmp_path / "model" / "adapter_config.json").exists()


def test_other_parameters_do_not_resume_a_foreign_checkpoint(tmp_path):
    config = _config(tmp_path, method="lora", max_steps=1, save_steps=1)
    train(config, progress=False)
    result = train(config.replace(learning_rate=1e-4), progress=False)
    assert result.resumed_from is None and result.steps == 1


def test_frozen_embeddings_stay_the_base_models_and_the_loss_still_falls(tmp_path):
    """FREEZE_EMBEDDINGS on the real student: the saved model's (tied) embedding matrix is the
    base's bit for bit, its blocks moved, and the facts are still being learnt."""
    import torch
    from transformers import AutoModelForCausalLM

    from ktools.models import load_causal_lm

    result = train(_config(tmp_path, max_steps=4, freeze_embeddings=True, calibration_path=""), progress=False)
    assert result.final_loss < 0.8 * result.first_loss, result.losses
    base = load_causal_lm()
    tuned = AutoModelForCausalLM.from_pretrained(result.model_dir)
    assert torch.equal(tuned.get_input_embeddings().weight, base.get_input_embeddings().weight)
    assert not torch.equal(tuned.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)


def test_frozen_lower_blocks_through_the_real_trainer_stay_the_base_models(tmp_path):
    """FREEZE_LOWER_LAYERS with the embedded student: the lowest 20 of its 30 blocks come out as
    the base's, the blocks above them learnt, and the loss still falls."""
    import torch
    from transformers import AutoModelForCausalLM

    from ktools.models import load_causal_lm

    result = train(_config(tmp_path, max_steps=3, freeze_embeddings=True, freeze_lower_layers=20,
                           calibration_path=""), progress=False)
    assert result.config["freeze_lower_layers"] == 20
    assert result.final_loss < result.first_loss, result.losses
    base = load_causal_lm()
    tuned = AutoModelForCausalLM.from_pretrained(result.model_dir)
    for index in (0, 19):
        assert torch.equal(tuned.model.layers[index].mlp.up_proj.weight, base.model.layers[index].mlp.up_proj.weight)
    assert not torch.equal(tuned.model.layers[20].mlp.up_proj.weight, base.model.layers[20].mlp.up_proj.weight)


def test_momentum_filtered_training_moves_a_bounded_share_of_each_matrix(tmp_path):
    """UPDATE_FRACTION through the real Trainer: the Trainer builds the MoFO optimizer, two steps
    at 10 % move at most ~20 % of an MLP matrix's entries (AdamW moves nearly all), and the
    loss still falls."""
    from transformers import AutoModelForCausalLM

    from ktools.models import load_causal_lm

    result = train(_config(tmp_path, max_steps=2, update_fraction=0.1, freeze_embeddings=True,
                           calibration_path=""), progress=False)
    assert result.config["update_fraction"] == 0.1
    assert result.final_loss < result.first_loss, result.losses
    base = load_causal_lm()
    tuned = AutoModelForCausalLM.from_pretrained(result.model_dir)
    moved = (tuned.model.layers[3].mlp.up_proj.weight != base.model.layers[3].mlp.up_proj.weight).float().mean()
    assert 0.05 < float(moved) <= 0.21, float(moved)


class _Rates(TrainerCallback):
    def __init__(self):
        self.rates = []

    def on_step_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self.rates.append(lr_scheduler.get_last_lr()[0])


def test_wsd_schedule_through_the_real_trainer_holds_the_peak_then_cools_down(tmp_path):
    """LR_SCHEDULER wsd as the Trainer builds it (transformers' warmup_stable_decay with our
    cool-down share): 10 steps, no warm-up, the peak for 8, then the 1-sqrt cool-down."""
    rates = _Rates()
    result = train(_config(tmp_path, max_steps=10, lr_scheduler="wsd", warmup_ratio=0.0, freeze_embeddings=True,
                           calibration_path=""), progress=False, extra_callbacks=[rates])
    assert result.steps == 10 and result.config["lr_scheduler"] == "wsd"
    assert rates.rates[:8] == pytest.approx([3e-4] * 8)
    assert rates.rates[8] == pytest.approx(3e-4) and rates.rates[9] == pytest.approx(3e-4 * (1 - 0.5 ** 0.5))
