"""Batch execution of the step notebooks with papermill (`ktools run`).

Each step notebook is executed with its step folder as working directory into
`output/executed/<NN>_<Name>.ipynb`. Parameters (`-p NAME VALUE` and the profile's)
go to every notebook whose `parameters` cell declares them.

A step is skipped when it already completed with the same parameters: after a
successful run the runner writes `output/executed/step_NN.done.json` holding the
parameters it used and the step's expected outputs; the step is "complete" while
that marker matches and those outputs still exist. Anything else re-runs the
notebook, and the step's own resumability (e.g. step 03's response store) makes a
re-run cheap — nothing already answered is asked again.

Ctrl+C is forwarded to the running notebook's kernel (step 03 then stops cleanly and
stores what was answered); the runner raises `StepInterrupted`, writes no marker for
that step, and `ktools run` exits with 130. Running the same command again skips the
completed steps and resumes the interrupted one.
"""

from __future__ import annotations

from ktools.notebook_runner.execute import (
    STEPS,
    NotebookStep,
    StepFailed,
    StepInterrupted,
    StepOutcome,
    parse_steps,
    run_pipeline,
)
from ktools.notebook_runner.profiles import PROFILES, profile_parameters

__all__ = [
    "PROFILES",
    "STEPS",
    "NotebookStep",
    "StepFailed",
    "StepInterrupted",
    "StepOutcome",
    "parse_steps",
    "profile_parameters",
    "run_pipeline",
]
