"""calibrate_model on a saved model with the real SmolLM2 tokenizer: an overconfident model gets
a temperature above 1 that lowers the held-out NLL, written into its safetensors (greedy
answers unchanged) and into train_report.json; too few held-out questions change nothing."""

from __future__ import annotations

import json

import pytest
import torch

from ktools.io import read_json, write_json
from ktools.train.calibrate import MIN_QUESTIONS, calibrate_model

pytestmark = pytest.mark.slow

ROWS = [
    {"question": "When did the ferry service start?", "answer": "The ferry service started on 3 March 2025."},
    {"question": "How many deckhands must be on board?", "answer": "At least nine deckhands."},
    {"question": "Which channel is used for distress calls?", "answer": "Channel 16."},
    {"question": "What is the maximum load?", "answer": "The maximum load is 26 tonnes."},
    {"question": "Who approves the timetable?", "answer": "The Estuary Board approves the timetable."},
]


@pytest.fixture()
def overconfident_model(tmp_path):
    """A tiny random Llama over the real tokenizer's vocabulary, its logits blown up 30× (an
    overfitted student in miniature: sure of itself and mostly wrong)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ktools.models import load_tokenizer

    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.model.norm.weight.mul_(30.0)
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    return model_dir, tokenizer


def _held_out(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _greedy(model_dir, tokenizer, prompt="The ferry service"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        out = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return logits, out[0].tolist()


def test_an_overconfident_model_is_calibrated_in_its_files_and_its_report(overconfident_model, tmp_path):
    model_dir, tokenizer = overconfident_model
    report = tmp_path / "train_report.json"
    write_json(report, {"steps": 10})
    logits_before, greedy_before = _greedy(model_dir, tokenizer)

    result = calibrate_model(model_dir, _held_out(tmp_path / "eval_set.jsonl", ROWS), report_path=report)

    assert result["reason"] == "applied" and result["questions"] == len(ROWS)
    t = result["temperature"]
    assert t > 1.5
    assert result["nll_after"] < result["nll_before"]
    assert result["parameters"] == ["model.norm.weight"]
    logits_after, greedy_after = _greedy(model_dir, tokenizer)
    assert torch.allclose(logits_after * t, logits_before, rtol=1e-4, atol=1e-3)
    assert greedy_after == greedy_before
    stored = read_json(report)
    assert stored["steps"] == 10 and stored["calibration"]["temperature"] == t


def test_too_few_held_out_questions_leave_the_model_as_it_was(overconfident_model, tmp_path):
    model_dir, _ = overconfident_model
    weights = (model_dir / "model.safetensors").read_bytes()
    result = calibrate_model(model_dir, _held_out(tmp_path / "eval_set.jsonl", ROWS[: MIN_QUESTIONS - 1]))
    assert result["temperature"] == 1.0 and result["reason"].startswith("skipped")
    assert str(tmp_path) not in result["reason"]  # reasons name files, not (a pod's scratch) paths
    missing = calibrate_model(model_dir, tmp_path / "no_such_eval_set.jsonl")
    assert missing["temperature"] == 1.0 and missing["questions"] == 0
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")  # what step 04 writes when the data is too small to hold anything out
    assert calibrate_model(model_dir, empty)["reason"].startswith("skipped")
    broken = _held_out(tmp_path / "broken.jsonl", [{"question": "No answer field"}] * 4)
    reason = calibrate_model(model_dir, broken)["reason"]
    assert "not usable" in reason and "broken.jsonl" in reason and str(tmp_path) not in reason
    assert (model_dir / "model.safetensors").read_bytes() == weights
