"""PDF → markdown from the text layer, with reading order and page provenance.

- pypdf checks the file first: not a PDF / corrupted / password-protected each get
  their own error (an owner-only password that opens with "" is accepted).
- pdfplumber gives words with positions and font sizes: lines are rebuilt from word
  positions; a line in a font clearly larger than the body text becomes a heading
  (sizes ranked into levels); bullet/number lines become list items; ruled tables
  become markdown tables; a page with two text columns (a vertical gutter no line
  crosses) is read left column first, then right.
- Page provenance: the returned `page_offsets[i]` is the character offset in the
  markdown where page i+1 starts (stored in the manifest; chunks carry `pages`).
- A PDF without any text layer is an error ("no extractable text (scanned?)");
  single text-less pages are a warning.

Without pdfplumber (docs extra not installed) pypdf's plain text is used.
"""

from __future__ import annotations

import io
import logging
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field

from ktools.documents.errors import DocumentError

log = logging.getLogger(__name__)

# "(cid:N)" is a bullet glyph without a unicode mapping (e.g. ZapfDingbats).
_BULLET = re.compile(r"^(?:[•◦▪●○■‣–\-*]\s+|\(cid:\d+\)\s*)(?=\S)")
_NUMBERED = re.compile(r"^(\d{1,3}[.)]|\([a-z0-9]{1,3}\)|[a-z][.)])\s+")


@dataclass
class _Line:
    top: float
    bottom: float
    x0: float
    x1: float
    text: str
    size: float
    bold: bool
    words: list = field(default_factory=list)


def _check_pdf(data: bytes, source: str):
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if b"%PDF" not in data[:1024]:
        raise DocumentError(source, "not a PDF file (no %PDF header)",
                            "the file may be corrupted, truncated or have the wrong extension")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except Exception:  # missing crypto backend or bad encryption dict
                opened = 0
            if not opened:
                raise DocumentError(source, "the PDF is password-protected",
                                    "remove the password (e.g. `qpdf --decrypt --password=PW in.pdf out.pdf`) "
                                    "or export an unprotected copy")
        n_pages = len(reader.pages)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise DocumentError(source, f"corrupted or unreadable PDF ({exc})",
                            "re-export the PDF or repair it (e.g. `qpdf in.pdf out.pdf`)") from None
    if n_pages == 0:
        raise DocumentError(source, "the PDF has no pages", "re-export the PDF")
    return reader


def pdf_to_markdown(data: bytes, source: str, warnings: list[str]) -> tuple[str, int, list[int], str]:
    """Return (markdown, pages, page_offsets, converter name)."""
    reader = _check_pdf(data, source)
    try:
        import pdfplumber  # noqa: F401
    except ImportError:
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        converter = "pypdf"
    else:
        pages = _pdfplumber_pages(data, source)
        converter = "pdfplumber"
    empty = [i + 1 for i, text in enumerate(pages) if not text.strip()]
    if len(empty) == len(pages):
        raise DocumentError(source, "no extractable text (scanned?)",
                            "the PDF has no text layer; run OCR first (e.g. `ocrmypdf in.pdf out.pdf`)")
    if empty:
        warnings.append(f"{source}: page(s) {', '.join(map(str, empty))} have no text layer (scanned?); skipped")
    parts: list[str] = []
    offsets: list[int] = []
    position = 0
    for text in pages:
        offsets.append(position)
        text = text.strip()
        if text:
            text += "\n\n"
            parts.append(text)
            position += len(text)
    return "".join(parts).rstrip() + "\n", len(pages), offsets, converter


def _pdfplumber_pages(data: bytes, source: str) -> list[str]:
    import pdfplumber

    try:
        pdf = pdfplumber.open(io.BytesIO(data), password="")
    except Exception as exc:
        raise DocumentError(source, f"corrupted or unreadable PDF ({type(exc).__name__}: {exc})",
                            "re-export the PDF or repair it (e.g. `qpdf in.pdf out.pdf`)") from None
    with pdf:
        page_items = []
        sizes: Counter[float] = Counter()
        for number, page in enumerate(pdf.pages, start=1):
            try:
                items = _page_items(page)
            except Exception as exc:  # one broken page must not lose the others
                raise DocumentError(source, f"cannot read the page ({type(exc).__name__}: {exc})",
                                    "re-export the PDF", page=number) from None
            page_items.append(items)
            for kind, item in items:
                if kind == "line":
                    sizes[round(item.size, 1)] += len(item.text)
    _drop_running_lines(page_items)
    body = sizes.most_common(1)[0][0] if sizes else 10.0
    heading_sizes = sorted({s for s in sizes if s >= body * 1.15}, reverse=True)[:4]
    levels = {s: i + 1 for i, s in enumerate(heading_sizes)}
    return [_render(items, body, levels) for items in page_items]


def _drop_running_lines(page_items: list[list[tuple[str, object]]]) -> None:
    """Remove running headers/footers: first/last lines that repeat (digits aside) on most pages."""
    if len(page_items) < 3:
        return
    def key(line: _Line) -> str:
        return re.sub(r"\d+", "#", line.text).strip().lower()

    counts: Counter[str] = Counter()
    for items in page_items:
        lines = [it for kind, it in items if kind == "line"]
        edge = {key(ln) for ln in lines[:2] + lines[-2:]}
        counts.update(edge)
    running = {k for k, n in counts.items() if n >= max(3, len(page_items) // 2)}
    for items in page_items:
        lines = [it for kind, it in items if kind == "line"]
        edge_ids = {id(ln) for ln in lines[:2] + lines[-2:] if key(ln) in running}
        items[:] = [(kind, it) for kind, it in items if id(it) not in edge_ids]


def _page_items(page) -> list[tuple[str, object]]:
    tables = page.find_tables()
    boxes = [t.bbox for t in tables]
    words = page.extract_words(extra_attrs=["size", "fontname"], keep_blank_chars=False)

    def in_table(w) -> bool:
        cx, cy = (w["x0"] + w["x1"]) / 2, (w["top"] + w["bottom"]) / 2
        return any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes)

    words = [w for w in words if not in_table(w)]
    lines = _ordered_lines(words, float(page.width))
    items: list[tuple[float, str, object]] = [(ln.top, "line", ln) for ln in lines]
    for table in tables:
        rows = [[(c or "").replace("\n", " ").replace("|", "\\|").strip() for c in row] for row in table.extract()]
        rows = [r for r in rows if any(r)]
        if rows:
            items.append((table.bbox[1], "table", rows))
    # Tables keep their vertical place; lines are already in reading order (columns).
    if any(kind == "table" for _, kind, _ in items):
        items.sort(key=lambda it: it[0])
    return [(kind, obj) for _, kind, obj in items]


def _group_lines(words: list[dict]) -> list[_Line]:
    lines: list[_Line] = []
    for w in sorted(words, key=lambda w: (round(w["top"]), w["x0"])):
        tolerance = max(2.0, 0.4 * float(w["size"]))
        for line in reversed(lines[-3:]):
            if abs(line.top - w["top"]) <= tolerance:
                line.words.append(w)
                break
        else:
            lines.append(_Line(w["top"], w["bottom"], w["x0"], w["x1"], "", w["size"], False, [w]))
    for line in lines:
        line.words.sort(key=lambda w: w["x0"])
        line.x0 = min(w["x0"] for w in line.words)
        line.x1 = max(w["x1"] for w in line.words)
        line.bottom = max(w["bottom"] for w in line.words)
        line.text = " ".join(w["text"] for w in line.words)
        line.size = statistics.median(float(w["size"]) for w in line.words)
        line.bold = all("bold" in str(w.get("fontname", "")).lower() for w in line.words)
    return lines


def _ordered_lines(words: list[dict], width: float) -> list[_Line]:
    """Lines in reading order; two-column regions are read left column first."""
    if not words:
        return []
    gutter = _find_gutter(words, width)
    if gutter is None:
        return _group_lines(words)
    left = [w for w in words if w["x1"] <= gutter]
    right = [w for w in words if w["x0"] >= gutter]
    spanning = [w for w in words if w["x0"] < gutter < w["x1"]]
    # Full-width lines (titles) split the page into regions; each region is read by column.
    span_lines = _group_lines(spanning)
    cuts = [ln.top for ln in span_lines] + [float("inf")]
    ordered: list[_Line] = []
    previous = float("-inf")
    for index, cut in enumerate(cuts):
        ordered += _group_lines([w for w in left if previous <= w["top"] < cut])
        ordered += _group_lines([w for w in right if previous <= w["top"] < cut])
        if index < len(span_lines):
            ordered.append(span_lines[index])
        previous = cut
    return ordered


def _find_gutter(words: list[dict], width: float) -> float | None:
    lines = _group_lines(words)
    if len(lines) < 3:
        return None
    best, best_score = None, None
    for step in range(30, 71, 2):
        x = width * step / 100
        crossing = sum(1 for w in words if w["x0"] < x < w["x1"])
        both = [ln for ln in lines if any(w["x1"] <= x for w in ln.words) and any(w["x0"] >= x for w in ln.words)]
        if crossing or len(both) < 3:
            continue
        # Text columns are wide prose on both sides; table columns are short cells.
        left_width = statistics.median(max(w["x1"] for w in ln.words if w["x1"] <= x) -
                                       min(w["x0"] for w in ln.words) for ln in both)
        if left_width < 0.25 * width:
            continue
        score = len(both)
        if best_score is None or score > best_score:
            best, best_score = x, score
    return best


def _bare_number_item(line: _Line) -> bool:
    """'1  text' drawn as a list label: a small number followed by a wider-than-space gap."""
    words = line.words
    if len(words) < 2 or not re.fullmatch(r"\d{1,2}[.)]?", words[0]["text"]):
        return False
    return words[1]["x0"] - words[0]["x1"] > 0.6 * max(float(words[0]["size"]), 1.0)


def _cells(line: _Line) -> list[str]:
    """Split a line at wide gaps: an unruled table row has several cells."""
    cells: list[list[str]] = [[line.words[0]["text"]]]
    for before, word in zip(line.words, line.words[1:], strict=False):
        if word["x0"] - before["x1"] > 2.5 * max(float(word["size"]), 1.0):
            cells.append([])
        cells[-1].append(word["text"])
    return [" ".join(c) for c in cells]


def _markdown_table(rows: list[list[str]]) -> str:
    width = max(len(r) for r in rows)
    rows = [[c.replace("|", "\\|") for c in r] + [""] * (width - len(r)) for r in rows]
    table = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    return "\n".join(table + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def _render(items: list[tuple[str, object]], body: float, levels: dict[float, int]) -> str:
    blocks: list[str] = []
    paragraph: list[_Line] = []
    rows: list[list[str]] = []
    previous_heading: _Line | None = None
    item_line: _Line | None = None
    item_indent = 0.0

    def flush_rows() -> None:
        if len(rows) >= 2:
            blocks.append(_markdown_table(rows))
        elif rows:
            blocks.append(" ".join(rows[0]))
        rows.clear()

    def flush() -> None:
        if paragraph:
            text = paragraph[0].text
            for line in paragraph[1:]:
                if re.search(r"[A-Za-z]-$", text) and line.text[:1].islower():
                    text = text[:-1] + line.text
                else:
                    text += " " + line.text
            blocks.append(text)
            paragraph.clear()

    for kind, item in items:
        if kind == "table":
            flush()
            flush_rows()
            blocks.append(_markdown_table(item))  # type: ignore[arg-type]
            continue
        line: _Line = item  # type: ignore[assignment]
        cells = _cells(line)
        if len(cells) >= 2:
            flush()
            if rows and len(rows[0]) != len(cells):
                flush_rows()
            rows.append(cells)
            continue
        flush_rows()
        level = levels.get(round(line.size, 1))
        if level is None and line.bold and len(line.text) < 100 and not line.text.endswith((".", ",", ";")):
            level = len(levels) + 1 if line.size >= body * 0.98 else None
        if level is not None and len(line.text) < 150:
            flush()
            flush_rows()
            marker = "#" * min(level, 6) + " "
            if (previous_heading is not None and blocks and blocks[-1].startswith(marker)
                    and -0.5 * line.size <= line.top - previous_heading.bottom < 0.5 * line.size):
                blocks[-1] += " " + line.text  # a heading wrapped over two lines
            else:
                blocks.append(marker + line.text)
            previous_heading = line
            continue
        previous_heading = None
        if (item_line is not None and not paragraph and len(line.words) and abs(line.x0 - item_indent) < 3
                and -0.5 * line.size <= line.top - item_line.bottom < 0.5 * line.size):
            blocks[-1] += " " + line.text  # the item's wrapped continuation line
            item_line = line
            continue
        item_line = None
        if _BULLET.match(line.text):
            flush()
            blocks.append("- " + _BULLET.sub("", line.text))
            item_line, item_indent = line, (line.words[1]["x0"] if len(line.words) > 1 else line.x0)
            continue
        if _NUMBERED.match(line.text) or _bare_number_item(line):
            flush()
            first = line.words[0]["text"]
            blocks.append(line.text if _NUMBERED.match(line.text) else f"{first.rstrip('.)')}. " + line.text[len(first):].strip())
            item_line, item_indent = line, line.words[1]["x0"]
            continue
        if paragraph:
            gap = line.top - paragraph[-1].bottom
            if gap > 0.5 * max(line.size, 1.0) or line.top < paragraph[-1].top:
                flush()
        paragraph.append(line)
    flush()
    flush_rows()
    # Consecutive list items stay in one block (one blank line between other blocks).
    out: list[str] = []
    for block in blocks:
        item = block.startswith("- ") or bool(_NUMBERED.match(block))
        if out and item and (out[-1].split("\n")[-1].startswith("- ") or _NUMBERED.match(out[-1].split("\n")[-1])):
            out[-1] += "\n" + block
        else:
            out.append(block)
    return "\n\n".join(out)
