"""Chunk files in the reference chunker's format (`<document>_chunks.json`), for tests of
`ktools generate --chunks-dir` and the Training Data Generator compatibility layer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def write_chunker_file(folder: Path, file_name: str, texts: Sequence[str], *, file_size: int = 1000,
                       offset_step: int = 60, source_dir: str = "/docs", chunk_size: int = 500,
                       chunk_overlap: int = 50, chunk_file: str | None = None) -> Path:
    """`<stem>_chunks.json` (or `chunk_file`) for the document `file_name` (e.g. "Harbour.pdf"):
    metadata, processing_info and one chunk per text, chunk i starting at `offset_step * i`."""
    path = folder / (chunk_file or f"{Path(file_name).stem}_chunks.json")
    path.write_text(json.dumps({
        "metadata": {"file_name": file_name, "source_file": f"{source_dir}/{file_name}",
                     "file_type": Path(file_name).suffix, "file_size": file_size,
                     "processed_at": "2025-01-01T00:00:00"},
        "processing_info": {"splitting_strategy": "recursive", "chunk_size": chunk_size,
                            "chunk_overlap": chunk_overlap, "total_chunks": len(texts)},
        "chunks": [{"text": t, "chunk_id": f"0_{i}", "chunk_index": i, "start_char": offset_step * i,
                    "end_char": offset_step * i + len(t)} for i, t in enumerate(texts)],
        "status": "completed"}))
    return path
