"""Per-set reuse of earlier base-model results (step 06 after step 01) without a model."""

from __future__ import annotations

import dataclasses

import pytest

from ktools.evaluate import EvalItem, EvalOptions, evaluate_model
from ktools.evaluate.runner import answer_budget, model_fingerprint, set_fingerprint
from ktools.evaluate.steps import earlier_base_results
from ktools.io import write_json
from ktools.paths import OutputPaths

ITEMS = [EvalItem("g1", "Capital of France?", "Paris", key_facts=("Paris",))]


def _row(item: EvalItem) -> dict:
    return {**item.to_dict(), "reference": item.answer, "prediction": "Paris.", "nll": 1.0, "token_f1": 1.0,
            "rouge_l": 1.0, "key_fact_hit": 1.0, "judge_score": None, "judge_reason": None, "judge_error": None}


@pytest.fixture
def weights(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    return model


def test_set_fingerprint_changes_with_weights_items_and_scoring_options(weights):
    fp = model_fingerprint(str(weights))
    base = set_fingerprint(fp, ITEMS, EvalOptions(), None)
    assert base == set_fingerprint(fp, list(ITEMS), EvalOptions(bootstrap_resamples=10, seed=3), None)
    assert base != set_fingerprint(fp, ITEMS, EvalOptions(max_new_tokens=8), None)
    assert base != set_fingerprint(fp, [dataclasses.replace(ITEMS[0], answer="Lyon")], EvalOptions(), None)
    assert base != set_fingerprint(fp, ITEMS, EvalOptions(judge=True), "teacher")
    (weights / "model.safetensors").write_bytes(b"retrained weights")
    assert model_fingerprint(str(weights)) != fp


def test_all_sets_reused_means_no_model_is_loaded(weights, monkeypatch):
    import ktools.models

    def no_loading(*args, **kwargs):
        raise AssertionError("model loaded")

    monkeypatch.setattr(ktools.models, "load_tokenizer", no_loading)
    monkeypatch.setattr(ktools.models, "load_causal_lm", no_loading)
    options = EvalOptions(bootstrap_resamples=50)
    fp = set_fingerprint(model_fingerprint(str(weights)), ITEMS, options, None)
    earlier = {"general": {"items": [_row(ITEMS[0])], "fingerprint": fp, "max_new_tokens": 32}}
    result = evaluate_model(str(weights), {"general": ITEMS}, options=options, progress=False, reuse=earlier)
    assert result["reused_sets"] == ["general"]
    assert result["sets"]["general"]["items"] == earlier["general"]["items"]
    assert result["sets"]["general"]["summary"]["token_f1"]["mean"] == 1.0

    # A stale fingerprint (other weights, questions or options) is not reused.
    stale = {"general": {**earlier["general"], "fingerprint": "0" * 16}}
    with pytest.raises(AssertionError, match="model loaded"):
        evaluate_model(str(weights), {"general": ITEMS}, options=options, progress=False, reuse=stale)


def test_earlier_base_results_from_step01_and_an_earlier_step06(tmp_path):
    paths = OutputPaths(tmp_path / "output")
    write_json(paths.base_eval_json, {"sets": {"exam": {"fingerprint": "a", "items": []},
                                               "old": {"items": []}}})  # no fingerprint: never reused
    write_json(paths.eval_report_json, {"base": {"sets": {"held_out": {"fingerprint": "b", "items": []}}}})
    assert sorted(earlier_base_results(paths)) == ["exam", "held_out"]
    paths.eval_report_json.write_text("{torn")
    assert sorted(earlier_base_results(paths)) == ["exam"]


class _Tokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def test_answer_budget_shortens_short_answer_sets_only():
    options = EvalOptions(max_new_tokens=256)
    assert answer_budget(options, _Tokenizer(), ["Paris", "Tokyo is it"]) == 64  # the floor
    assert answer_budget(options, _Tokenizer(), ["word " * 20]) == 80
    assert answer_budget(options, _Tokenizer(), ["word " * 80]) == 256
    assert answer_budget(EvalOptions(max_new_tokens=256, fit_answer_length=False), _Tokenizer(), ["Paris"]) == 256
    assert answer_budget(EvalOptions(max_new_tokens=16), _Tokenizer(), ["Paris"]) == 16
    # At the default 64 every set gets 64: a short-reference set is no longer cut at 32.
    assert answer_budget(EvalOptions(), _Tokenizer(), ["Paris"]) == 64
    assert answer_budget(EvalOptions(min_answer_tokens=32), _Tokenizer(), ["Paris"]) == 32


def test_a_base_run_with_another_answer_floor_is_not_reused():
    assert (set_fingerprint("m", ITEMS, EvalOptions(min_answer_tokens=32), None)
            != set_fingerprint("m", ITEMS, EvalOptions(), None))


def test_the_sample_is_recognised_by_its_bytes_from_another_checkout(tmp_path, repo_root):
    # An output folder made from another clone or worktree names the sample by that checkout's
    # path: the hand-written exam must still apply (it once silently vanished from step 06).
    import hashlib
    import shutil

    from ktools.documents.manifest import Manifest, ManifestEntry
    from ktools.evaluate.runner import is_sample_corpus

    sample = repo_root / "assets" / "sample" / "sample_document.md"
    paths = OutputPaths(tmp_path / "output")

    def manifest_of(source, data: bytes) -> None:
        entry = ManifestEntry(source=str(source), sha256=hashlib.sha256(data).hexdigest(), converter="text",
                              output="x.md", characters=len(data))
        paths.conversion_manifest.parent.mkdir(parents=True, exist_ok=True)
        Manifest(documents=[entry]).write(paths.conversion_manifest)

    manifest_of("/elsewhere/ktools/assets/sample/sample_document.md", sample.read_bytes())
    assert is_sample_corpus(None, paths, repo_root)
    manifest_of("/elsewhere/manual.md", b"# A manual of someone else's\n")
    assert not is_sample_corpus(None, paths, repo_root)

    copy = tmp_path / "my_copy.md"
    shutil.copy(sample, copy)
    assert is_sample_corpus([copy], paths, repo_root)
    other = tmp_path / "mine.md"
    other.write_text("# Mine\n")
    assert not is_sample_corpus([other], paths, repo_root)
    assert not is_sample_corpus([copy, other], paths, repo_root)
    assert is_sample_corpus([sample], paths, repo_root)


def test_reused_answers_are_scored_with_todays_text_metrics(weights, monkeypatch):
    """A base run stored before a change to the key-fact rule is re-scored from its stored
    answer, so base and tuned are compared under one rule (answers and NLL stay as stored)."""
    item = EvalItem("g2", "How many sides does a hexagon have?", "Six.", key_facts=("six",))
    options = EvalOptions(bootstrap_resamples=50)
    fp = set_fingerprint(model_fingerprint(str(weights)), [item], options, None)
    stored = {**_row(item), "prediction": "A hexagon has 6 sides.", "key_fact_hit": 0.0, "token_f1": 0.0,
              "nll": 2.5}
    earlier = {"general": {"items": [stored], "fingerprint": fp, "max_new_tokens": 32}}
    result = evaluate_model(str(weights), {"general": [item]}, options=options, progress=False, reuse=earlier)
    row = result["sets"]["general"]["items"][0]
    assert row["key_fact_hit"] == 1.0 and row["prediction"] == "A hexagon has 6 sides." and row["nll"] == 2.5
    assert row["token_f1"] == 0.0   # "six" and "6" share no token; F1 stays a plain text overlap
    assert result["sets"]["general"]["summary"]["key_fact_hit"]["mean"] == 1.0
