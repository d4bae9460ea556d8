"""Read a folder of chunk files (`ktools generate --chunks-dir`) into seed rows for the engine.

Accepted, per file (non-recursive, sorted by name):
- `*.json`: the document chunker's `{document}_chunks.json` (`metadata`, `processing_info`,
  `chunks: [{text, chunk_id, chunk_index, start_char, end_char, ...}]`, `status`), a list of
  chunk objects, or one chunk object;
- `*.jsonl`: one chunk object per line (also ktools' own `chunks.jsonl` / `seed_data.jsonl`;
  rows are grouped into documents by their `source`);
- `*.txt` / `*.md`: one chunk each; `name_chunk_003.txt`-style names are grouped into one
  document, otherwise each file is a document.

The chunk text may be under `text`, `content`, `page_content`, `document` or `chunk_text`;
a nested `metadata` object (LangChain style) is merged in. Offsets may be called
`start_char`/`end_char`, `start`/`end`, `start_index`/`end_index` or `chunk_start`/`chunk_end`.

Engine chunk ids are `<document>#<chunk id>` so they are unique across documents (the
chunker's ids like `0_0` are not); the original id is kept for the Q&A files.

ICL fields (`icl_document`, `icl_query_1..3`, `document_outline`, `domain`) are used when
the chunks carry them; otherwise they are synthesized from the document itself (its first
chunk and its headings) and a log line says so.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.compat.training_data_generator.qa_files import (
    QA_FILE_SUFFIX,
    file_metadata,
    source_file_name,
    unique_stems,
)
from ktools.io import load_each, read_jsonl_or_raise

log = logging.getLogger(__name__)

TEXT_KEYS = ("text", "content", "page_content", "document", "chunk_text", "chunk")
START_KEYS = ("start_char", "start", "start_index", "chunk_start")
END_KEYS = ("end_char", "end", "end_index", "chunk_end")
SOURCE_KEYS = ("source", "source_file", "file_path", "source_path", "path", "file_name", "filename")
CHUNK_FILE_SUFFIX = "_chunks.json"
ICL_FIELDS = ("icl_document", "icl_query_1", "icl_query_2", "icl_query_3")
# Files we write ourselves (chunks-dir may equal qa-dir) and never read as chunks.
OWN_OUTPUTS = ("qa_generation_summary.json", "qa_failures.jsonl", "training_data.json")
_TEXT_CHUNK_NAME = re.compile(r"^(?P<doc>.+?)[_\-. ]+chunk[_\-. ]*(?P<index>\d+)$", re.I)


class ChunkFileError(ValueError):
    """A chunk file cannot be used; the message names the file, the record, the field and the fix."""


@dataclass
class ChunkDocument:
    """One source document's chunks, as seed rows for the engine."""

    source: str
    files: list[str]
    metadata: dict[str, Any]
    processing_info: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    icl_synthesized: bool = False
    qa_name: str = ""


@dataclass
class ChunkLoad:
    documents: list[ChunkDocument] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for doc in self.documents for row in doc.rows]


def _first(record: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = record.get(key)
        if value is not None and value != "":
            return value
    return None


def _flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    nested = record.get("metadata")
    flat = dict(nested) if isinstance(nested, Mapping) else {}
    flat.update({k: v for k, v in record.items() if k != "metadata"})
    return flat


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _chunk(record: Any, *, path: Path, where: str, position: int, default_source: str) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        raise ChunkFileError(f"{path}, {where}: expected a chunk object with a 'text' field, "
                             f"got {type(record).__name__}. Fix or delete that record.")
    flat = _flatten(record)
    text = _first(flat, TEXT_KEYS)
    if not isinstance(text, str) or not text.strip():
        raise ChunkFileError(
            f"{path}, {where}: no chunk text: expected one of the fields {', '.join(TEXT_KEYS)} "
            f"with non-empty text (found fields: {', '.join(sorted(flat)) or 'none'}). "
            "Add the text or delete that record.")
    index = _as_int(flat.get("chunk_index", flat.get("index")))
    chunk_id = flat.get("chunk_id", flat.get("id"))
    source = _first(flat, SOURCE_KEYS) or default_source
    row = {k: v for k, v in flat.items() if k not in TEXT_KEYS}
    row.update({
        "document": text,
        "source": str(source),
        "chunk_index": position if index is None else index,
        "tdg_chunk_id": str(chunk_id) if chunk_id is not None else str(position if index is None else index),
        "start": _as_int(_first(flat, START_KEYS)),
        "end": _as_int(_first(flat, END_KEYS)),
    })
    return row


def _json_chunks(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ChunkFileError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}. "
                             "Fix the file or re-run the chunker for that document.") from None
    except UnicodeDecodeError:
        raise ChunkFileError(f"{path}: not UTF-8 text; chunk files must be UTF-8 JSON.") from None
    default_source = str(path.name).removesuffix(".json").removesuffix("_chunks")
    metadata: dict[str, Any] = {}
    processing: dict[str, Any] = {}
    if isinstance(data, Mapping) and "chunks" in data:
        if not isinstance(data["chunks"], list):
            raise ChunkFileError(f"{path}: field 'chunks' must be a list of chunk objects, "
                                 f"got {type(data['chunks']).__name__}.")
        metadata = dict(data.get("metadata") or {})
        processing = dict(data.get("processing_info") or {})
        status = data.get("status")
        if status not in (None, "completed"):
            raise ChunkFileError(f"{path}: status is {status!r}, not 'completed' — the chunker did not "
                                 "finish this document. Re-run the chunker for it (or set status).")
        default_source = str(metadata.get("source_file") or metadata.get("file_name") or default_source)
        records, label = data["chunks"], "chunks[{}]"
    elif isinstance(data, list):
        records, label = data, "record {}"
    elif isinstance(data, Mapping):
        records, label = [data], "record {}"
    else:
        raise ChunkFileError(f"{path}: expected a chunk file (an object with 'chunks', a list of chunks or "
                             f"one chunk object), got a JSON {type(data).__name__}.")
    rows = [_chunk(r, path=path, where=label.format(i), position=i, default_source=default_source)
            for i, r in enumerate(records)]
    return rows, metadata, processing


def _jsonl_chunks(path: Path) -> list[dict[str, Any]]:
    records = read_jsonl_or_raise(path, ChunkFileError, "chunk files must be UTF-8 JSONL")
    default_source = path.stem
    positions: dict[str, int] = {}
    rows = []
    for i, record in enumerate(records, start=1):
        source = str(_first(_flatten(record), SOURCE_KEYS) or default_source) if isinstance(record, Mapping) \
            else default_source
        position = positions.get(source, 0)
        positions[source] = position + 1
        rows.append(_chunk(record, path=path, where=f"line {i}", position=position,
                           default_source=default_source))
    return rows


def _text_chunk(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ChunkFileError(f"{path}: not UTF-8 text. Convert it to UTF-8 (or remove it).") from None
    if not text.strip():
        raise ChunkFileError(f"{path}: the file is empty; a text chunk file must hold the chunk text.")
    match = _TEXT_CHUNK_NAME.match(path.stem)
    doc_name = f"{match['doc']}{path.suffix}" if match else path.name
    index = int(match["index"]) if match else 0
    return doc_name, {"document": text, "source": doc_name, "chunk_index": index,
                      "tdg_chunk_id": str(index), "start": None, "end": None, "chunk_file": path.name}


def _outline(doc: ChunkDocument) -> tuple[str, str]:
    """(document_outline, domain): given in the chunk file's metadata, else `ktools seed`'s model-free
    fallback (the title and top-level headings of the document's own text)."""
    from ktools.documents.seed import fallback_outline

    markdown = "\n\n".join(row["document"] for row in doc.rows)
    outline, domain = fallback_outline(markdown, source_file_name(doc.source))
    for key in ("document_outline", "title"):
        if doc.metadata.get(key):
            outline = str(doc.metadata[key])
            break
    return outline, str(doc.metadata.get("domain") or domain)


def _snippet(text: str, limit: int = 1200) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("\n\n"))
    return cut[: end + 1].strip() if end > limit // 2 else cut.strip()


def synthesize_icl(doc: ChunkDocument) -> None:
    """Fill missing ICL fields from the document itself, the way `ktools seed` does without a model:
    outline from its headings, an excerpt of its first substantial chunk, questions from that excerpt."""
    from ktools.documents.seed import fallback_questions

    rows = doc.rows
    outline, domain = _outline(doc)
    for row in rows:
        if not row.get("document_outline"):
            row["document_outline"] = outline
        if not row.get("domain"):
            row["domain"] = domain
    if all(all(row.get(f) for f in ICL_FIELDS) for row in rows):
        return
    example = _snippet(next((r["document"] for r in rows if len(r["document"]) >= 200), rows[0]["document"]))
    queries = fallback_questions(example)
    for row in rows:
        if not row.get("icl_document"):
            row["icl_document"] = example
        for i, query in enumerate(queries, start=1):
            if not row.get(f"icl_query_{i}"):
                row[f"icl_query_{i}"] = query
    doc.icl_synthesized = True
    log.info("%s: the chunks carry no ICL fields (icl_document, icl_query_1..3); using an excerpt of the "
             "document itself and questions drawn from it (%s). For better questions add these fields to "
             "the chunk files, or build a seed with `ktools seed` and run `ktools generate --seed`.",
             ", ".join(doc.files), "; ".join(queries))


CHUNK_FILE_TYPES = (".json", ".jsonl", ".txt", ".md")


def _read_chunk_file(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(rows, document metadata, processing info) of one chunk file; rows carry their `source`."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _json_chunks(path)
    if suffix == ".jsonl":
        return _jsonl_chunks(path), {}, {}
    _, row = _text_chunk(path)
    return [row], {}, {}


def read_chunks_dir(folder: str | Path) -> ChunkLoad:
    """All chunk documents of a folder; a bad file is listed in `errors`, the others still load."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ChunkFileError(f"chunks folder {folder} does not exist (set --chunks-dir or GENERATOR_PROCESS_DIR)")
    load = ChunkLoad()
    by_source: dict[str, ChunkDocument] = {}

    def document(source: str, path: Path, metadata: Mapping[str, Any] | None = None,
                 processing: Mapping[str, Any] | None = None) -> ChunkDocument:
        doc = by_source.get(source)
        if doc is None:
            meta = dict(metadata or {}) or file_metadata(source)
            meta.setdefault("file_name", source_file_name(source))
            meta.setdefault("source_file", source)
            doc = by_source[source] = ChunkDocument(source=source, files=[], metadata=meta,
                                                    processing_info=dict(processing or {}))
        if path.name not in doc.files:
            doc.files.append(path.name)
        return doc

    candidates = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(QA_FILE_SUFFIX) \
                or path.name in OWN_OUTPUTS:
            continue
        if path.suffix.lower() in CHUNK_FILE_TYPES:
            candidates.append(path)
        else:
            log.debug("skipping %s (not a chunk file type)", path)
    for path, (rows, metadata, processing) in load_each(candidates, _read_chunk_file, load.errors,
                                                        ChunkFileError, log):
        for row in rows:
            document(row["source"], path, metadata, processing).rows.append(row)
    stems = unique_stems(by_source)
    stem_names = {f"{stem}{QA_FILE_SUFFIX}" for source, stem in stems.items()
                  if not any(f.endswith(CHUNK_FILE_SUFFIX) for f in by_source[source].files)}
    used_names: set[str] = set()
    for source, doc in by_source.items():
        if not doc.rows:
            continue
        doc.rows.sort(key=lambda r: (r["chunk_index"], r["start"] if r["start"] is not None else 0))
        doc.qa_name = f"{stems[source]}{QA_FILE_SUFFIX}"
        if len(doc.files) == 1 and doc.files[0].endswith(CHUNK_FILE_SUFFIX):
            # The reference tool names the Q&A file after the chunk file: X_chunks.json -> X_qa.json.
            by_file = doc.files[0][: -len(CHUNK_FILE_SUFFIX)] + QA_FILE_SUFFIX
            if by_file not in used_names and by_file not in stem_names:
                doc.qa_name = by_file
        used_names.add(doc.qa_name)
        seen: set[str] = set()
        for row in doc.rows:
            base = f"{stems[source]}#{row['tdg_chunk_id']}"
            cid, n = base, 2
            while cid in seen:
                cid, n = f"{base}~{n}", n + 1
            seen.add(cid)
            row["chunk_id"] = cid
        doc.processing_info.setdefault("total_chunks", len(doc.rows))
        synthesize_icl(doc)
        load.documents.append(doc)
    if not load.documents and not load.errors:
        raise ChunkFileError(f"{folder}: no chunk files found (expected *.json, *.jsonl, *.txt or *.md files "
                             "with chunk text). Point --chunks-dir at the chunker's output folder.")
    return load
