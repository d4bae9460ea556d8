"""The two notebook steps: 01 (base model alone) and 06 (base vs fine-tuned)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ktools.evaluate.evalset import EvalItem
from ktools.evaluate.headline import headline, headline_lines
from ktools.evaluate.report import comparison_markdown, model_markdown, plot_metric_bars, plot_per_question
from ktools.evaluate.runner import (
    DEFAULT_OPTIONS,
    EvalOptions,
    compare,
    evaluate_model,
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
                        progress: bool = True, reuse: bool = True) -> dict[str, Any]:
    """Step 01: evaluate the base model; write base_eval.json, .md and .png.

    Sets already scored by an earlier run (same weights, questions and options) are reused."""
    earlier = earlier_base_results(paths) if reuse else None
    result = evaluate_model(model_name, sets, options=options, judge_client=judge_client, progress=progress,
                            label="base", reuse=earlier)
    out = Path(paths.base_eval_json)
    write_json(out, result)
    write_atomic(out.with_suffix(".md"), model_markdown(result))
    plot_metric_bars({"base": result}, out.with_suffix(".png"))
    log.info("base evaluation written to %s", out)
    return result


def earlier_base_results(paths: Any) -> dict[str, Any]:
    """Per-set results of the base model from step 01 and from an earlier step 06 report.

    Only candidates: `evaluate_model` reuses a set only when its fingerprint (weights,
    questions, options) matches. Step 01 usually ran before step 04 wrote the held-out
    set, so step 06 finds the exam and general sets here and scores only the held-out
    set with the base model."""
    found: dict[str, Any] = {}
    for path, key in ((Path(paths.eval_report_json), "base"), (Path(paths.base_eval_json), None)):
        if not path.is_file():
            continue
        try:
            data = read_json(path)
            sets = (data[key] if key else data)["sets"]
        except Exception as exc:  # noqa: BLE001 - a broken earlier result is just recomputed
            log.info("earlier base results in %s not usable (%s)", path, exc)
            continue
        found.update({name: s for name, s in sets.items() if isinstance(s, dict) and s.get("fingerprint")})
    return found


def _step05_report(paths: Any, tuned_model: str) -> dict[str, Any]:
    """Step 05's train_report.json when it is about `tuned_model`, else {}."""
    report_path = Path(paths.step(5)) / "train_report.json"
    try:
        report = read_json(report_path) if report_path.is_file() else {}
    except Exception:  # noqa: BLE001 - a broken report only loses the notes it feeds
        return {}
    same_model = Path(str(report.get("model_dir", ""))).resolve() == Path(tuned_model).resolve()
    return report if same_model else {}


def tuned_calibration(paths: Any, tuned_model: str) -> dict[str, Any] | None:
    """Step 05's temperature calibration of `tuned_model` (train.calibrate), when step 05's
    report is about that model and a temperature was applied: the report must say that the
    held-out set's NLL was fitted on."""
    calibration = _step05_report(paths, tuned_model).get("calibration") or {}
    if calibration.get("reason") != "applied":
        return None
    return {k: calibration.get(k) for k in ("temperature", "set", "questions", "nll_before", "nll_after")}


def tuned_training(paths: Any, tuned_model: str) -> dict[str, Any] | None:
    """How much training `tuned_model` had against what was asked (step 05's report): the
    report says so when a time budget cut the epochs, since that, not the recipe, is then
    why few facts were learnt (a CPU without native bf16 trains 3-4x slower)."""
    report = _step05_report(paths, tuned_model)
    if not report.get("steps_per_epoch"):
        return None
    config = report.get("config") or {}
    return {"steps": report.get("steps"), "epochs_done": report.get("epochs_done"),
            "epochs_asked": None if config.get("max_steps") else config.get("epochs"),
            "time_budget_minutes": config.get("time_budget_minutes"),
            "stopped_by_time_limit": report.get("stopped_by_time_limit", False),
            "train_seconds": report.get("train_seconds"), "tokens_per_second": report.get("tokens_per_second")}


def run_evaluation(base_model: str, tuned_model: str, sets: Mapping[str, Sequence[EvalItem]], paths: Any, *,
                   options: EvalOptions = DEFAULT_OPTIONS, judge_client: Any = None, progress: bool = True,
                   reuse_base: bool = True, side_by_side_n: int = 8) -> dict[str, Any]:
    """Step 06: base vs fine-tuned on the same sets; writes eval_report.json/.md and plots."""
    base = evaluate_model(base_model, sets, options=options, judge_client=judge_client, progress=progress,
                          label="base", reuse=earlier_base_results(paths) if reuse_base else None)
    tuned = evaluate_model(tuned_model, sets, options=options, judge_client=judge_client, progress=progress,
                           label="fine-tuned")
    report = {"base": base, "tuned": tuned, "comparison": compare(base, tuned, options),
              "side_by_side": {name: side_by_side(base, tuned, name, side_by_side_n) for name in sets}}
    report["headline"] = headline(report, n_resamples=options.bootstrap_resamples, seed=options.seed)
    calibration = tuned_calibration(paths, tuned_model)
    if calibration:
        report["calibration"] = calibration
    training = tuned_training(paths, tuned_model)
    if training:
        report["training"] = training
    for line in headline_lines(report["headline"]):
        log.info("%s", line)
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
