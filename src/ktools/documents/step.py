"""Step 02 as three calls (used by the notebook and `ktools prepare`):

    convert_step(sources)          → output/step_02/converted/*.md + manifest.json
    chunk_step(max_tokens=…)       → output/step_02/chunks.jsonl
    seed_step(mode="given"|"teacher", …) → output/step_02/seed_data.jsonl (+ icl_drafts.json)

Each reads only what the previous one wrote, so each can be re-run alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.config import Settings, load_settings
from ktools.documents.chunking import chunk_markdown
from ktools.documents.convert import ConversionResult, convert_sources
from ktools.documents.errors import DocumentError, SeedValidationError
from ktools.documents.limits import ConversionLimits
from ktools.documents.manifest import Manifest
from ktools.documents.seed import (
    ICL_FIELDS,
    DraftCache,
    IclFields,
    draft_icl,
    given_fields,
    given_for,
    load_icl_file,
    seed_rows,
    validate_seed,
)
from ktools.documents.urls import redact_url
from ktools.io import iter_jsonl, write_jsonl
from ktools.paths import OutputPaths

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 768
DEFAULT_OVERLAP_TOKENS = 64
DEFAULT_MIN_TOKENS = 128
# "auto": a source's given values when they are complete, else the teacher drafts what is missing
# (given values still win field by field) — a user's own documents need no ICL file to start.
ICL_MODES = ("auto", "given", "teacher")


def _paths(settings: Settings | None) -> OutputPaths:
    return OutputPaths.from_settings(settings or load_settings())


def drafts_path(paths: OutputPaths) -> Path:
    return paths.step(2) / "icl_drafts.json"


def convert_step(sources: str | Path | Iterable[str | Path], settings: Settings | None = None, *,
                 backend: str = "auto", progress: bool = True, timeout: float = 30.0,
                 pdf_password: str | None = None, limits: ConversionLimits | None = None) -> ConversionResult:
    """Convert the sources into output/step_02/converted/. Encrypted PDFs open with `pdf_password`
    (default: the PDF_PASSWORD setting); pages that lost text are listed in the manifest."""
    settings = settings or load_settings()
    password = pdf_password if pdf_password is not None else settings.pdf_password.reveal() or None
    return convert_sources(sources, _paths(settings).converted_dir, backend=backend, progress=progress,
                           timeout=timeout, pdf_password=password, limits=limits)


@dataclass
class ChunkStepResult:
    rows: list[dict[str, Any]]
    warnings: list[str]
    path: Path
    tokens_per_source: dict[str, int] = field(default_factory=dict)


def chunk_step(settings: Settings | None = None, *, max_tokens: int = DEFAULT_MAX_TOKENS,
               overlap_tokens: int = DEFAULT_OVERLAP_TOKENS, min_tokens: int = DEFAULT_MIN_TOKENS,
               tokenizer: Any = None) -> ChunkStepResult:
    """Chunk every converted document of the manifest with the student's tokenizer."""
    settings = settings or load_settings()
    paths = _paths(settings)
    manifest = Manifest.read(paths.conversion_manifest)
    if not manifest.documents:
        raise DocumentError(str(paths.conversion_manifest), "no converted documents",
                            "every source failed to convert; fix the errors listed by the conversion")
    if tokenizer is None:
        from ktools.models import load_offsets_tokenizer

        tokenizer = load_offsets_tokenizer(settings.effective_tokenizer)
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    per_source: dict[str, int] = {}
    for entry in manifest.documents:
        converted = paths.converted_dir / entry.output
        if not converted.is_file():
            raise DocumentError(str(converted), f"converted file of {entry.source} is missing",
                                "re-run the conversion (`ktools convert-docs …` or the notebook's conversion cell)")
        markdown = converted.read_text(encoding="utf-8")
        result = chunk_markdown(markdown, tokenizer, source=entry.output, max_tokens=max_tokens,
                                overlap_tokens=overlap_tokens, min_tokens=min_tokens,
                                page_offsets=entry.page_offsets)
        rows += [c.as_row() for c in result.chunks]
        warnings += result.warnings
        per_source[entry.output] = result.n_tokens
    write_jsonl(paths.chunks, rows)
    log.info("%d chunk(s) from %d document(s) → %s", len(rows), len(manifest.documents), paths.chunks)
    return ChunkStepResult(rows, warnings, paths.chunks, per_source)


@dataclass
class SeedStepResult:
    rows: list[dict[str, Any]]
    icl: dict[str, IclFields]
    path: Path
    drafts_path: Path | None = None

    @property
    def teacher_failures(self) -> list[str]:
        """Sources whose ICL drafts fell back because the teacher failed (not cached; re-asked next run)."""
        return [source for source, icl in self.icl.items() if icl.teacher_failed]


def seed_step(settings: Settings | None = None, *, mode: str = "auto", given: Mapping[str, Any] | None = None,
              icl_file: str | Path | None = None, client: Any = None, refresh: bool = False,
              tokenizer: Any = None, progress: bool = True) -> SeedStepResult:
    """Add ICL fields to every chunk, validate, write seed_data.jsonl (only if valid)."""
    if mode not in ICL_MODES:
        raise ValueError(f"ICL mode {mode!r} is not one of {ICL_MODES}")
    settings = settings or load_settings()
    paths = _paths(settings)
    manifest = Manifest.read(paths.conversion_manifest)
    if not paths.chunks.is_file():
        raise FileNotFoundError(f"{paths.chunks}: no chunks yet; run the chunking first (`ktools chunk`)")
    chunk_rows = list(iter_jsonl(paths.chunks))
    mapping = load_icl_file(icl_file) if icl_file else None
    used_sources = {row["source"] for row in chunk_rows}
    entries = [e for e in manifest.documents if e.output in used_sources]
    icl: dict[str, IclFields] = {}
    cache = DraftCache(drafts_path(paths)) if mode != "given" else None
    own_client = False
    try:
        iterator: Iterable = entries
        if progress and mode != "given":
            from tqdm.auto import tqdm

            iterator = tqdm(entries, desc="drafting ICL", unit="doc")
        for entry in iterator:
            values = given_for(entry.source, entry.output, mapping, given)
            if mode == "given" or (mode == "auto" and _complete(values)):
                icl[entry.output] = given_fields(values, entry.source)
                icl[entry.output].sha256 = entry.sha256
                continue
            assert cache is not None
            cached = None if refresh else cache.get(entry.sha256)
            if cached is not None:
                for key, value in values.items():  # the user's values still win
                    cached.values[key], cached.origin[key] = value, "given"
                icl[entry.output] = cached
                continue
            if client is None:
                from ktools.llm.client import TeacherClient

                client, own_client = TeacherClient.from_settings(settings), True
            if tokenizer is None:
                from ktools.models import load_tokenizer

                tokenizer = load_tokenizer(settings.effective_tokenizer)
            markdown = (paths.converted_dir / entry.output).read_text(encoding="utf-8")
            fields = draft_icl(markdown, entry.output, entry.sha256, client, tokenizer, given=values)
            if fields.teacher_failed:  # fallbacks standing in for an unreachable teacher: ask again next run
                log.warning("%s: the teacher failed; its ICL fields are fallbacks, not cached as drafts",
                            entry.output)
            else:
                cache.put(fields)
            icl[entry.output] = fields
    finally:
        if own_client and client is not None:
            client.close()
    rows = seed_rows(chunk_rows, icl)
    problems = validate_seed(rows, icl)
    if problems:
        raise SeedValidationError(problems)
    write_jsonl(paths.seed_data, rows)
    log.info("%d seed row(s) → %s", len(rows), paths.seed_data)
    return SeedStepResult(rows, icl, paths.seed_data, cache.path if cache else None)


def _complete(values: Mapping[str, Any]) -> bool:
    from ktools.documents.seed import normalise_given

    try:
        fields = normalise_given(values, "given")
    except Exception:  # noqa: BLE001 - incomplete or odd values are drafted instead
        return False
    return all(str(fields.get(name) or "").strip() for name in ICL_FIELDS)


# --- tables for display --------------------------------------------------------------

def documents_table(result: ConversionResult | None = None, settings: Settings | None = None,
                    chunks: list[dict[str, Any]] | None = None):
    """One row per converted document (+ chunk counts when `chunks` is given)."""
    import pandas as pd

    documents = result.documents if result is not None else Manifest.read(_paths(settings).conversion_manifest).documents
    rows = []
    for d in documents:
        row = {"source": Path(d.source).name if "://" not in d.source else d.source, "converter": d.converter,
               "pages": d.pages, "characters": d.characters, "output": d.output, "warnings": len(d.warnings),
               "pages_lost_text": ", ".join(map(str, d.unmapped_glyph_pages))}
        if chunks is not None:
            mine = [c for c in chunks if c["source"] == d.output]
            row.update(chunks=len(mine), tokens_min=min((c["n_tokens"] for c in mine), default=0),
                       tokens_max=max((c["n_tokens"] for c in mine), default=0))
        rows.append(row)
    return pd.DataFrame(rows)


def chunks_table(rows: list[dict[str, Any]], preview: int = 80):
    import pandas as pd

    return pd.DataFrame([{"chunk_id": r["chunk_id"], "n_tokens": r["n_tokens"], "start": r["start"], "end": r["end"],
                          "section": " › ".join(r["heading_path"][-2:]),
                          "text": r["document"][:preview].replace("\n", " ") + "…"} for r in rows])


def icl_table(icl: Mapping[str, IclFields]):
    """One row per (source, field): value and where it came from (given / drafted / excerpt / fallback)."""
    import pandas as pd

    rows = []
    for source, fields in icl.items():
        for key, value in fields.values.items():
            rows.append({"source": source, "field": key, "origin": fields.origin.get(key, ""), "value": value})
    return pd.DataFrame(rows)


# --- notebook helpers ------------------------------------------------------------------

def resolve_sources(sources: str | Iterable[str], repo_root: Path) -> list[str]:
    """Notebook SOURCES: URLs as they are; relative paths are relative to the repository root."""
    if isinstance(sources, str | Path):
        sources = [str(sources)]
    out = []
    for source in sources:
        text = str(source).strip()
        if not text:
            continue
        if "://" in text or Path(text).expanduser().is_absolute():
            out.append(text)
        else:
            out.append(str(repo_root / text))
    return out


def given_from_parameters(domain: str = "", outline: str = "", document: str = "",
                          queries: Iterable[str] | None = None) -> dict[str, Any]:
    """ICL values from notebook parameters (empty ones are left out)."""
    given: dict[str, Any] = {}
    if domain:
        given["domain"] = domain
    if outline:
        given["document_outline"] = outline
    if document:
        given["icl_document"] = document
    queries = [q for q in (queries or []) if q and q.strip()]
    if queries:
        if len(queries) != 3:
            raise ValueError(f"ICL_QUERIES needs exactly three questions (got {len(queries)})")
        given["icl_queries"] = queries
    return given


def chunk_histogram(rows: list[dict[str, Any]], max_tokens: int | None = None, bins: int = 30):
    """Histogram of chunk token counts (matplotlib figure)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    counts = [r["n_tokens"] for r in rows]
    ax.hist(counts, bins=bins, color="#4C72B0", edgecolor="white")
    if max_tokens:
        ax.axvline(max_tokens, color="#C44E52", linestyle="--", label=f"max_tokens = {max_tokens}")
        ax.legend()
    ax.set_xlabel("tokens per chunk")
    ax.set_ylabel("chunks")
    ax.set_title(f"{len(counts)} chunks")
    fig.tight_layout()
    return fig


def written_files(settings: Settings | None = None):
    """The step-02 files on disk (path relative to output/, size)."""
    import pandas as pd

    paths = _paths(settings)
    step = paths.step(2)
    rows = [{"file": str(p.relative_to(paths.root)), "bytes": p.stat().st_size}
            for p in sorted(step.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    return pd.DataFrame(rows)


def sources_table(sources: Iterable[str], repo_root: Path):
    """The resolved sources: kind, and path relative to the repository where possible."""
    import pandas as pd

    rows = []
    for source in sources:
        if "://" in source:
            rows.append({"source": redact_url(source), "kind": "URL", "found": None})
            continue
        path = Path(source)
        try:
            shown = str(path.relative_to(repo_root))
        except ValueError:
            shown = str(path)
        rows.append({"source": shown, "kind": "folder" if path.is_dir() else path.suffix.lower() or "file",
                     "found": path.exists()})
    return pd.DataFrame(rows)
