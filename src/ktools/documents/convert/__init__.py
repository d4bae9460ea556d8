"""Conversion of sources (files, folders, http(s) URLs) to markdown.

`convert_source(src)` converts one source into a `ConvertedDocument`;
`convert_sources(sources, out_dir)` expands folders (recursively), converts each
source, writes `<name>.md` files and `manifest.json` to `out_dir`, and collects
errors instead of stopping: one bad file never stops the others.

Default converters (chosen on evidence, see 02_Data_Processing/README.md):
.md/.markdown/.txt → decoded as is; .html/.htm → trafilatura (+ bs4 cleanup);
.pdf → pdfplumber words read in layout order (pypdf checks; `pdf_password` opens encrypted
files; pages that lost glyphs are listed in `unmapped_glyph_pages`); .docx → python-docx. `backend="docling"` uses
docling for HTML/DOCX where `docling` is importable (optional; not for PDF: its
layout models need the hub).

Documents are untrusted input: downloads, ZIP packages and conversion time are bounded
(`ktools.documents.limits`), and a URL source is kept only in its redacted form
(`urls.redact_url`: no user-info, no secret query values) in names, manifest and errors.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ktools.documents.errors import DocumentError
from ktools.documents.limits import ConversionLimits, check_archive, time_limit
from ktools.documents.manifest import Manifest, ManifestEntry
from ktools.documents.urls import extension_for, fetch_url, is_url, redact_url, url_slug

log = logging.getLogger(__name__)

TEXT_EXTENSIONS = (".md", ".markdown", ".txt")
SUPPORTED_EXTENSIONS = (*TEXT_EXTENSIONS, ".html", ".htm", ".pdf", ".docx")
BACKENDS = ("auto", "docling")
_HINTS = {".doc": "old Word format: open it and save as .docx",
          ".rtf": "save it as .docx or .txt", ".odt": "save it as .docx",
          ".pptx": "export the slides as PDF", ".xlsx": "export the sheet as CSV/markdown table or PDF"}


@dataclass
class ConvertedDocument:
    source: str
    markdown: str
    converter: str
    sha256: str
    pages: int | None = None
    page_offsets: list[int] | None = None
    encoding: str | None = None
    title: str | None = None
    warnings: list[str] = field(default_factory=list)
    unmapped_glyph_pages: list[int] = field(default_factory=list)  # PDF pages that lost text (cid:N glyphs)


@dataclass
class ConversionResult:
    documents: list[ManifestEntry]
    errors: list[DocumentError]
    out_dir: Path
    manifest_path: Path

    @property
    def ok(self) -> bool:
        return not self.errors


def iter_sources(sources: str | Path | Iterable[str | Path]) -> Iterator[str]:
    """Expand the given sources: URLs as they are, folders recursively (sorted, hidden
    files skipped), files as absolute paths. A missing path is yielded too, so that it
    gets its own error."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    for source in sources:
        text = str(source)
        if is_url(text):
            yield text
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            # Every file is a source (unsupported ones get their own error), except hidden
            # files, our own manifest and ICL side files.
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden and child.name != "manifest.json" \
                        and not child.name.endswith(".icl.yaml"):
                    yield str(child.resolve())
        else:
            yield str(path.resolve()) if path.exists() else text


def _title_of(markdown: str) -> str | None:
    for line in markdown.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


def convert_bytes(data: bytes, source: str, extension: str, backend: str = "auto",
                  limits: ConversionLimits | None = None, *, pdf_password: str | None = None) -> ConvertedDocument:
    """Convert the bytes of one document of type `extension` (".pdf", ".html", ...)."""
    limits = limits or ConversionLimits()
    if backend not in BACKENDS:
        raise ValueError(f"unknown conversion backend {backend!r}; use one of {BACKENDS}")
    extension = extension.lower()
    sha = hashlib.sha256(data).hexdigest()
    if not data.strip():
        raise DocumentError(source, "the file is empty", "check you passed the right file")
    warnings: list[str] = []
    pages = offsets = encoding = None
    unmapped_pages: list[int] = []
    if extension not in SUPPORTED_EXTENSIONS:
        hint = _HINTS.get(extension, f"supported: {', '.join(SUPPORTED_EXTENSIONS)}")
        raise DocumentError(source, f"unsupported file type {extension or '(no extension)'!r}", hint)
    if extension == ".docx":
        check_archive(data, source, limits)
    if backend == "docling" and extension in (".html", ".htm", ".docx"):
        from ktools.documents.convert.docling_backend import docling_to_markdown

        markdown, converter = docling_to_markdown(data, source, extension), "docling"
    elif extension in TEXT_EXTENSIONS:
        from ktools.documents.convert.text import text_to_markdown

        markdown, encoding = text_to_markdown(data, source, warnings)
        converter = "text"
    elif extension in (".html", ".htm"):
        from ktools.documents.convert.html import html_to_markdown
        from ktools.documents.convert.text import decode_text

        html, encoding = decode_text(data, source, warnings)
        markdown, converter = html_to_markdown(html, source, warnings), "trafilatura"
    elif extension == ".pdf":
        from ktools.documents.convert.pdf import pdf_to_markdown

        pdf = pdf_to_markdown(data, source, warnings, password=pdf_password)
        markdown, pages, offsets, converter = pdf.markdown, pdf.pages, pdf.page_offsets, pdf.converter
        unmapped_pages = pdf.unmapped_glyph_pages
    else:
        from ktools.documents.convert.docx import docx_to_markdown

        markdown, converter = docx_to_markdown(data, source, warnings), "python-docx"
    if not markdown.strip():
        raise DocumentError(source, "no text after conversion", "check the document has a text layer/content")
    if not markdown.endswith("\n"):
        markdown += "\n"
    for message in warnings:
        log.warning(message)
    return ConvertedDocument(source=source, markdown=markdown, converter=converter, sha256=sha, pages=pages,
                             page_offsets=offsets, encoding=encoding, title=_title_of(markdown),
                             warnings=warnings, unmapped_glyph_pages=unmapped_pages)


def convert_source(source: str | Path, backend: str = "auto", timeout: float = 30.0,
                   limits: ConversionLimits | None = None, *, pdf_password: str | None = None) -> ConvertedDocument:
    """Convert one file or URL (a URL's document carries its redacted form as `source`;
    `pdf_password` opens encrypted PDFs)."""
    limits = limits or ConversionLimits()
    text = str(source)
    if is_url(text):
        fetched = fetch_url(text, timeout=timeout, deadline=limits.download_deadline,
                            max_bytes=limits.download_max_bytes)
        shown = redact_url(text)
        with time_limit(limits.file_seconds, shown):
            return convert_bytes(fetched.data, shown, extension_for(fetched.url, fetched.content_type, fetched.data),
                                 backend, limits, pdf_password=pdf_password)
    path = Path(text).expanduser()
    if not path.exists():
        raise DocumentError(text, "no such file or folder", "check the path (relative paths start at the cwd)")
    if path.is_dir():
        raise DocumentError(text, "is a folder", "use convert_sources() for folders")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(text, f"cannot read the file ({exc.strerror})", "check the permissions") from None
    with time_limit(limits.file_seconds, str(path)):
        return convert_bytes(data, str(path), path.suffix, backend, limits, pdf_password=pdf_password)


def output_name(source: str, taken: set[str]) -> str:
    """A readable, unique converted-file name: `<stem>.md` (URL: host-path slug)."""
    if is_url(source):
        source = redact_url(source)
        stem = url_slug(source)
    else:
        path = Path(source)
        suffix = path.suffix.lower().lstrip(".")
        stem = path.stem if suffix in ("md", "markdown", "") else f"{path.stem}_{suffix}"
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem) or "document"
    name = f"{stem}.md"
    if name in taken:
        name = f"{stem}-{hashlib.sha1(source.encode()).hexdigest()[:8]}.md"
    taken.add(name)
    return name


def convert_sources(sources: str | Path | Iterable[str | Path], out_dir: str | Path, *,
                    backend: str = "auto", progress: bool | Callable = True, timeout: float = 30.0,
                    limits: ConversionLimits | None = None, pdf_password: str | None = None) -> ConversionResult:
    """Convert every source, write `<name>.md` + `manifest.json` into `out_dir`.

    Errors are collected (`result.errors`, also in the manifest) and logged at the end;
    they never stop the other sources. Each converted file is written atomically, and the
    manifest is written even when the run is interrupted, listing what did convert.
    """
    from ktools.io import write_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    expanded = list(iter_sources(sources))
    if not expanded:
        raise DocumentError(str(sources), "no sources given (or the folder is empty)",
                            "pass files, folders or http(s) URLs")
    iterator: Iterable[str] = expanded
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm([redact_url(s) if is_url(s) else s for s in expanded], desc="converting", unit="doc")
        iterator = (source for source, _ in zip(expanded, iterator, strict=True))
    entries: list[ManifestEntry] = []
    errors: list[DocumentError] = []
    taken: set[str] = set()
    manifest_path = out / "manifest.json"
    try:
        for source in iterator:
            shown = redact_url(source) if is_url(source) else source
            try:
                doc = convert_source(source, backend=backend, timeout=timeout, limits=limits, pdf_password=pdf_password)
            except DocumentError as exc:
                errors.append(exc)
                continue
            except Exception as exc:  # a converter bug must not lose the other documents
                log.exception("unexpected error converting %s", shown)
                errors.append(DocumentError(shown, f"unexpected {type(exc).__name__}: {exc}",
                                            "please report this with the file if you can"))
                continue
            name = output_name(source, taken)
            write_atomic(out / name, doc.markdown)
            entries.append(ManifestEntry(source=shown, sha256=doc.sha256, converter=doc.converter, output=name,
                                         characters=len(doc.markdown), pages=doc.pages,
                                         page_offsets=doc.page_offsets, encoding=doc.encoding, title=doc.title,
                                         warnings=doc.warnings, unmapped_glyph_pages=doc.unmapped_glyph_pages))
    finally:
        # Also on Ctrl+C: the files written so far stay usable by `ktools chunk`.
        Manifest(documents=entries, errors=[e.as_dict() for e in errors]).write(manifest_path)
    if errors:
        from ktools.documents.errors import format_errors

        log.error(format_errors(errors))
    log.info("converted %d of %d source(s) into %s", len(entries), len(expanded), out)
    return ConversionResult(entries, errors, out, manifest_path)
