"""Temperature calibration after training: the choice of T, and folding it into the weights
so every logit is divided by T (and nothing else changes) on the architectures that allow it."""

from __future__ import annotations

import math

import pytest
import torch

from ktools.train.calibrate import (
    TEMPERATURES,
    choose_temperature,
    logit_scale_parameters,
    scale_logits,
    write_scaled_tensors,
)


def _curve(best: float, depth: float) -> list[float]:
    # NLL(T) = 2 + depth * (log T - log best)^2: lowest at `best`.
    return [2.0 + depth * (math.log(t) - math.log(best)) ** 2 for t in TEMPERATURES]


def test_choose_temperature_takes_the_lowest_held_out_nll():
    t = choose_temperature(_curve(1.4, 1.0))
    assert abs(t - 1.4) / 1.4 < 0.05
    assert choose_temperature(_curve(0.7, 1.0)) < 1.0  # sharpening is allowed when it fits better


def test_choose_temperature_keeps_one_when_the_gain_is_negligible_or_unknown():
    assert choose_temperature(_curve(1.2, 0.001)) == 1.0  # < 0.5 % better than T = 1
    assert choose_temperature([math.nan] * len(TEMPERATURES)) == 1.0


def test_temperature_grid_covers_one_and_both_sides():
    assert min(TEMPERATURES) <= 0.5 and max(TEMPERATURES) >= 3.5
    assert 1.0 in TEMPERATURES  # the uncalibrated NLL is reported at exactly T = 1


def _tiny_llama(tie: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=tie)
    return LlamaForCausalLM(config).eval()


def _tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=4)).eval()


def _tiny_gemma():
    from transformers import GemmaConfig, GemmaForCausalLM

    torch.manual_seed(0)
    config = GemmaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64)
    model = GemmaForCausalLM(config).eval()
    with torch.no_grad():
        model.model.norm.weight.normal_()  # Gemma's norm scales by (1 + weight): zero would hide that
    return model


PROBE = torch.tensor([[3, 5, 7, 11, 13, 17, 19, 23]])


@pytest.mark.parametrize("make, expected", [
    (lambda: _tiny_llama(tie=True), ["model.norm.weight"]),
    (lambda: _tiny_llama(tie=False), ["model.norm.weight"]),
    (_tiny_gpt2, ["transformer.ln_f.weight", "transformer.ln_f.bias"]),
], ids=["llama-tied", "llama-untied", "gpt2-layernorm"])
def test_scale_logits_divides_every_logit_and_keeps_greedy_choices(make, expected):
    model = make()
    with torch.no_grad():
        before = model(input_ids=PROBE).logits
    names = scale_logits(model, 1.6, PROBE)
    assert names == expected
    with torch.no_grad():
        after = model(input_ids=PROBE).logits
    assert torch.allclose(after * 1.6, before, atol=1e-5)
    assert torch.equal(after.argmax(-1), before.argmax(-1))


def test_scale_logits_leaves_a_model_alone_when_its_parameter_does_not_scale_the_logits():
    model = _tiny_gemma()
    assert logit_scale_parameters(model) == ["model.norm.weight"]  # a candidate …
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert scale_logits(model, 1.6, PROBE) == []  # … refused by the forward check: (1 + w) / T ≠ (1 + w / T)
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())


def test_write_scaled_tensors_rewrites_only_the_scaled_parameter(tmp_path):
    from safetensors.torch import load_file

    model = _tiny_llama()
    model.save_pretrained(tmp_path, safe_serialization=True)
    saved = load_file(str(tmp_path / "model.safetensors"))
    names = scale_logits(model, 2.0, PROBE)
    assert write_scaled_tensors(tmp_path, model, names) == ["model.norm.weight"]
    rewritten = load_file(str(tmp_path / "model.safetensors"))
    assert set(rewritten) == set(saved)
    assert torch.allclose(rewritten["model.norm.weight"] * 2.0, saved["model.norm.weight"])
    assert all(torch.equal(rewritten[k], saved[k]) for k in saved if k != "model.norm.weight")
    assert not list(tmp_path.glob("*.tmp"))


def test_step_06_notes_the_calibration_only_of_the_model_it_evaluates(tmp_path):
    import json

    from ktools.evaluate.steps import tuned_calibration
    from ktools.paths import OutputPaths

    paths = OutputPaths(tmp_path)
    assert tuned_calibration(paths, str(tmp_path / "model")) is None  # no step-05 report
    paths.step(5).mkdir(parents=True)
    report = paths.step(5) / "train_report.json"
    calibration = {"temperature": 1.4, "set": "eval_set.jsonl", "questions": 6, "nll_before": 2.8, "nll_after": 2.5}
    report.write_text(json.dumps({"model_dir": str(tmp_path / "model"),
                                  "calibration": {**calibration, "reason": "applied"}}))
    assert tuned_calibration(paths, str(tmp_path / "model")) == calibration
    assert tuned_calibration(paths, str(tmp_path / "other_model")) is None
    report.write_text(json.dumps({"model_dir": str(tmp_path / "model"),
                                  "calibration": {**calibration, "temperature": 1.0, "reason": "skipped: …"}}))
    assert tuned_calibration(paths, str(tmp_path / "model")) is None
