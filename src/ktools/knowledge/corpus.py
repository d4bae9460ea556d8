"""The user's documents as step 02 left them: converted markdown and chunks, per source."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from ktools.io import iter_jsonl
from ktools.knowledge.facts import DocumentFacts, document_facts

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    """Step 02's output is missing or unusable for the knowledge views; the message says what to do."""


def load_chunks(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Chunks of `chunks.jsonl` grouped by source, in file order."""
    if not Path(path).is_file():
        raise CorpusError(f"{path} not found: the knowledge views and the corpus exam are built from step "
                          "02's chunks. Run step 02 (02_Data_Processing) first, or set VIEWS=none and "
                          "CORPUS_EXAM=False to mix step 03's rows alone.")
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line, row in enumerate(iter_jsonl(path), start=1):
        for name in ("document", "source", "chunk_id"):
            if not isinstance(row.get(name), str):
                raise CorpusError(f"{path}, record {line}: field {name!r} must be a string (step 02 writes it); "
                                  "re-run step 02")
        by_source[row["source"]].append(row)
    return dict(by_source)


def _converted_texts(manifest_path: Path) -> dict[str, str]:
    """Converted markdown by the names chunks use for their source (output name and source name)."""
    from ktools.documents.manifest import Manifest

    texts: dict[str, str] = {}
    if not manifest_path.is_file():
        return texts
    manifest = Manifest.read(manifest_path)
    for entry in manifest.documents:
        file = manifest_path.parent / entry.output
        if not file.is_file():
            continue
        text = file.read_text(encoding="utf-8")
        for name in {entry.output, Path(entry.source).name, entry.source}:
            texts.setdefault(name, text)
    return texts


def load_corpus(chunks_path: Path, manifest_path: Path) -> tuple[dict[str, DocumentFacts],
                                                                  dict[str, list[dict[str, Any]]]]:
    """Facts and chunks of every source. A source without its converted file is read from its
    chunks joined in order (overlaps repeat a few sentences, which does no harm)."""
    chunks = load_chunks(chunks_path)
    texts = _converted_texts(Path(manifest_path))
    corpus = {}
    for source, rows in chunks.items():
        text = texts.get(source)
        if text is None:
            log.info("%s: converted markdown not found beside the manifest; using its chunks", source)
            text = "\n\n".join(r["document"] for r in rows)
        corpus[source] = document_facts(text, source)
    return corpus, chunks
