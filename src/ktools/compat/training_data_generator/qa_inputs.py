"""Read any Q&A input people point `combine` / `convert` at, as per-document Q&A dicts.

Accepted (a file or a folder):
- per-document `{document}_qa.json` files (the Training Data Generator layout);
- a combined `training_data.json`;
- ktools step-03 output: a `gen.jsonl`, a generator folder, or the `step_03` folder
  (rows grouped by `source`; chunk offsets from step 02's chunks when found);
- any JSONL of rows with `question` and `response` (or `answer`).

A bad file never stops the others: it is listed in `LoadedQA.errors` with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.compat.training_data_generator.qa_documents import qa_documents_from_gen_rows
from ktools.compat.training_data_generator.qa_files import (
    QA_FILE_SUFFIX,
    QAInputError,
    combine_qa_documents,
    is_combined,
    read_qa_file,
    split_combined,
    write_qa_file,
)
from ktools.io import JsonlError, load_each, read_json, read_jsonl, read_jsonl_or_raise

log = logging.getLogger(__name__)

GEN_FILE = "gen.jsonl"
REPORT_FILE = "report.json"


@dataclass
class LoadedQA:
    documents: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (qa file name, doc)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    kind: str = ""
    # Step-03 output: its report.json's status and reason (None for Q&A files, which carry their own).
    run_status: str | None = None
    run_status_reason: str = ""

    @property
    def pair_count(self) -> int:
        return sum(len(d.get("training_pairs") or []) for _, d in self.documents)


def read_pair_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a gen.jsonl-like file, each checked for `question` and `response`/`answer`."""
    rows = read_jsonl_or_raise(path, QAInputError, "JSONL must be UTF-8")
    for i, row in enumerate(rows, start=1):
        if not isinstance(row.get("question"), str) or not row["question"].strip():
            raise QAInputError(f"{path}, line {i}: field 'question' is missing or empty. Each row needs "
                               "'question' and 'response' (or 'answer'); fix or delete that line.")
        answer = row.get("response", row.get("answer"))
        if not isinstance(answer, str) or not answer.strip():
            raise QAInputError(f"{path}, line {i}: field 'response' (or 'answer') is missing or empty; "
                               "fix or delete that line.")
    return rows


def _step02_chunks(step3_dir: Path) -> list[dict[str, Any]] | None:
    """Step 02's chunk rows beside a step_03 folder (offsets, chunk order), if present."""
    for name in ("chunks.jsonl", "seed_data.jsonl"):
        candidate = step3_dir.parent / "step_02" / name
        if candidate.is_file():
            try:
                return read_jsonl(candidate)
            except JsonlError as exc:
                log.warning("ignoring %s for chunk offsets: %s", candidate, exc)
    return None


def generation_info_from_report(report: Mapping[str, Any] | None) -> dict[str, Any]:
    """Provider/model/params of a step-03 `report.json`, whichever of its blocks holds them."""
    info: dict[str, Any] = {}
    if not isinstance(report, Mapping):
        return info
    blocks = [report] + [report[k] for k in ("options", "settings", "params", "config")
                         if isinstance(report.get(k), Mapping)]
    for key in ("provider", "model", "questions_per_chunk", "number_of_summaries", "temperature",
                "max_tokens", "generators"):
        for block in blocks:
            if block.get(key) is not None:
                info[key] = block[key]
                break
    if "generated_at" not in info:
        for key in ("finished_at", "generated_at", "completed_at"):
            if report.get(key):
                info["generated_at"] = report[key]
                break
    return info


def _chunk_status_from_report(report: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not isinstance(report, Mapping):
        return {}
    status: dict[str, dict[str, Any]] = {}
    for failure in report.get("failures") or []:  # the engine's report lists failed (generator, chunk)
        if isinstance(failure, Mapping) and failure.get("chunk_id") is not None:
            status[str(failure["chunk_id"])] = {"status": "failed",
                                                "reason": failure.get("error") or failure.get("reason"),
                                                "generator": failure.get("generator")}
    return status


def load_step03(paths: Sequence[Path], step3_dir: Path | None) -> LoadedQA:
    loaded = LoadedQA(kind="step03")
    rows: list[dict[str, Any]] = []
    for _, file_rows in load_each(paths, read_pair_rows, loaded.errors, QAInputError):
        rows.extend(file_rows)
    report = None
    if step3_dir is not None and (step3_dir / REPORT_FILE).is_file():
        try:
            report = read_json(step3_dir / REPORT_FILE)
        except (JsonlError, OSError) as exc:
            log.warning("ignoring %s: %s", step3_dir / REPORT_FILE, exc)
    chunks = _step02_chunks(step3_dir) if step3_dir is not None else None
    if isinstance(report, Mapping):
        loaded.run_status = str(report.get("status") or "") or None
        loaded.run_status_reason = str(report.get("status_reason") or "")
    if rows:
        search = [step3_dir.parent / "step_02" / "converted"] if step3_dir is not None else []
        loaded.documents = qa_documents_from_gen_rows(
            rows, chunks=chunks, generation_info=generation_info_from_report(report),
            chunk_status=_chunk_status_from_report(report), search_dirs=search)
    return loaded


def _gen_files(folder: Path) -> list[Path]:
    from ktools.paths import GENERATORS

    direct = folder / GEN_FILE
    if direct.is_file():
        return [direct]
    found = sorted(folder.glob(f"*/{GEN_FILE}"))
    order = {name: i for i, name in enumerate(GENERATORS)}
    return sorted(found, key=lambda p: (order.get(p.parent.name, len(order)), p.parent.name))


def load_qa_input(path: str | Path, *, include_incomplete: bool = True) -> LoadedQA:
    """Per-document Q&A from a file or folder (see module doc); never raises for one bad file."""
    path = Path(path)
    if not path.exists():
        raise QAInputError(f"{path}: no such file or folder. Give a `*_qa.json` file, a folder of them, "
                           "a training_data.json, or a step-03 folder / gen.jsonl.")
    if path.is_file():
        if path.suffix == ".jsonl":
            step3 = path.parent.parent if path.name == GEN_FILE else None
            return load_step03([path], step3)
        loaded = LoadedQA(kind="qa_file")
        try:
            doc = read_json(path)
            if is_combined(doc):
                loaded.kind = "combined"
                loaded.documents = split_combined(doc, path)
            else:
                doc = read_qa_file(path)
                loaded.documents = [(path.name, doc)]
        except (QAInputError, JsonlError) as exc:
            loaded.errors.append((str(path), str(exc)))
        return _filter_incomplete(loaded, include_incomplete)

    qa_files = sorted(path.glob(f"*{QA_FILE_SUFFIX}"))
    if qa_files:
        loaded = LoadedQA(kind="qa_dir")
        loaded.documents = [(qa_file.name, doc)
                            for qa_file, doc in load_each(qa_files, read_qa_file, loaded.errors, QAInputError)]
        return _filter_incomplete(loaded, include_incomplete)
    gen_files = _gen_files(path)
    if gen_files:
        step3 = path.parent if (path / GEN_FILE).is_file() else path
        return load_step03(gen_files, step3)
    other = sorted(path.glob("*.jsonl"))
    if other:
        return load_step03(other, None)
    raise QAInputError(
        f"{path}: no Q&A files found. Expected `*{QA_FILE_SUFFIX}` files (from `ktools generate --qa-dir`), "
        f"a step-03 folder with `<generator>/{GEN_FILE}`, or JSONL files with question/response rows."
    )


def _filter_incomplete(loaded: LoadedQA, include_incomplete: bool) -> LoadedQA:
    if include_incomplete:
        return loaded
    kept = []
    for name, doc in loaded.documents:
        status = doc.get("status", "completed")
        if status == "completed":
            kept.append((name, doc))
        else:
            loaded.errors.append((name, f"{name}: status is {status!r}, not 'completed'; skipped. Finish it "
                                        "with `ktools generate --qa-dir <dir>` (resumes) or pass "
                                        "--allow-partial."))
    loaded.documents = kept
    return loaded


@dataclass
class CombineResult:
    output_file: Path
    combined: dict[str, Any]
    errors: list[tuple[str, str]]
    kind: str


def combine_qa_dir(qa_dir: str | Path, output_file: str | Path, *,
                   include_incomplete: bool = False) -> CombineResult:
    """Write `training_data.json` from a Q&A folder (or step-03 output); list files skipped."""
    loaded = load_qa_input(qa_dir, include_incomplete=include_incomplete)
    if not include_incomplete and loaded.run_status not in (None, "complete"):
        raise QAInputError(f"{qa_dir}: the generation's report.json says {loaded.run_status!r}"
                           f"{f' ({loaded.run_status_reason})' if loaded.run_status_reason else ''}; "
                           "not combined. Finish it with `ktools generate` (it resumes) or pass --allow-partial.")
    if not include_incomplete and loaded.documents and loaded.pair_count == 0:
        raise QAInputError(f"{qa_dir}: the Q&A files hold 0 pairs; nothing to combine (pass --allow-partial "
                           "to write an empty training_data.json anyway).")
    if not loaded.documents:
        reasons = "; ".join(reason for _, reason in loaded.errors) or "no documents with Q&A pairs"
        raise QAInputError(f"{qa_dir}: nothing to combine ({reasons}).")
    combined = combine_qa_documents(loaded.documents)
    output = write_qa_file(output_file, combined)
    for bad, reason in loaded.errors:
        log.warning("skipped %s: %s", bad, reason)
    log.info("combined %d Q&A pairs from %d documents into %s", combined["metadata"]["total_qa_pairs"],
             combined["metadata"]["num_documents"], output)
    return CombineResult(output_file=output, combined=combined, errors=loaded.errors, kind=loaded.kind)
