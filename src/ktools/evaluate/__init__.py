"""Evaluation (steps 01 and 06): eval sets, batched greedy answers, metrics (reference NLL,
token F1, ROUGE-L, key facts, LLM judge), bootstrap intervals, reports and plots."""

from ktools.evaluate.evalset import EvalItem, EvalSetError, load_eval_set
from ktools.evaluate.judge import JudgeVerdict, judge_answers, parse_judge_reply
from ktools.evaluate.metrics import key_fact_hit_rate, normalize, rouge_l, token_f1
from ktools.evaluate.report import comparison_rows, summary_rows
from ktools.evaluate.runner import (
    METRICS,
    EvalOptions,
    compare,
    default_eval_sets,
    evaluate_model,
    side_by_side,
)
from ktools.evaluate.stats import bootstrap_ci, paired_bootstrap_diff
from ktools.evaluate.steps import make_judge_client, run_base_evaluation, run_evaluation

__all__ = [
    "METRICS", "comparison_rows", "summary_rows", "EvalItem", "EvalOptions", "EvalSetError", "JudgeVerdict", "bootstrap_ci", "compare",
    "default_eval_sets", "evaluate_model", "judge_answers", "key_fact_hit_rate", "load_eval_set",
    "make_judge_client", "normalize", "paired_bootstrap_diff", "parse_judge_reply", "rouge_l",
    "run_base_evaluation", "run_evaluation", "side_by_side", "token_f1",
]
