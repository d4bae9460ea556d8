"""The two notebook steps: 01 (base model alone) and 06 (base vs fine-tuned)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ktools.evaluate.evalset import EvalItem
from ktools.evaluate.report import comparison_markdown, model_markdown, plot_metric_bars, plot_per_question
from ktools.evaluate.runner import (
    DEFAULT_OPTIONS,
    EvalOptions,
    compare,
    evaluate_model,
    sets_fingerprint,
    side_by_side,
)
from ktools.io import read_json, write_atomic, write_json

log = logging.getLogger(__name__)


def make_judge_client(settings: Any, use_judge: bool | None = None) -> Any:
    """The configured teacher as judge, or None (with the reason logged).

    `use_judge=None` (auto) judges with any configured teacher except the embedded 135M
    one: measured on the sample exam it returned no usable score for 120 of 120 answers
    ("The answer is 2. The reference answer is 2. …") and took 150 s per model. Pass True
    to judge with it anyway.
    """
    if use_judge is False:
        return None
    if use_judge is None and getattr(settings, "uses_embedded_teacher", False):
        log.info("LLM judge off: the embedded 135M teacher cannot grade (set USE_JUDGE=True to force it, "
                 "or configure a stronger teacher)")
        return None
    try:
        from ktools.llm.client import TeacherClient

        return TeacherClient.from_settings(settings)
    except Exception as exc:  # noqa: BLE001 - the judge is optional
        log.warning("LLM judge disabled: the teacher client could not start (%s)", exc)
        return None


def run_base_evaluation(model_name: str, sets: Mapping[str, Sequence[EvalItem]], paths: Any, *,
                        options: EvalOptions = DEFAULT_OPTIONS, judge_client: Any = None,
                        progress: bool = True) -> dict[str, Any]:
    """Step 01: evaluate the base model; write base_eval.json, .md and .png."""
    result = evaluate_model(model_name, sets, options=options, judge_client=judge_client, progress=progress,
                            label="base")
    out = Path(paths.base_eval_json)
    write_json(out, result)
    write_atomic(out.with_suffix(".md"), model_markdown(result))
    plot_metric_bars({"base": result}, out.with_suffix(".png"))
    log.info("base evaluation written to %s", out)
    return result


def _reusable_base(paths: Any, model_name: str, sets: Mapping[str, Sequence[EvalItem]], options: EvalOptions,
                   judge_client: Any) -> dict[str, Any] | None:
    path = Path(paths.base_eval_json)
    if not path.is_file():
        return None
    try:
        cached = read_json(path)
    except Exception:  # noqa: BLE001 - a broken cache is recomputed
        return None
    same = (cached.get("model") == model_name and cached.get("fingerprint") == sets_fingerprint(sets)
            and cached.get("options") == options.to_dict())
    judged_ok = not options.judge or judge_client is None or all(
        not i.get("judge_error") or i.get("judge_error") != "no judge client"
        for s in cached["sets"].values() for i in s["items"])
    if same and judged_ok:
        log.info("reusing the base model's results from %s (same model, questions and options)", path)
        return cached
    return None


def run_evaluation(base_model: str, tuned_model: str, sets: Mapping[str, Sequence[EvalItem]], paths: Any, *,
                   options: EvalOptions = DEFAULT_OPTIONS, judge_client: Any = None, progress: bool = True,
                   reuse_base: bool = True, side_by_side_n: int = 8) -> dict[str, Any]:
    """Step 06: base vs fine-tuned on the same sets; writes eval_report.json/.md and plots."""
    base = _reusable_base(paths, base_model, sets, options, judge_client) if reuse_base else None
    if base is None:
        base = evaluate_model(base_model, sets, options=options, judge_client=judge_client, progress=progress,
                              label="base")
    tuned = evaluate_model(tuned_model, sets, options=options, judge_client=judge_client, progress=progress,
                           label="fine-tuned")
    report = {"base": base, "tuned": tuned, "comparison": compare(base, tuned, options),
              "side_by_side": {name: side_by_side(base, tuned, name, side_by_side_n) for name in sets}}
    out_json = Path(paths.eval_report_json)
    plots = {"metrics": str(plot_metric_bars({"base": base, "fine-tuned": tuned},
                                             out_json.with_name("eval_metrics.png")))}
    for name in sets:
        plot = plot_per_question(base, tuned, name, out_json.with_name(f"per_question_{name}.png"))
        if plot:
            plots[f"per_question_{name}"] = str(plot)
    report["plots"] = plots
    write_json(out_json, report)
    write_atomic(Path(paths.eval_report_md), comparison_markdown(report))
    log.info("evaluation report written to %s", out_json)
    return report
