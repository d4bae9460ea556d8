"""Evaluation with the real embedded model: NLL ranks the true reference first, greedy batched
answers come back in order, and a full step-06 run writes its report (judge failing gracefully)."""

from __future__ import annotations

import json

import pytest

from ktools.evaluate import EvalItem, EvalOptions, run_base_evaluation, run_evaluation
from ktools.evaluate.answering import generate_answers, reference_nll
from ktools.models import load_causal_lm, load_tokenizer
from ktools.paths import OutputPaths

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tokenizer = load_tokenizer()
    tokenizer.padding_side = "left"
    return load_causal_lm(), tokenizer


def test_true_reference_has_lower_nll_than_a_wrong_one(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    questions = ["What is the capital of France?"] * 2 + ["How many days are in a week?"] * 2
    references = ["The capital of France is Paris.", "The capital of France is Banana.",
                  "There are seven days in a week.", "There are forty days in a week."]
    true_fr, wrong_fr, true_wk, wrong_wk = reference_nll(model, tokenizer, questions, references, batch_size=3)
    assert true_fr < wrong_fr and true_wk < wrong_wk


def test_multiple_choice_picks_what_the_model_knows(model_and_tokenizer, repo_root):
    """The base model answers every general question right (assets/README.md); asked them as 4-way
    multiple choice with distractors of the same kind, it must pick the right option nearly always,
    and an option list whose 'right' answer is absurd must score it wrong."""
    from ktools.evaluate.choice import choice_options, score_choices
    from ktools.evaluate.evalset import load_eval_set

    model, tokenizer = model_and_tokenizer
    items = load_eval_set(repo_root / "assets" / "general_questions.jsonl")
    options = choice_options(items, seed=0)
    assert all(o is not None and len(o[0]) == 4 and o[0][o[1]] == i.key_facts[0] for o, i in zip(options, items,
                                                                                               strict=True))
    correct = score_choices(model, tokenizer, [i.question for i in items], options, batch_size=8)
    assert sum(correct) >= 0.85 * len(items), correct
    wrong_key = [(["Paris", "Banana", "Tokyo", "Berlin"], 1)]
    assert score_choices(model, tokenizer, ["What is the capital of France?"], wrong_key) == [0.0]


def test_nll_is_independent_of_batching(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    questions = ["What is the capital of France?", "Name a primary colour, and explain why it is one."]
    references = ["Paris.", "Red is a primary colour because it cannot be mixed from other colours."]
    together = reference_nll(model, tokenizer, questions, references, batch_size=2)
    alone = [reference_nll(model, tokenizer, [q], [r], batch_size=1)[0] for q, r in zip(questions, references,
                                                                                         strict=True)]
    assert together == pytest.approx(alone, abs=1e-3)


def test_batched_greedy_answers_keep_question_order(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    questions = ["What is the capital of France?", "Write the word 'hello' in capital letters, please, now."]
    batched = generate_answers(model, tokenizer, questions, max_new_tokens=10, batch_size=2)
    single = [generate_answers(model, tokenizer, [q], max_new_tokens=10, batch_size=1)[0] for q in questions]
    assert "Paris" in batched[0]
    assert batched == single


def test_step01_then_step06_reports_with_failing_judge(tmp_output):
    class BrokenJudge:
        async def achat(self, messages, params=None, n=1):
            raise RuntimeError("teacher down")

    sets = {"general": [EvalItem("g1", "What is the capital of France?", "Paris", key_facts=("Paris",)),
                        EvalItem("g2", "What is the capital of Japan?", "Tokyo", key_facts=("Tokyo",))]}
    paths = OutputPaths(tmp_output)
    options = EvalOptions(max_new_tokens=8, bootstrap_resamples=200)
    base = run_base_evaluation("SmolLM2-135M-Instruct", sets, paths, options=options, judge_client=BrokenJudge(),
                               progress=False)
    assert paths.base_eval_json.is_file() and paths.base_eval_json.with_suffix(".png").is_file()
    item = base["sets"]["general"]["items"][0]
    assert item["judge_score"] is None and "teacher down" in item["judge_error"]
    assert base["sets"]["general"]["summary"]["judge_failures"] == 2

    # The "fine-tuned" model is the base here: every difference must be exactly zero.
    from ktools.models import embedded_model_dir

    # Step 05 calibrated this "fine-tuned" model: the report must say so.
    paths.step(5).mkdir(parents=True, exist_ok=True)
    (paths.step(5) / "train_report.json").write_text(json.dumps(
        {"model_dir": str(embedded_model_dir()), "calibration": {
            "temperature": 1.4, "set": str(paths.eval_set), "questions": 6, "nll_before": 2.8, "nll_after": 2.5,
            "reason": "applied"}}))
    report = run_evaluation("SmolLM2-135M-Instruct", str(embedded_model_dir()), sets, paths, options=options,
                            judge_client=BrokenJudge(), progress=False)
    assert report["calibration"]["temperature"] == 1.4
    assert "temperature of 1.4 fitted by step 05 on `eval_set.jsonl`" in paths.eval_report_md.read_text()
    assert report["base"]["reused_sets"] == ["general"]  # reused from step 01, not recomputed
    assert report["base"]["sets"]["general"]["items"] == base["sets"]["general"]["items"]
    diff = report["comparison"]["general"]["nll"]["diff"]
    assert diff["mean"] == pytest.approx(0.0, abs=1e-4)
    saved = json.loads(paths.eval_report_json.read_text())
    assert saved["side_by_side"]["general"][0]["base"] == saved["side_by_side"]["general"][0]["tuned"]
    assert paths.eval_report_md.read_text().startswith("# Base vs fine-tuned")
    assert (paths.eval_report_json.parent / "eval_metrics.png").is_file()
