"""Metrics on hand-made cases, the judge parser on off-format replies, bootstrap sanity, eval-set errors."""

from __future__ import annotations

import json

import pytest

from ktools.evaluate import (
    EvalSetError,
    bootstrap_ci,
    key_fact_hit_rate,
    load_eval_set,
    paired_bootstrap_diff,
    parse_judge_reply,
    rouge_l,
    token_f1,
)
from ktools.evaluate.runner import EvalOptions, compare, summarize

REF = "The ferry leaves Tillwick at 07:40 from Pier 3."


def test_perfect_answer_scores_one():
    assert token_f1(REF, REF) == 1.0
    assert rouge_l(REF, REF) == pytest.approx(1.0)
    assert key_fact_hit_rate(REF, ["07:40", "Pier 3"]) == 1.0


def test_wrong_answer_scores_zero():
    wrong = "Bananas are yellow"
    assert token_f1(wrong, REF) == 0.0
    assert rouge_l(wrong, REF) == 0.0
    assert key_fact_hit_rate(wrong, ["07:40", "Pier 3"]) == 0.0


def test_empty_answer_scores_zero():
    assert token_f1("", REF) == 0.0
    assert rouge_l("", REF) == 0.0
    assert key_fact_hit_rate("", ["07:40"]) == 0.0


def test_partial_answer_is_between():
    partial = "It leaves at 07:40."
    assert 0.0 < token_f1(partial, REF) < 1.0
    assert 0.0 < rouge_l(partial, REF) < 1.0
    assert key_fact_hit_rate(partial, ["07:40", "Pier 3"]) == 0.5


def test_normalization_ignores_case_punctuation_articles():
    assert token_f1("the FERRY, leaves!", "ferry leaves") == 1.0
    assert key_fact_hit_rate("Run by odalys brennerfeld.", ["Odalys Brennerfeld"]) == 1.0
    # whole words only: "Pier 30" is not "Pier 3"
    assert key_fact_hit_rate("from pier 30", ["Pier 3"]) == 0.0
    assert key_fact_hit_rate("anything", []) is None


@pytest.mark.parametrize("answer, fact", [
    ("A hexagon has 6 sides.", "six"),              # number words and digits are one form
    ("It has six sides.", "6"),
    ("Twenty-one knots at most.", "21 knots"),
    ("one hundred and five berths", "105"),
    ("about 1,000 passengers", "1000"),             # a thousands separator is not a word break
    ("located in the Egyptian desert", "Egypt"),    # the adjective made from the fact
    ("Italian and Chinese food", "Italy"),
    ("Italian and Chinese food", "China"),
    ("a speed of 12 knots", "12 knot"),              # plural
    ("Egypt's capital", "Egypt"),
])
def test_key_facts_match_numbers_and_word_forms(answer, fact):
    assert key_fact_hit_rate(answer, [fact]) == 1.0


@pytest.mark.parametrize("answer, fact", [
    ("from pier 30", "Pier 3"),      # digits are whole numbers
    ("sixty sides", "6"),
    ("Marshal law", "Mars"),         # only listed endings, not any longer word
    ("a cold day", "cod"),
    ("07:41", "07:40"),
    ("the Egypt", "Egyptian"),       # the longer form is not implied by the shorter
])
def test_key_facts_do_not_match_other_words(answer, fact):
    assert key_fact_hit_rate(answer, [fact]) == 0.0


@pytest.mark.parametrize("reply, score", [
    ("Score: 4\nReason: correct but misses the pier.", 4.0),
    ("4/5 - mostly right", 4.0),
    ("**Rating**: 3\nThe answer is partly correct.", 3.0),
    ("I would give this 2 out of 5 because the time is wrong.", 2.0),
    ("5", 5.0),
    ("Score: **5**", 5.0),
    ("The answer is wrong.", None),
    ("", None),
    (None, None),
    ("Score: 9", None),
])
def test_judge_parser_handles_off_format_replies(reply, score):
    assert parse_judge_reply(reply)[0] == score


def test_judge_parser_extracts_reason():
    score, reason = parse_judge_reply("Score: 2\nReason: the departure time is wrong.")
    assert score == 2.0 and reason == "the departure time is wrong."


def test_bootstrap_interval_contains_mean_and_narrows_with_n():
    small = bootstrap_ci([0, 1] * 5, seed=1)
    large = bootstrap_ci([0, 1] * 500, seed=1)
    for ci in (small, large):
        assert ci["lo"] <= ci["mean"] <= ci["hi"]
        assert ci["mean"] == pytest.approx(0.5)
    assert (large["hi"] - large["lo"]) < (small["hi"] - small["lo"]) / 3
    constant = bootstrap_ci([0.7] * 20)
    assert constant["lo"] == constant["hi"] == pytest.approx(0.7)
    assert bootstrap_ci([None, None])["mean"] is None
    assert bootstrap_ci([1.0, None, 3.0])["n"] == 2


def test_paired_difference_detects_a_consistent_gain():
    before = [0.1 * i for i in range(20)]
    after = [b + 0.5 for b in before]
    diff = paired_bootstrap_diff(before, after)
    assert diff["mean"] == pytest.approx(0.5) and diff["lo"] > 0


def _result(values: dict[str, list[float]]) -> dict:
    items = [{"id": f"q{i}", "nll": values["nll"][i], "token_f1": values["f1"][i], "rouge_l": values["f1"][i],
              "key_fact_hit": None, "judge_score": None} for i in range(len(values["nll"]))]
    return {"sets": {"exam": {"items": items, "summary": summarize(items, EvalOptions())}}}


def test_compare_verdicts_respect_metric_direction():
    base = _result({"nll": [3.0] * 10, "f1": [0.1] * 10})
    tuned = _result({"nll": [1.0 + 0.01 * i for i in range(10)], "f1": [0.6 + 0.01 * i for i in range(10)]})
    comparison = compare(base, tuned)["exam"]
    assert comparison["nll"]["verdict"] == "better"  # lower NLL is better
    assert comparison["token_f1"]["verdict"] == "better"
    assert comparison["key_fact_hit"]["verdict"] is None
    worse = compare(tuned, base)["exam"]
    assert worse["nll"]["verdict"] == "worse"


def test_eval_set_errors_name_file_line_and_field(tmp_path):
    path = tmp_path / "exam.jsonl"
    path.write_text(json.dumps({"question": "Q?", "answer": "A"}) + "\n" + json.dumps({"question": "Q2?"}) + "\n")
    with pytest.raises(EvalSetError, match=r"exam.jsonl, line 2: field 'answer'"):
        load_eval_set(path)
    assert [i.id for i in load_eval_set(path, limit=1)] == ["item0001"]
    path.write_text(json.dumps({"id": "a", "question": "Q?", "answer": "A"}) + "\n"
                    + json.dumps({"id": "a", "question": "Q?", "answer": "B"}) + "\n")
    with pytest.raises(EvalSetError, match="duplicate ids"):
        load_eval_set(path)


def test_shipped_eval_sets_load(repo_root):
    for rel in ("assets/general_questions.jsonl", "assets/sample/exam.jsonl"):
        path = repo_root / rel
        if path.is_file():
            assert load_eval_set(path)


def test_paired_ratio_interval_follows_the_pairs_and_handles_a_zero_base():
    from ktools.evaluate.stats import paired_bootstrap_ratio

    before = [1.0] * 10 + [0.0] * 10
    after = [1.0] * 9 + [0.0] * 11  # one of ten lost: 90 %
    ratio = paired_bootstrap_ratio(before, after)
    assert ratio["mean"] == pytest.approx(0.9) and ratio["lo"] < 0.9 <= ratio["hi"] <= 1.0
    assert paired_bootstrap_ratio([0.0] * 5, [1.0] * 5)["mean"] is None  # nothing to divide by
    sparse = paired_bootstrap_ratio([1.0] + [0.0] * 9, [1.0] * 10)  # many resamples miss the one base hit
    assert sparse["mean"] == pytest.approx(10.0) and sparse["hi"] == float("inf")


def _headline_report() -> dict:
    def items(hits, nlls):
        return [{"id": f"q{i}", "key_fact_hit": h, "nll": n} for i, (h, n) in enumerate(zip(hits, nlls, strict=True))]

    base = {"exam": {"items": items([0.0] * 18 + [1.0] * 2, [4.0] * 20)},
            "general": {"items": items([1.0] * 20, [3.0] * 20)}}
    tuned = {"exam": {"items": items([0.0] * 12 + [1.0] * 8, [2.8] * 20)},
             "general": {"items": items([1.0] * 18 + [0.0] * 2, [3.3] * 20)}}
    return {"base": {"sets": base}, "tuned": {"sets": tuned}}


def test_headline_states_ratios_changes_and_retention():
    from ktools.evaluate.headline import headline, headline_lines, headline_markdown

    h = headline(_headline_report())
    assert h["exam"]["key_facts_ratio"]["mean"] == pytest.approx(4.0)
    assert h["exam"]["key_facts_diff"]["mean"] == pytest.approx(0.3)
    assert h["exam"]["nll_change"]["mean"] == pytest.approx(-0.3)  # 4.0 -> 2.8 is 30 % lower
    assert h["exam"]["nll_change"]["lo"] == pytest.approx(-0.3)  # every question moved alike
    assert h["general"]["retention"]["mean"] == pytest.approx(0.9)
    text = "\n".join(headline_markdown(h))
    assert "| exam | ×4.0 [" in text and "-30% [-30%, -30%]" in text and "| general | 90% [" in text
    assert any(line.startswith("general: 90% [") for line in headline_lines(h))
