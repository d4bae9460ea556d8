"""Evaluate a model on eval sets, compare two models, write the step 01 / step 06 outputs."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ktools.evaluate.evalset import EvalItem, load_eval_set
from ktools.evaluate.metrics import key_fact_hit_rate, rouge_l, token_f1
from ktools.evaluate.stats import bootstrap_ci, paired_bootstrap_diff
from ktools.io import iter_jsonl

log = logging.getLogger(__name__)

# metric -> True when higher is better
METRICS: dict[str, bool] = {"nll": False, "token_f1": True, "rouge_l": True, "key_fact_hit": True,
                            "judge_score": True}
METRIC_LABELS = {"nll": "reference NLL (↓)", "token_f1": "token F1", "rouge_l": "ROUGE-L",
                 "key_fact_hit": "key-fact hit rate", "judge_score": "judge score (1–5)"}


@dataclass(frozen=True)
class EvalOptions:
    max_new_tokens: int = 64
    batch_size: int = 16
    judge: bool = True
    judge_max_tokens: int = 80
    bootstrap_resamples: int = 2000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_OPTIONS = EvalOptions()


def default_eval_sets(paths: Any, repo_root: Path, *, held_out_limit: int | None = 60,
                      exam_limit: int | None = None, general_limit: int | None = None,
                      exam_path: str | Path | None = None) -> dict[str, list[EvalItem]]:
    """The exam, the general-knowledge (forgetting) check and step 04's held-out set, where present."""
    candidates = {
        "exam": (Path(exam_path) if exam_path else repo_root / "assets" / "sample" / "exam.jsonl", exam_limit),
        "general": (repo_root / "assets" / "general_questions.jsonl", general_limit),
        "held_out": (paths.eval_set, held_out_limit),
    }
    sets = {}
    for name, (path, limit) in candidates.items():
        if limit == 0:
            continue
        if Path(path).is_file():
            if name == "held_out" and not any(True for _ in iter_jsonl(path)):
                # Step 04 holds nothing out when the data is too small to split.
                log.warning("held-out set %s is empty (step 04 held nothing out); skipped", path)
                continue
            sets[name] = load_eval_set(path, limit)
        else:
            log.info("eval set %s not found at %s; skipped", name, path)
    if not sets:
        raise FileNotFoundError("no eval set found (exam, general questions or output/step_04/eval_set.jsonl)")
    return sets


def sets_fingerprint(sets: Mapping[str, Sequence[EvalItem]]) -> str:
    data = {name: [(i.id, i.question, i.answer) for i in items] for name, items in sets.items()}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled)


def summarize(items: Sequence[Mapping[str, Any]], options: EvalOptions) -> dict[str, Any]:
    summary = {metric: bootstrap_ci([i.get(metric) for i in items], n_resamples=options.bootstrap_resamples,
                                    seed=options.seed) for metric in METRICS}
    nll = summary["nll"]
    summary["perplexity"] = ({"mean": math.exp(nll["mean"]), "lo": math.exp(nll["lo"]), "hi": math.exp(nll["hi"]),
                              "n": nll["n"]} if nll["mean"] is not None else {"mean": None, "lo": None,
                                                                               "hi": None, "n": 0})
    summary["judge_failures"] = sum(1 for i in items if i.get("judge_error"))
    return summary


def evaluate_model(model_name: str, sets: Mapping[str, Sequence[EvalItem]], *,
                   options: EvalOptions = DEFAULT_OPTIONS, judge_client: Any = None, progress: bool = True,
                   label: str = "model") -> dict[str, Any]:
    """Answers, NLL, overlap metrics and judge scores of one model on every set."""
    from ktools.evaluate.answering import generate_answers, reference_nll
    from ktools.evaluate.judge import judge_answers
    from ktools.models import load_causal_lm, load_tokenizer, resolve_model_path
    from ktools.train.threads import choose_torch_threads

    threads = choose_torch_threads()
    start = time.perf_counter()
    tokenizer = load_tokenizer(model_name)
    tokenizer.padding_side = "left"
    model = load_causal_lm(model_name)
    result: dict[str, Any] = {"label": label, "model": model_name, "model_path": resolve_model_path(model_name),
                              "options": options.to_dict(), "fingerprint": sets_fingerprint(sets), "sets": {}}
    timings = {"generate": 0.0, "nll": 0.0, "judge": 0.0}
    for name, items in sets.items():
        questions = [i.question for i in items]
        references = [i.answer for i in items]
        t0 = time.perf_counter()
        with _progress(len(items), f"{label}: answering {name}", progress) as bar:
            answers = generate_answers(model, tokenizer, questions, max_new_tokens=options.max_new_tokens,
                                       batch_size=options.batch_size, progress=bar)
        t1 = time.perf_counter()
        with _progress(len(items), f"{label}: reference NLL {name}", progress) as bar:
            nlls = reference_nll(model, tokenizer, questions, references, batch_size=options.batch_size,
                                 progress=bar)
        t2 = time.perf_counter()
        verdicts = None
        if options.judge and judge_client is not None:
            with _progress(len(items), f"{label}: judging {name}", progress) as bar:
                verdicts = judge_answers(judge_client, questions, references, answers,
                                         max_tokens=options.judge_max_tokens, progress=bar)
        timings["generate"] += t1 - t0
        timings["nll"] += t2 - t1
        timings["judge"] += time.perf_counter() - t2
        rows = []
        for k, item in enumerate(items):
            row = {**item.to_dict(), "reference": item.answer, "prediction": answers[k],
                   "nll": None if math.isnan(nlls[k]) else nlls[k],
                   "token_f1": token_f1(answers[k], item.answer), "rouge_l": rouge_l(answers[k], item.answer),
                   "key_fact_hit": key_fact_hit_rate(answers[k], item.key_facts),
                   "judge_score": None, "judge_reason": None, "judge_error": None}
            row.pop("answer")
            if verdicts is not None:
                row.update(judge_score=verdicts[k].score, judge_reason=verdicts[k].reason,
                           judge_error=verdicts[k].error)
            elif options.judge:
                row["judge_error"] = "no judge client"
            rows.append(row)
        result["sets"][name] = {"items": rows, "summary": summarize(rows, options)}
    result["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    result["seconds"]["total"] = round(time.perf_counter() - start, 1)
    result["torch_threads"] = threads
    del model
    return result


def compare(base: Mapping[str, Any], tuned: Mapping[str, Any], options: EvalOptions = DEFAULT_OPTIONS
            ) -> dict[str, Any]:
    """Per set and metric: base, tuned, and the paired difference (tuned − base) with its interval."""
    comparison: dict[str, Any] = {}
    for name, tuned_set in tuned["sets"].items():
        base_set = base["sets"].get(name)
        if base_set is None:
            continue
        base_items = {i["id"]: i for i in base_set["items"]}
        pairs = [(base_items[i["id"]], i) for i in tuned_set["items"] if i["id"] in base_items]
        metrics = {}
        for metric, higher_better in METRICS.items():
            diff = paired_bootstrap_diff([b.get(metric) for b, _ in pairs], [t.get(metric) for _, t in pairs],
                                         n_resamples=options.bootstrap_resamples, seed=options.seed)
            improved = None
            if diff["mean"] is not None:
                sign = 1 if higher_better else -1
                lo, hi = sign * diff["lo"], sign * diff["hi"]
                improved = "better" if min(lo, hi) > 0 else "worse" if max(lo, hi) < 0 else "no clear change"
            metrics[metric] = {"base": base_set["summary"][metric], "tuned": tuned_set["summary"][metric],
                               "diff": diff, "verdict": improved, "higher_is_better": higher_better}
        metrics["perplexity"] = {"base": base_set["summary"]["perplexity"],
                                 "tuned": tuned_set["summary"]["perplexity"]}
        comparison[name] = metrics
    return comparison


def side_by_side(base: Mapping[str, Any], tuned: Mapping[str, Any], set_name: str, n: int = 8
                 ) -> list[dict[str, Any]]:
    if set_name not in base["sets"] or set_name not in tuned["sets"]:
        return []
    base_items = {i["id"]: i for i in base["sets"][set_name]["items"]}
    rows = []
    for item in tuned["sets"][set_name]["items"]:
        b = base_items.get(item["id"])
        if b is None:
            continue
        rows.append({"id": item["id"], "question": item["question"], "reference": item["reference"],
                     "base": b["prediction"], "tuned": item["prediction"],
                     "base_f1": b["token_f1"], "tuned_f1": item["token_f1"],
                     "base_nll": b["nll"], "tuned_nll": item["nll"]})
    return rows[:n]
