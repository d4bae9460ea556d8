"""`ktools run`: execute the step notebooks in order with papermill."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ktools.llm.local.lifecycle import stop_teachers_started_during
from ktools.notebook_runner import (
    StepFailed,
    StepInterrupted,
    StepOutcome,
    parse_steps,
    profile_parameters,
    run_pipeline,
)
from ktools.notebook_runner.profiles import PROFILES


def parse_value(raw: str) -> Any:
    """`-p N 5` gives 5, `-p X true` gives True, `-p L '[1,2]'` a list; anything else stays a string."""
    lowered = raw.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, ValueError):
        return raw


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", default=None, help="steps to run, e.g. 2-4, 3 or 0,2-3 (default: all)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="notebook parameter, passed to every notebook that declares it (repeatable)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="parameter preset: demo (sample document, ~20 min on CPU) or smoke (tiny)")
    parser.add_argument("--force", action="store_true", help="run steps even if their outputs are complete")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")


def _print_event(kind: str, outcome: StepOutcome) -> None:
    step = outcome.step
    if kind == "start":
        shown = ", ".join(f"{k}={v!r}" for k, v in outcome.parameters.items())
        print(f"[{time.strftime('%H:%M:%S')}] step {step.name}: running"
              + (f" ({shown})" if shown else ""), flush=True)
    elif kind == "ran":
        print(f"[{time.strftime('%H:%M:%S')}] step {step.name}: done in {outcome.seconds:.0f} s"
              f" -> {outcome.executed}", flush=True)
    elif kind == "skipped":
        print(f"[{time.strftime('%H:%M:%S')}] step {step.name}: skipped, {outcome.message}", flush=True)
    elif kind == "missing":
        print(f"[{time.strftime('%H:%M:%S')}] step {step.name}: no notebook ({outcome.message})", flush=True)
    elif kind == "interrupted":
        print(f"[{time.strftime('%H:%M:%S')}] step {step.name}: interrupted after {outcome.seconds:.0f} s",
              file=sys.stderr, flush=True)
    elif kind == "failed":
        print(f"[{time.strftime('%H:%M:%S')}] {outcome.message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        steps = parse_steps(args.steps)
        parameters = profile_parameters(args.profile)
    except ValueError as exc:
        print(f"ktools run: {exc}", file=sys.stderr)
        return 2
    parameters.update({name: parse_value(value) for name, value in args.parameter})
    started = time.perf_counter()
    try:
        # What the run starts, it stops: the notebooks start the embedded teacher on first use.
        with stop_teachers_started_during():
            outcomes = run_pipeline(steps, parameters, force=args.force, kernel_name=args.kernel,
                                    on_event=_print_event)
    except StepFailed as exc:
        print(f"\nktools run: FAILED — {exc}", file=sys.stderr)
        if exc.executed is not None:
            print(f"The executed notebook with the error: {exc.executed}", file=sys.stderr)
        return 1
    except StepInterrupted as exc:
        # Without --force, which would run the completed steps again.
        again = (" ".join(["ktools", "run", *(a for a in sys.argv[2:] if a != "--force")])
                 if sys.argv[1:2] == ["run"] else "the same command")
        print(f"\nktools run: interrupted during step {exc.step.name}. Nothing finished is lost: run "
              f"`{again}` again to resume — completed steps are skipped"
              + (", and step 03 sends only the requests not answered yet." if exc.step.number == 3 else "."),
              file=sys.stderr, flush=True)
        return 130
    total = time.perf_counter() - started
    print("\nstep timings:")
    for o in outcomes:
        print(f"  {o.step.name:<32} {o.status:<8} {o.seconds:7.0f} s")
    print(f"  {'total':<32} {'':<8} {total:7.0f} s")
    if outcomes:
        executed_dir = outcomes[0].executed.parent if outcomes[0].executed else None
        if executed_dir is not None:
            print(f"\nexecuted notebooks: {executed_dir}")
            output_root = executed_dir.parent
            print(f"outputs:            {output_root}")
            report = output_root / "step_06" / "eval_report.md"
            if report.exists():
                print(f"evaluation report:  {report}")
                _print_result(report.with_suffix(".json"))
    return 0


def _print_result(report_json: Path) -> None:
    """Base vs tuned in a few lines under the run's summary (a broken report only loses them)."""
    from ktools.evaluate.report import result_lines
    from ktools.io import read_json

    try:
        lines = result_lines(read_json(report_json))
    except Exception:  # noqa: BLE001
        return
    if lines:
        print("\nbase vs fine-tuned (95 % intervals):")
        for line in lines:
            print(f"  {line}")
