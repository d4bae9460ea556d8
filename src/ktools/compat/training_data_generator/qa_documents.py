"""ktools step-03 rows (`output/step_03/<generator>/gen.jsonl`) as per-document Q&A files.

Rows are grouped by `source`; each pair keeps its chunk provenance. Chunk offsets and
indexes come from the chunk rows (step 02's `chunks.jsonl` / `seed_data.jsonl`, or the
chunk files of `ktools generate --chunks-dir`) when given, otherwise from the rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.compat.training_data_generator.qa_files import (
    QA_FILE_SUFFIX,
    build_qa_document,
    file_metadata,
    now_iso,
    training_pair,
    unique_stems,
)

log = logging.getLogger(__name__)

UNKNOWN_SOURCE = "unknown_source"


@dataclass
class ChunkInfo:
    chunk_id: str
    source: str
    index: int
    text: str | None = None
    start: int | None = None
    end: int | None = None

    def as_chunk(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "chunk_index": self.index, "start": self.start,
                "end": self.end, "text": self.text}


@dataclass
class DocumentInfo:
    """What is known about a source document beyond its rows (from chunk files)."""

    metadata: dict[str, Any] = field(default_factory=dict)
    processing_info: dict[str, Any] = field(default_factory=dict)
    domain: str | None = None
    document_outline: str | None = None


def chunk_index_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, ChunkInfo]:
    """chunk_id -> ChunkInfo, numbered per source in order (by start offset when known)."""
    seen: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for row in rows:
        cid = row.get("chunk_id")
        if cid is None:
            continue
        cid = str(cid)
        if cid not in seen:
            seen[cid] = dict(row)
            order.append(cid)
    per_source: dict[str, list[str]] = {}
    for cid in order:
        per_source.setdefault(str(seen[cid].get("source") or UNKNOWN_SOURCE), []).append(cid)
    result: dict[str, ChunkInfo] = {}
    for source, cids in per_source.items():
        def sort_key(cid: str) -> tuple[int, int]:
            start = seen[cid].get("start")
            return (0, int(start)) if isinstance(start, int) else (1, order.index(cid))
        for i, cid in enumerate(sorted(cids, key=sort_key)):
            row = seen[cid]
            index = row.get("chunk_index")
            result[cid] = ChunkInfo(
                chunk_id=cid, source=source, index=index if isinstance(index, int) else i,
                text=row.get("raw_document") if row.get("raw_document") is not None else row.get("document"),
                start=row.get("start") if isinstance(row.get("start"), int) else None,
                end=row.get("end") if isinstance(row.get("end"), int) else None,
            )
    return result


def qa_documents_from_gen_rows(rows: Sequence[Mapping[str, Any]], **options: Any) -> list[tuple[str, dict[str, Any]]]:
    """Per-document `(qa file name, Q&A dict)` from step-03 rows, one per `source`
    (`qa_documents_by_source` without the source; the same keyword options)."""
    return [(name, doc) for _, name, doc in qa_documents_by_source(rows, **options)]


def qa_documents_by_source(
    rows: Sequence[Mapping[str, Any]],
    *,
    chunks: Sequence[Mapping[str, Any]] | None = None,
    generation_info: Mapping[str, Any] | None = None,
    chunk_status: Mapping[str, Mapping[str, Any]] | None = None,
    documents: Mapping[str, DocumentInfo] | None = None,
    search_dirs: Sequence[str | Path] = (),
    status: str = "completed",
    qa_names: Mapping[str, str] | None = None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """Per-document `(source, qa file name, Q&A dict)` from step-03 rows, one per `source`.

    `chunks`: chunk rows (`chunk_id`, `source`, `document`, `start`, `end`) for offsets and
    totals; `chunk_status`: chunk_id -> {"status": "done"|"failed"|..., "reason": ...};
    `documents`: source -> DocumentInfo for metadata and chunking settings; `qa_names`
    fixes file names.
    """
    chunk_infos = chunk_index_from_rows(chunks if chunks is not None else rows)
    if chunks is not None:  # rows may reference chunks the chunk list lacks
        for cid, info in chunk_index_from_rows(rows).items():
            if cid not in chunk_infos:
                info.index = 1 + max((c.index for c in chunk_infos.values() if c.source == info.source),
                                     default=-1)
                chunk_infos[cid] = info
    rows_by_source: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        rows_by_source.setdefault(str(row.get("source") or UNKNOWN_SOURCE), []).append(row)
    sources = list(dict.fromkeys([c.source for c in chunk_infos.values()] + list(rows_by_source)))
    if UNKNOWN_SOURCE in rows_by_source:
        log.warning("%d rows have no 'source'; they are grouped as %r",
                    len(rows_by_source[UNKNOWN_SOURCE]), UNKNOWN_SOURCE)
    stems = unique_stems(sources)
    status_map = chunk_status or {}
    documents = documents or {}
    gen_info = dict(generation_info or {})
    gen_info.setdefault("generated_at", now_iso())

    result = []
    for source in sources:
        info = documents.get(source, DocumentInfo())
        metadata = dict(info.metadata) or file_metadata(source, search_dirs=search_dirs)
        doc_chunks = sorted((c for c in chunk_infos.values() if c.source == source), key=lambda c: c.index)
        processing = dict(info.processing_info)
        processing.setdefault("splitting_strategy", None)
        processing.setdefault("chunk_size", None)
        processing.setdefault("chunk_overlap", None)
        processing["total_chunks"] = len(doc_chunks)

        pairs = []
        domain, outline = info.domain, info.document_outline
        for row in rows_by_source.get(source, []):
            cid = str(row.get("chunk_id")) if row.get("chunk_id") is not None else None
            chunk = chunk_infos[cid].as_chunk() if cid in chunk_infos else {"chunk_id": cid}
            if chunk.get("text") is None:
                chunk["text"] = row.get("raw_document")
            domain = domain or row.get("domain")
            outline = outline or row.get("document_outline")
            pairs.append(training_pair(
                str(row.get("question", "")).strip(), str(row.get("response", row.get("answer", ""))).strip(),
                metadata=metadata, chunk=chunk, generator=row.get("generator"), item_id=row.get("item_id"),
            ))

        completed, failed, failures = [], [], []
        with_pairs = {p["chunk_index"] for p in pairs}
        for c in doc_chunks:
            state = status_map.get(c.chunk_id)
            if state is not None and state.get("status") == "failed":
                failed.append(c.index)
                failures.append({"chunk_index": c.index, "chunk_id": c.chunk_id,
                                 "reason": state.get("reason") or state.get("error") or "unknown"})
            elif state is not None and state.get("status") not in (None, "pending"):
                completed.append(c.index)
            elif state is None and c.index in with_pairs:
                completed.append(c.index)
        name = (qa_names or {}).get(source) or f"{stems[source]}{QA_FILE_SUFFIX}"
        result.append((source, name, build_qa_document(
            metadata=metadata, processing_info=processing, qa_generation_info=gen_info,
            training_pairs=pairs, total_chunks=len(doc_chunks), completed_chunks=completed,
            failed_chunks=failed, status=status, failures=failures,
            extra_metadata={"domain": domain, "document_outline": outline},
        )))
    return result
