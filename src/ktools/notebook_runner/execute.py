"""Run step notebooks in order with papermill; skip completed steps; report failures precisely."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.config import find_repo_root, load_settings
from ktools.io import read_json, write_json
from ktools.paths import GENERATORS, STEP_FOLDERS, OutputPaths

log = logging.getLogger(__name__)

KERNEL_NAME = "python3"
# Notebook parameters renamed since: the old name still sets each new one a notebook declares
# (unless that one is given too). MAX_SEQ_LEN meant "drop longer mix rows" in 04 and
# "truncate training examples" in 05.
RENAMED_PARAMETERS: dict[str, tuple[str, ...]] = {"MAX_SEQ_LEN": ("MIX_MAX_SEQ_LEN", "TRAIN_MAX_SEQ_LEN")}


@dataclass(frozen=True)
class NotebookStep:
    number: int
    folder: str
    notebook: str
    # Files that exist once the step has done its job (relative to output/).
    outputs: Callable[[OutputPaths], list[Path]]
    # Why the step's own report says it is not finished (None: finished). A step
    # whose notebook ended normally can still be partial, e.g. generation stopped
    # by its token budget; the runner then runs it again instead of skipping it.
    unfinished: Callable[[OutputPaths], str | None] = lambda p: None

    @property
    def name(self) -> str:
        return f"{self.number:02d} {self.notebook.removesuffix('.ipynb').replace('_', ' ')}"

    def notebook_path(self, repo_root: Path) -> Path:
        return repo_root / self.folder / self.notebook

    def executed_path(self, paths: OutputPaths) -> Path:
        return paths.executed_dir / f"{self.number:02d}_{self.notebook}"

    def marker_path(self, paths: OutputPaths) -> Path:
        return paths.executed_dir / f"step_{self.number:02d}.done.json"


def _generation_unfinished(paths: OutputPaths) -> str | None:
    try:
        report = read_json(paths.generation_report)
        status = report.get("status")
    except Exception as exc:  # unreadable report: not finished
        return f"{paths.generation_report} unreadable ({exc})"
    if status == "complete":
        return None
    if status == "partial" and not _retryable_chunks(report):
        # Every chunk ran and was answered; a generator kept nothing because its rows
        # were rejected. Running again would resend nothing (the store answers every
        # request) and give the same rows, so the step is as finished as it can be.
        # The report and the notebook still say "partial"; the run only skips it.
        log.warning("step 03 is partial with nothing left to retry: %s", report.get("status_reason") or "")
        return None
    return f"generation report status is {status!r}"


def _retryable_chunks(report: dict) -> int:
    """Chunk runs a second generation would redo: failed or never run, over all generators."""
    return sum((g.get("chunks") or {}).get("failed", 0) + (g.get("chunks") or {}).get("pending", 0)
               for g in (report.get("generators") or {}).values())


def _step_notebook(n: int) -> str:
    # "02_Data_Processing" -> "Data_Processing.ipynb"
    return STEP_FOLDERS[n].split("_", 1)[1] + ".ipynb"


STEPS: tuple[NotebookStep, ...] = (
    NotebookStep(0, STEP_FOLDERS[0], _step_notebook(0), lambda p: []),
    NotebookStep(1, STEP_FOLDERS[1], _step_notebook(1), lambda p: [p.base_eval_json]),
    NotebookStep(2, STEP_FOLDERS[2], _step_notebook(2), lambda p: [p.chunks, p.seed_data]),
    NotebookStep(3, STEP_FOLDERS[3], _step_notebook(3),
                 lambda p: [p.generation_report] + [p.generated(g) for g in GENERATORS],
                 lambda p: _generation_unfinished(p)),
    NotebookStep(4, STEP_FOLDERS[4], _step_notebook(4), lambda p: [p.mix_stats, p.eval_set]),
    NotebookStep(5, STEP_FOLDERS[5], _step_notebook(5), lambda p: []),
    NotebookStep(6, STEP_FOLDERS[6], _step_notebook(6), lambda p: [p.eval_report_json, p.eval_report_md]),
)


class StepFailed(RuntimeError):
    """A notebook raised; the message names the step, the cell and the error."""

    def __init__(self, step: NotebookStep, message: str, executed: Path | None):
        super().__init__(message)
        self.step = step
        self.executed = executed


class StepInterrupted(KeyboardInterrupt):
    """Ctrl+C stopped a step; its marker is not written, so the next run runs it again."""

    def __init__(self, step: NotebookStep, executed: Path | None):
        super().__init__(f"step {step.name} interrupted")
        self.step = step
        self.executed = executed


def _kernel_children() -> list[int]:
    """Pids of our child processes that are Jupyter kernels (Linux /proc; empty elsewhere)."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == me and b"ipykernel" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@contextlib.contextmanager
def _forward_interrupt_to_kernel():
    """The first Ctrl+C goes to the notebook's kernel, not to papermill.

    papermill starts the kernel in its own session, so a terminal's Ctrl+C reaches only
    `ktools run`; a KeyboardInterrupt there tears the kernel down mid-cell, and answers
    still in step 03's group commit are lost. Forwarded instead, the running cell gets
    the KeyboardInterrupt: step 03 stops cleanly (stores what was answered, writes its
    report as "interrupted"), the cell fails, and the runner reports the interruption.
    A second Ctrl+C (or no kernel found) stops the runner at once.
    Yields a dict whose "interrupted" key tells whether Ctrl+C was pressed."""
    state = {"interrupted": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        kernels = _kernel_children()
        if state["interrupted"] or not kernels:
            state["interrupted"] = True
            raise KeyboardInterrupt
        state["interrupted"] = True
        log.warning("interrupt: stopping the running notebook cell (press Ctrl+C again to abort at once)")
        for pid in kernels:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class StepOutcome:
    step: NotebookStep
    status: str  # "ran" | "skipped" | "failed" | "missing" | "interrupted"
    seconds: float = 0.0
    executed: Path | None = None
    message: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_steps(spec: str | None) -> list[int]:
    """'2-4' -> [2, 3, 4]; '3' -> [3]; '0,2-3' -> [0, 2, 3]; None/'all' -> every step."""
    known = [s.number for s in STEPS]
    if spec is None or spec.strip().lower() in {"", "all"}:
        return known
    chosen: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                chosen.update(range(lo, hi + 1))
            else:
                chosen.add(int(part))
        except ValueError:
            raise ValueError(f"--steps {spec!r}: {part!r} is not a step number or range like 2-4") from None
    unknown = sorted(chosen - set(known))
    if unknown:
        raise ValueError(f"--steps {spec!r}: no step {unknown}; steps are {known[0]}-{known[-1]}")
    return sorted(chosen)


def declared_parameters(notebook: Path) -> dict[str, Any]:
    import papermill

    return papermill.inspect_notebook(str(notebook))


def notebook_parameters(parameters: Mapping[str, Any], declared: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The parameters a notebook declares (old names mapped to their new ones), and the given names used."""
    own = {k: v for k, v in parameters.items() if k in declared}
    consumed = set(own)
    for old, new_names in RENAMED_PARAMETERS.items():
        if old in parameters and old not in declared:
            for new in new_names:
                if new in declared and new not in parameters:
                    own[new] = parameters[old]
                    consumed.add(old)
    return own, consumed


def _fingerprint(notebook: Path, parameters: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(notebook.read_bytes())
    h.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    return h.hexdigest()


def is_complete(step: NotebookStep, paths: OutputPaths, fingerprint: str) -> bool:
    marker = step.marker_path(paths)
    if not marker.is_file():
        return False
    try:
        done = read_json(marker)
    except Exception:  # a damaged marker just means "run it again"
        return False
    if done.get("fingerprint") != fingerprint:
        return False
    if not all(Path(p).exists() for p in done.get("outputs", [])):
        return False
    # An earlier step that ran after this one may have changed this step's inputs.
    finished_at = marker.stat().st_mtime
    for earlier in STEPS[: STEPS.index(step)]:
        earlier_marker = earlier.marker_path(paths)
        if earlier_marker.is_file() and earlier_marker.stat().st_mtime > finished_at:
            log.info("step %s is stale: step %s ran after it", step.name, earlier.name)
            return False
    reason = step.unfinished(paths)
    if reason:
        log.info("step %s is not finished: %s", step.name, reason)
    return reason is None


def _source_cell_number(executed: Path, cell_index: int, source: str) -> tuple[int, int]:
    """1-based position of the failing cell in the *source* notebook, and the cell count.

    papermill adds cells the user never wrote (injected parameters, error banners),
    some after reporting `cell_index`, so we find the failing cell by its error output."""
    import nbformat

    try:
        cells = nbformat.read(str(executed), as_version=4).cells
    except Exception:
        return cell_index + 1, 0

    def added(cell) -> bool:
        tags = cell.metadata.get("tags", [])
        return "injected-parameters" in tags or "papermill-error-cell-tag" in tags

    own = [c for c in cells if not added(c)]
    for number, cell in enumerate(own, start=1):
        failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        if failed and cell.source == source:
            return number, len(own)
    return cell_index + 1, len(own)


def _describe_failure(step: NotebookStep, exc: Exception, executed: Path) -> str:
    index = getattr(exc, "cell_index", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    source = (getattr(exc, "source", "") or "").strip().splitlines()
    where = "a cell"
    if index is not None:
        number, total = _source_cell_number(executed, index, getattr(exc, "source", "") or "")
        where = f"cell {number}" + (f" of {total}" if total else "")
    first_line = f": `{source[0][:100]}`" if source else ""
    return f"step {step.name} ({step.folder}/{step.notebook}) failed in {where}{first_line}\n  {ename}: {evalue}"


def run_pipeline(
    steps: Iterable[int] | None = None,
    parameters: Mapping[str, Any] | None = None,
    *,
    force: bool = False,
    repo_root: Path | None = None,
    paths: OutputPaths | None = None,
    kernel_name: str = KERNEL_NAME,
    on_event: Callable[[str, StepOutcome], None] | None = None,
    stop_on_failure: bool = True,
) -> list[StepOutcome]:
    """Execute the chosen steps in order. Raises StepFailed on the first failing notebook,
    StepInterrupted (a KeyboardInterrupt) on Ctrl+C."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    root = repo_root or find_repo_root()
    paths = paths or OutputPaths.from_settings(load_settings(repo_root=root), repo_root=root)
    wanted = set(parse_steps(None) if steps is None else steps)
    parameters = dict(parameters or {})
    outcomes: list[StepOutcome] = []
    used: set[str] = set()

    for step in (s for s in STEPS if s.number in wanted):
        notebook = step.notebook_path(root)
        if not notebook.is_file():
            outcome = StepOutcome(step, "missing", message=f"{notebook} does not exist yet")
            outcomes.append(outcome)
            if on_event:
                on_event("missing", outcome)
            continue
        declared = declared_parameters(notebook)
        own, consumed = notebook_parameters(parameters, declared)
        used.update(consumed)
        fingerprint = _fingerprint(notebook, own)
        executed = step.executed_path(paths)
        if not force and is_complete(step, paths, fingerprint):
            outcome = StepOutcome(step, "skipped", executed=executed, parameters=own,
                                  message="outputs complete (use --force to run again)")
            outcomes.append(outcome)
            if on_event:
                on_event("skipped", outcome)
            continue
        if on_event:
            on_event("start", StepOutcome(step, "running", parameters=own))
        executed.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        try:
            with _forward_interrupt_to_kernel() as interrupt:
                try:
                    papermill.execute_notebook(
                        str(notebook), str(executed), parameters=own, kernel_name=kernel_name,
                        cwd=str(notebook.parent), progress_bar=False, log_output=False,
                    )
                finally:
                    if interrupt["interrupted"]:
                        raise StepInterrupted(step, executed)
        except KeyboardInterrupt as exc:
            outcome = StepOutcome(step, "interrupted", time.perf_counter() - started, executed,
                                  f"step {step.name} interrupted", own)
            outcomes.append(outcome)
            if on_event:
                on_event("interrupted", outcome)
            if isinstance(exc, StepInterrupted):
                raise
            raise StepInterrupted(step, executed) from None
        except PapermillExecutionError as exc:
            outcome = StepOutcome(step, "failed", time.perf_counter() - started, executed,
                                  _describe_failure(step, exc, executed), own)
            outcomes.append(outcome)
            if on_event:
                on_event("failed", outcome)
            if stop_on_failure:
                raise StepFailed(step, outcome.message, executed) from None
            continue
        seconds = time.perf_counter() - started
        expected = [str(p) for p in step.outputs(paths)]
        missing = [p for p in expected if not Path(p).exists()]
        if missing:
            message = f"step {step.name} ran but did not write {', '.join(missing)}"
            outcome = StepOutcome(step, "failed", seconds, executed, message, own)
            outcomes.append(outcome)
            if on_event:
                on_event("failed", outcome)
            if stop_on_failure:
                raise StepFailed(step, message, executed)
            continue
        write_json(step.marker_path(paths), {"fingerprint": fingerprint, "parameters": own,
                                             "outputs": expected, "seconds": round(seconds, 1)})
        outcome = StepOutcome(step, "ran", seconds, executed, parameters=own)
        outcomes.append(outcome)
        if on_event:
            on_event("ran", outcome)

    unused = sorted(set(parameters) - used)
    if unused:
        log.warning("parameters declared by no executed notebook: %s", ", ".join(unused))
    return outcomes
