"""The honest status of a generation: per generator, per run, per document.

A run is `complete` only when every chunk of every generator ran without error and
every generator kept at least one row. Otherwise it says what went wrong:

    failed   every chunk failed (teacher down, 401, wrong model), or no rows and some failures
    empty    everything ran but no row was kept (all unparsable, truncated or rejected by judges)
    partial  some chunks failed or never ran, or a generator kept nothing, but rows exist

Stops keep their own names (`interrupted`, `budget_reached`, `cost_limit_reached`,
`dry_run`); none of them is `complete`. `reason` is one line for a CLI or a notebook:
the first failure's error, or where the rows were lost (unparsable / truncated /
judges), so an empty dataset never looks like success.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COMPLETE = "complete"
PARTIAL = "partial"
FAILED = "failed"
EMPTY = "empty"
# Statuses a consumer (combine, mixing, `ktools run`) may treat as finished.
FINISHED = frozenset({COMPLETE})


def generator_status(chunks: Mapping[str, int], rows: int) -> str:
    """complete / partial / failed / empty for one generator from its chunk counts and rows kept."""
    total = sum(chunks.values())
    failed = chunks.get("failed", 0)
    unfinished = failed + chunks.get("pending", 0)
    if total and failed == total:
        return FAILED
    if rows == 0:
        return FAILED if failed else EMPTY
    return PARTIAL if unfinished else COMPLETE


def run_status(generators: Mapping[str, Mapping[str, Any]]) -> str:
    """The run's status from its generators' statuses (`generator_status` of each)."""
    statuses = [g["status"] for g in generators.values()]
    if not statuses or all(s == COMPLETE for s in statuses):
        return COMPLETE
    rows = sum(g.get("rows", 0) for g in generators.values())
    if rows == 0:
        return FAILED if any(s == FAILED for s in statuses) else EMPTY
    return PARTIAL


def _losses(g: Mapping[str, Any]) -> dict[str, int]:
    """Where a generator's candidates were lost: unparsable, truncated, ungrounded, judges."""
    stages = g.get("stages") or {}
    losses = {
        "unparsable": sum(s.get("unparsable", 0) for s in stages.values()),
        "truncated": sum(s.get("truncated", 0) for s in stages.values()),
        "ungrounded": sum(s.get("ungrounded", 0) for s in stages.values()),
    }
    for judge, count in (g.get("judge_rejections") or {}).items():
        losses[f"rejected by the {judge} judge"] = count
    losses["duplicate questions"] = g.get("duplicates", 0)
    return {k: v for k, v in losses.items() if v}


def status_reason(status: str, generators: Mapping[str, Mapping[str, Any]],
                  failures: list[Mapping[str, Any]]) -> str:
    """One line saying why a run is not complete ("" when it is)."""
    if status == COMPLETE:
        return ""
    parts = []
    total = sum(sum((g.get("chunks") or {}).values()) for g in generators.values())
    if failures:
        first = str(failures[0].get("error") or "").splitlines()[0][:300] if failures[0].get("error") else "?"
        parts.append(f"{len(failures)} of {total} chunk runs failed (first: {first})")
    pending = sum((g.get("chunks") or {}).get("pending", 0) for g in generators.values())
    if pending:
        parts.append(f"{pending} chunk runs never ran")
    for name, g in generators.items():
        if g.get("rows", 0) == 0 and g.get("status") != FAILED:
            losses = _losses(g)
            lost = ", ".join(f"{v} {k}" for k, v in losses.items()) or "the teacher's answers gave nothing"
            parts.append(f"{name} kept no rows ({lost})")
    return "; ".join(parts) or f"the run ended {status}"


def document_status(pairs: int, chunk_states: list[str], run_stop: str | None = None) -> str:
    """A per-document `_qa.json` status: completed / in_progress / partial / failed / empty, or the run's stop.

    `chunk_states` are the document's chunks' states (done / failed / pending)."""
    if run_stop:
        return run_stop
    failed = chunk_states.count("failed")
    if chunk_states and failed == len(chunk_states):
        return FAILED
    if "pending" in chunk_states:
        return "in_progress"
    if pairs == 0:
        return FAILED if failed else EMPTY
    return PARTIAL if failed else "completed"
