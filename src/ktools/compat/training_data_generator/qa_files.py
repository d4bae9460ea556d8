"""The Training Data Generator's Q&A file layouts, built, validated, read and combined.

Per document, `{document}_qa.json`::

    metadata            file_name, source_file, file_type, file_size, processed_at
    processing_info     chunking settings (splitting_strategy, chunk_size, chunk_overlap, total_chunks)
    qa_generation_info  provider, model, questions_per_chunk, temperature, max_tokens, generated_at
    training_pairs      question, answer, source_file, file_name, file_type, chunk_id, chunk_index,
                        chunk_start, chunk_end, source_text (ktools adds generator, item_id)
    status, completed_chunks, failed_chunks (chunk indexes), summary counts, completion_time

Combined, `training_data.json`: `metadata` (totals, source_qa_files, processing_config),
`documents` (per-document summaries) and all `training_pairs`.

Key order and names follow the reference tool exactly so existing scripts keep working;
extra keys are only ever added, never renamed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from ktools.io import JsonlError, read_json, write_json

log = logging.getLogger(__name__)

QA_FILE_SUFFIX = "_qa.json"
COMBINED_FILE_NAME = "training_data.json"


class QAInputError(ValueError):
    """A Q&A input is unusable; the message names the file, the record, the field and the fix."""


def now_iso() -> str:
    return datetime.now().isoformat()


# --- names ---------------------------------------------------------------------

def source_file_name(source: str) -> str:
    """The file name of a path or URL (`https://x.org/a/b.html` -> `b.html`, host if no path)."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", source, re.I):
        parsed = urlparse(source)
        last = PurePosixPath(parsed.path).name
        return last or parsed.netloc or source
    return PurePosixPath(source.replace("\\", "/")).name or source


def document_stem(source: str) -> str:
    """The name a document's output files start with: its file name without extension."""
    name = source_file_name(source)
    stem = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    stem = re.sub(r'[\x00-\x1f/\\:*?"<>|]+', "_", stem).strip(" ._")
    return stem or "document"


def qa_file_name(source: str) -> str:
    return f"{document_stem(source)}{QA_FILE_SUFFIX}"


def unique_stems(sources: Iterable[str]) -> dict[str, str]:
    """source -> stem, disambiguated when two sources share a stem (`a.md` and `a.html`)."""
    result: dict[str, str] = {}
    taken: set[str] = set()
    for source in sources:
        stem = document_stem(source)
        if stem in taken:
            name = source_file_name(source)
            stem = re.sub(r"[^\w.-]+", "_", name).replace(".", "_")
            base, n = stem, 2
            while stem in taken:
                stem, n = f"{base}_{n}", n + 1
        taken.add(stem)
        result[source] = stem
    return result


# --- building --------------------------------------------------------------------

def file_metadata(source: str, *, processed_at: str | None = None,
                  search_dirs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """The `metadata` block for a document; `file_size` is filled when the file can be found."""
    name = source_file_name(source)
    suffix = PurePosixPath(name).suffix.lower()
    size: int | None = None
    candidates = [Path(source)] + [Path(d) / name for d in search_dirs]
    for candidate in candidates:
        try:
            if candidate.is_file():
                size = candidate.stat().st_size
                break
        except OSError:  # URLs and odd names are not files
            continue
    return {"file_name": name, "source_file": source, "file_type": suffix, "file_size": size,
            "processed_at": processed_at or now_iso()}


def training_pair(question: str, answer: str, *, metadata: Mapping[str, Any], chunk: Mapping[str, Any],
                  **extra: Any) -> dict[str, Any]:
    """One pair in the reference layout; `chunk` has chunk_id, chunk_index, start, end, text."""
    pair = {
        "question": question,
        "answer": answer,
        "source_file": metadata.get("source_file"),
        "file_name": metadata.get("file_name"),
        "file_type": metadata.get("file_type"),
        "chunk_id": chunk.get("chunk_id"),
        "chunk_index": chunk.get("chunk_index"),
        "chunk_start": chunk.get("start"),
        "chunk_end": chunk.get("end"),
        "source_text": chunk.get("text"),
    }
    pair.update({k: v for k, v in extra.items() if v is not None})
    return pair


def build_qa_document(
    *,
    metadata: Mapping[str, Any],
    processing_info: Mapping[str, Any],
    qa_generation_info: Mapping[str, Any],
    training_pairs: list[dict[str, Any]],
    total_chunks: int,
    completed_chunks: Sequence[int],
    failed_chunks: Sequence[int],
    status: str = "completed",
    completion_time: str | None = None,
    failures: Sequence[Mapping[str, Any]] = (),
    extra_metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A per-document Q&A file in the reference key order."""
    meta = dict(metadata)
    if extra_metadata:
        meta.update({k: v for k, v in extra_metadata.items() if v not in (None, "")})
    doc: dict[str, Any] = {
        "metadata": meta,
        "processing_info": dict(processing_info),
        "qa_generation_info": dict(qa_generation_info),
        "training_pairs": training_pairs,
        "status": status,
        "completed_chunks": sorted(set(completed_chunks)),
        "failed_chunks": sorted(set(failed_chunks)),
        "summary": {
            "total_chunks": total_chunks,
            "completed_chunks": len(set(completed_chunks)),
            "failed_chunks": len(set(failed_chunks)),
            "total_qa_pairs": len(training_pairs),
        },
        "completion_time": completion_time or now_iso(),
    }
    if failures:
        doc["failures"] = [dict(f) for f in failures]
    return doc


# --- validation / io -------------------------------------------------------------------

def validate_qa_document(doc: Any, path: str | Path) -> dict[str, Any]:
    """Check the fields every consumer relies on; raise QAInputError naming what to fix."""
    if not isinstance(doc, dict):
        raise QAInputError(
            f"{path}: expected a JSON object (a per-document Q&A file with 'training_pairs'), "
            f"got a JSON {type(doc).__name__}. Point the command at `*_qa.json` files written by "
            "`ktools generate`, a combined training_data.json, or a step-03 gen.jsonl."
        )
    if "training_pairs" not in doc:
        raise QAInputError(
            f"{path}: missing field 'training_pairs'. A Q&A file needs a 'training_pairs' list of "
            "objects with 'question' and 'answer'. If generation was interrupted, re-run "
            "`ktools generate --qa-dir <dir>` (it resumes); otherwise add the list or remove the file."
        )
    pairs = doc["training_pairs"]
    if not isinstance(pairs, list):
        raise QAInputError(f"{path}: field 'training_pairs' must be a list of {{'question', 'answer'}} "
                           f"objects, got {type(pairs).__name__}. Fix the field or regenerate the file.")
    for i, pair in enumerate(pairs):
        where = f"{path}, training_pairs[{i}]"
        if not isinstance(pair, dict):
            raise QAInputError(f"{where}: expected an object with 'question' and 'answer', "
                               f"got {type(pair).__name__}. Fix or delete that record.")
        for name in ("question", "answer"):
            value = pair.get(name)
            if not isinstance(value, str) or not value.strip():
                problem = "missing" if name not in pair else "empty or not a string in"
                raise QAInputError(f"{where}: field {name!r} is {problem} the record. "
                                   f"Give it a non-empty text value or delete that record.")
    for name in ("metadata", "processing_info", "qa_generation_info", "summary"):
        if name in doc and not isinstance(doc[name], dict):
            raise QAInputError(f"{path}: field {name!r} must be an object, got "
                               f"{type(doc[name]).__name__}. Fix it or delete the field.")
    return doc


def read_qa_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = read_json(path)
    except JsonlError as exc:
        raise QAInputError(f"{exc}. Fix the JSON (or regenerate the file with `ktools generate`).") from None
    except UnicodeDecodeError:
        raise QAInputError(f"{path}: not UTF-8 text; a Q&A file must be UTF-8 JSON.") from None
    return validate_qa_document(doc, path)


def write_qa_file(path: str | Path, doc: Mapping[str, Any]) -> Path:
    return write_json(path, doc)


# --- combining -------------------------------------------------------------------------

def _processing_config(doc: Mapping[str, Any]) -> dict[str, Any]:
    processing = doc.get("processing_info") or {}
    generation = doc.get("qa_generation_info") or {}
    return {
        "chunk_size": processing.get("chunk_size"),
        "chunk_overlap": processing.get("chunk_overlap"),
        "splitting_strategy": processing.get("splitting_strategy"),
        "questions_per_chunk": generation.get("questions_per_chunk"),
        "temperature": generation.get("temperature"),
        "max_tokens": generation.get("max_tokens"),
        "llm_provider": generation.get("provider"),
        "model_used": generation.get("model"),
    }


def document_summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    pairs = doc.get("training_pairs") or []
    summary = dict(doc.get("summary") or {})
    summary.setdefault("total_qa_pairs", len(pairs))
    return summary


def combine_qa_documents(named_docs: Sequence[tuple[str, Mapping[str, Any]]],
                         *, generated_at: str | None = None) -> dict[str, Any]:
    """`training_data.json` from (qa file name, per-document dict) pairs, in the given order."""
    all_pairs: list[dict[str, Any]] = []
    documents = []
    for name, doc in named_docs:
        pairs = list(doc.get("training_pairs") or [])
        all_pairs.extend(pairs)
        documents.append({
            "file_info": dict(doc.get("metadata") or {}),
            "processing_info": dict(doc.get("processing_info") or {}),
            "qa_generation_info": dict(doc.get("qa_generation_info") or {}),
            "summary": document_summary(doc),
            "qa_pairs_count": len(pairs),
            "source_file": name,
        })
    first = named_docs[0][1] if named_docs else {}
    return {
        "metadata": {
            "generated_by": "qa_combiner",
            "generated_at": generated_at or now_iso(),
            "total_qa_pairs": len(all_pairs),
            "num_documents": len(named_docs),
            "source_qa_files": [name for name, _ in named_docs],
            "processing_config": _processing_config(first),
        },
        "documents": documents,
        "training_pairs": all_pairs,
    }


def split_combined(doc: Mapping[str, Any], path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """A combined training_data.json back into per-document Q&A dicts (for `convert`)."""
    validate_qa_document(doc, path)
    by_file: dict[str, list[dict[str, Any]]] = {}
    for pair in doc["training_pairs"]:
        key = str(pair.get("source_file") or pair.get("file_name") or "training_data")
        by_file.setdefault(key, []).append(pair)
    infos = {str((d.get("file_info") or {}).get("source_file")): d for d in doc.get("documents") or []
             if isinstance(d, dict)}
    result = []
    for source, pairs in by_file.items():
        info = infos.get(source, {})
        result.append((qa_file_name(source), {
            "metadata": info.get("file_info") or {"file_name": source_file_name(source), "source_file": source},
            "processing_info": info.get("processing_info") or {},
            "qa_generation_info": info.get("qa_generation_info") or {},
            "training_pairs": pairs,
            "status": "completed",
        }))
    return result


def is_combined(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("documents"), list) and \
        (doc.get("metadata") or {}).get("generated_by") == "qa_combiner"
