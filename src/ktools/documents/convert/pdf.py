"""PDF → markdown from the text layer, read as a person reads it, with page provenance.

- pypdf checks the file first: not a PDF / corrupted / password-protected each get their
  own error (an owner-only password that opens with "" is accepted; a user password is
  given with `password=`, i.e. `PDF_PASSWORD` or `--password`).
- pdf_text turns each page's glyphs into words: overprinted duplicates removed, rotated
  margin text dropped, ligatures expanded, word gaps measured against the font size and
  the row's letter spacing. Glyphs without a Unicode mapping (`(cid:N)`) are counted:
  their pages are reported (`PdfConversion.unmapped_glyph_pages`, the manifest, a warning).
- pdf_layout orders the words (module docstring: why not pdfminer's own layout analysis): columns found per page (also below a full-width title or
  table), read column by column; an aligned grid is not a column layout.
- Ruled tables (pdfplumber's `find_tables`) become markdown tables when their cells hold
  single rows of text (a table ruled only around its header is read as text instead);
  unruled aligned rows become markdown tables too (pdf_markdown). Running headers/footers
  and page numbers are dropped; footnotes (smaller type at a column's foot) follow the
  page's body text (pdf_furniture). Lines in a font clearly larger than the body become
  headings; bullet/number lines list items; a hyphen at a line end is joined when the
  joined word is a word (pdf_text.join_hyphenated).
- Page provenance: `page_offsets[i]` is the character offset in the markdown where page
  i+1 starts (stored in the manifest; chunks carry `pages`).
- Untrusted input is bounded: at most `MAX_PAGES` pages, `MAX_GLYPHS_PER_PAGE` glyphs per
  page and `seconds_per_page` of work per page on average (each an error naming the file
  and the page).

Without pdfplumber (docs extra not installed) pypdf's plain text is used.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from ktools.documents.convert.pdf_furniture import PageLayout, drop_running_lines, split_footnotes
from ktools.documents.convert.pdf_layout import Line, group_lines, reading_order
from ktools.documents.convert.pdf_markdown import render_page
from ktools.documents.convert.pdf_text import CID, join_hyphenated, page_words, vocabulary
from ktools.documents.errors import DocumentError

log = logging.getLogger(__name__)

MAX_PAGES = 5000
MAX_GLYPHS_PER_PAGE = 500_000
SECONDS_PER_PAGE = 20.0
PASSWORD_HINT = ("pass the password: `--password PW` on `ktools convert-docs`/`ktools prepare`, "
                 "PDF_PASSWORD=PW in 02_Data_Processing/.env, or convert_step(..., pdf_password=PW)")


@dataclass
class PdfConversion:
    markdown: str
    pages: int
    page_offsets: list[int]
    converter: str
    unmapped_glyph_pages: list[int] = field(default_factory=list)


@dataclass
class _Table:
    top: float
    rows: list[list[str]]


def _check_pdf(data: bytes, source: str, password: str | None = None):
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if b"%PDF" not in data[:1024]:
        raise DocumentError(source, "not a PDF file (no %PDF header)",
                            "the file may be corrupted, truncated or have the wrong extension")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            opened = 0
            for attempt in ([password, ""] if password else [""]):
                try:
                    opened = reader.decrypt(attempt)
                except Exception:  # missing crypto backend or bad encryption dict
                    opened = 0
                if opened:
                    break
            if not opened:
                if password:
                    raise DocumentError(source, "the PDF is password-protected and the password given does not open it",
                                        "check the password; " + PASSWORD_HINT)
                raise DocumentError(source, "the PDF is password-protected", PASSWORD_HINT)
        n_pages = len(reader.pages)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise DocumentError(source, f"corrupted or unreadable PDF ({exc})",
                            "re-export the PDF or repair it (e.g. `qpdf in.pdf out.pdf`)") from None
    if n_pages == 0:
        raise DocumentError(source, "the PDF has no pages", "re-export the PDF")
    if n_pages > MAX_PAGES:
        raise DocumentError(source, f"the PDF has {n_pages} pages (at most {MAX_PAGES} are converted)",
                            "split the PDF into smaller files")
    return reader


def pdf_to_markdown(data: bytes, source: str, warnings: list[str], password: str | None = None,
                    seconds_per_page: float = SECONDS_PER_PAGE) -> PdfConversion:
    """Convert a PDF's text layer to markdown (warnings about lost text are appended to `warnings`)."""
    reader = _check_pdf(data, source, password)
    unmapped: list[int] = []
    furniture_only: set[int] = set()
    try:
        import pdfplumber  # noqa: F401
    except ImportError:
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        converter = "pypdf"
    else:
        pages, unmapped, furniture_only = _pdfplumber_pages(data, source, password, seconds_per_page)
        converter = "pdfplumber"
    empty = [i + 1 for i, text in enumerate(pages) if not text.strip()]
    if len(empty) == len(pages) and not furniture_only:
        raise DocumentError(source, "no extractable text (scanned?)",
                            "the PDF has no text layer; run OCR first (e.g. `ocrmypdf in.pdf out.pdf`)")
    empty = [number for number in empty if number not in furniture_only]  # e.g. a full-page figure
    if empty:
        warnings.append(f"{source}: page(s) {', '.join(map(str, empty))} have no text layer (scanned?); skipped")
    if unmapped:
        warnings.append(f"{source}: page(s) {', '.join(map(str, unmapped))} lost text: glyphs without a Unicode "
                        "mapping (shown as (cid:N) by PDF tools) were dropped; re-export the PDF with embedded "
                        "Unicode fonts or OCR those pages")
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
    return PdfConversion("".join(parts).rstrip() + "\n", len(pages), offsets, converter, unmapped)


def _open(data: bytes, source: str, password: str | None):
    import pdfplumber

    for attempt in ([password, ""] if password else [""]):
        try:
            return pdfplumber.open(io.BytesIO(data), password=attempt)
        except Exception as exc:
            error = exc
    raise DocumentError(source, f"corrupted or unreadable PDF ({type(error).__name__}: {error})",
                        "re-export the PDF or repair it (e.g. `qpdf in.pdf out.pdf`)") from None


def _pdfplumber_pages(data: bytes, source: str, password: str | None,
                      seconds_per_page: float) -> tuple[list[str], list[int], set[int]]:
    """Page texts, pages that lost glyphs without a Unicode mapping, pages with only running headers/footers."""
    pdf = _open(data, source, password)
    started = time.monotonic()
    with pdf:
        pages: list[PageLayout] = []
        for number, page in enumerate(pdf.pages, start=1):
            try:
                page = _upright_page(pdf, page)
                pages.append(_read_page(page, source, number))
            except DocumentError:
                raise
            except Exception as exc:  # one broken page must not lose the others
                raise DocumentError(source, f"cannot read the page ({type(exc).__name__}: {exc})",
                                    "re-export the PDF", page=number) from None
            finally:
                page.close()  # pdfplumber caches every page's objects otherwise
            if time.monotonic() - started > seconds_per_page * number + 30:
                raise DocumentError(source, f"conversion took over {seconds_per_page:g} s per page",
                                    "the page is unusually complex; split the PDF or print it to a new PDF",
                                    page=number)
    drop_running_lines(pages)
    sizes: Counter[float] = Counter()
    lines_in_order: list[str] = []
    for page in pages:
        for region in page.regions:
            for kind, item in region:
                if kind == "line":
                    sizes[round(item.size, 1)] += len(item.text)  # type: ignore[attr-defined]
                    lines_in_order.append(item.text)  # type: ignore[attr-defined]
    body = sizes.most_common(1)[0][0] if sizes else 10.0
    heading_sizes = sorted({s for s in sizes if s >= body * 1.15}, reverse=True)[:4]
    levels = {s: i + 1 for i, s in enumerate(heading_sizes)}
    words = vocabulary(lines_in_order)
    split = [split_footnotes(page, body) for page in pages]
    texts = [render_page(main, body, levels, words) for main, _ in split]
    notes = [render_page(footnotes, body, levels, words) if footnotes else "" for _, footnotes in split]
    _join_across_pages(texts, words)
    _place_footnotes(texts, notes)
    unmapped = [number for number, page in enumerate(pages, start=1) if page.unmapped_glyphs]
    furniture_only = {number for number, (page, text) in enumerate(zip(pages, texts, strict=True), start=1)
                      if page.had_text and not text.strip()}
    return texts, unmapped, furniture_only


def _upright_page(pdf, page):
    """A page displayed turned (/Rotate) whose text was set upright before the turn is read unturned:
    otherwise every glyph would count as rotated margin text and the page would come out empty."""
    if not page.rotation:
        return page
    chars = page.chars
    if not chars or sum(1 for c in chars if c.get("upright")) >= len(chars) / 2:
        return page
    from pdfplumber.page import Page

    page_obj = page.page_obj
    page_obj.attrs = {**page_obj.attrs, "Rotate": 0}
    page_obj.rotate = 0
    page.close()
    return Page(pdf, page_obj, page_number=page.page_number, initial_doctop=page.initial_doctop)


def _place_footnotes(texts: list[str], notes: list[str]) -> None:
    """Footnotes go after their page's text — or, when a sentence runs on over the page break,
    after the paragraph that finishes it on the next page, so the sentence stays whole."""
    for index, footnotes in enumerate(notes):
        if not footnotes:
            continue
        runs_on = (index + 1 < len(texts) and texts[index].strip() and texts[index + 1].strip()
                   and not re.search(r"[.!?:;]['’”\")]*\s*$", texts[index].rstrip()))
        if runs_on:
            following = texts[index + 1].lstrip()
            end = following.find("\n\n")
            end = len(following) if end < 0 else end
            texts[index + 1] = following[:end] + "\n\n" + footnotes + following[end:]
        else:
            texts[index] = texts[index].rstrip() + "\n\n" + footnotes


def _join_across_pages(texts: list[str], words: set[str]) -> None:
    """A word hyphenated over a page break is completed on the page where it starts."""
    for index in range(len(texts) - 1):
        head = texts[index].rstrip()
        following = texts[index + 1].lstrip()
        match = re.match(r"[^\W\d_]\S*", following)
        if not re.search(r"[^\W\d_]-$", head) or not match:
            continue
        last_word = head.rpartition(" ")[2].rpartition("\n")[2]
        joined = join_hyphenated(last_word, match.group(0), words)
        texts[index] = head[: len(head) - len(last_word)] + joined
        texts[index + 1] = following[match.end():].lstrip()


def _read_page(page, source: str, number: int) -> PageLayout:
    if len(page.chars) > MAX_GLYPHS_PER_PAGE:
        raise DocumentError(source, f"the page has {len(page.chars)} glyphs (at most {MAX_GLYPHS_PER_PAGE})",
                            "the page is unusually complex; split the PDF or print it to a new PDF", page=number)
    text = page_words(page)
    tables = _tables(page, text.words)
    boxes = [bbox for bbox, _ in tables]

    def in_table(w: dict) -> bool:
        cx, cy = (w["x0"] + w["x1"]) / 2, (w["top"] + w["bottom"]) / 2
        return any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes)

    words = [w for w in text.words if not in_table(w)]
    # A table takes part in the layout as one big "word", so it lands in its column or band.
    for bbox, rows in tables:
        words.append({"text": "", "x0": bbox[0], "x1": bbox[2], "top": bbox[1], "bottom": bbox[3],
                      "size": 1.0, "fontname": "", "table": rows})
    regions: list[list[tuple[str, object]]] = []
    unmapped = 0
    columns = (column for band in _split_at_rules(page, words) for column in _split_at_column_rules(page, band))
    for region in (r for column in columns for r in reading_order(column)):
        tables_here = [_Table(w["top"], w["table"]) for w in region if "table" in w]
        lines = group_lines([w for w in region if "table" not in w])
        for line in lines:
            unmapped += _strip_unmapped(line)
        items: list[tuple[float, str, object]] = [(ln.top, "line", ln) for ln in lines if ln.text]
        items += [(t.top, "table", t.rows) for t in tables_here]
        items.sort(key=lambda it: it[0])
        regions.append([(kind, obj) for _, kind, obj in items])
    return PageLayout(regions, unmapped, float(page.height), bool(text.words))


def _split_at_rules(page, words: list[dict]) -> list[list[dict]]:
    """Words cut into bands at horizontal rules drawn across most of the page (a masthead's rule)."""
    width = float(page.width)
    try:
        edges = page.horizontal_edges
    except Exception:  # odd drawing operators: read the page as one band
        edges = []
    cuts = sorted({round(float(e["top"])) for e in edges if float(e["x1"]) - float(e["x0"]) >= 0.6 * width})
    if not cuts:
        return [words]
    bands: list[list[dict]] = [[] for _ in range(len(cuts) + 1)]
    for word in words:
        middle = (word["top"] + word["bottom"]) / 2
        bands[sum(1 for cut in cuts if cut < middle)].append(word)
    return [band for band in bands if band]


def _split_at_column_rules(page, band: list[dict]) -> list[list[dict]]:
    """A band cut into columns at vertical rules drawn over most of its height that no word crosses
    (a form's or a ruled page's columns; a ruled table's words were taken out before)."""
    if not band:
        return []
    top = min(w["top"] for w in band)
    bottom = max(w["bottom"] for w in band)
    height = bottom - top
    try:
        edges = page.vertical_edges
    except Exception:  # odd drawing operators: no column rules
        return [band]
    xs: set[int] = set()
    for edge in edges:
        covered = min(float(edge["bottom"]), bottom) - max(float(edge["top"]), top)
        x = float(edge["x0"])
        if height > 0 and covered >= 0.5 * height and not any(w["x0"] < x < w["x1"] for w in band):
            xs.add(round(x))
    cuts = sorted(x for x in xs if min(w["x0"] for w in band) < x < max(w["x1"] for w in band))
    if not cuts:
        return [band]
    columns: list[list[dict]] = [[] for _ in range(len(cuts) + 1)]
    for word in band:
        middle = (word["x0"] + word["x1"]) / 2
        columns[sum(1 for cut in cuts if cut < middle)].append(word)
    return [column for column in columns if column]


def _strip_unmapped(line: Line) -> int:
    """Remove `(cid:N)` glyphs from a line (a leading one before text is a bullet); return how many were lost."""
    if not CID.search(line.text):
        return 0
    bullet = bool(CID.fullmatch(line.words[0]["text"])) and len(line.words) > 1
    lost = len(CID.findall(line.text)) - (1 if bullet else 0)
    kept = line.words[:1] if bullet else []
    for word in line.words[len(kept):]:
        cleaned = CID.sub("", word["text"])
        if cleaned:
            kept.append({**word, "text": cleaned})
    line.words = kept
    line.text = " ".join(w["text"] for w in kept) if kept and (not bullet or len(kept) > 1) else ""
    return lost


def _tables(page, words: list[dict]) -> list[tuple[tuple[float, float, float, float], list[list[str]]]]:
    """Ruled tables whose cells hold rows of text, with the cell text from our words (correct spacing)."""
    found = []
    for table in page.find_tables():
        rows: list[list[str]] = []
        usable = True
        x0, top, x1, bottom = table.bbox
        centres = [((w["x0"] + w["x1"]) / 2, (w["top"] + w["bottom"]) / 2, w) for w in words]
        in_table = [c for c in centres if x0 <= c[0] <= x1 and top <= c[1] <= bottom]
        for row in table.rows:
            cells = []
            in_row = [c for c in in_table if row.bbox[1] <= c[1] <= row.bbox[3]]
            for cell in row.cells:
                if cell is None:
                    cells.append([])
                    continue
                inside = [w for cx, cy, w in in_row if cell[0] <= cx <= cell[2] and cell[1] <= cy <= cell[3]]
                cells.append([ln.text for ln in group_lines(inside)])
            counts = {len(c) for c in cells if c}
            filled = len([c for c in cells if c])
            same_depth = len(counts) == 1 and filled > 1
            if max(counts, default=0) > 6 and not same_depth:
                usable = False  # a cell holding many rows of text: a table ruled around its header only
                break
            if same_depth and max(counts) > 1:
                # Every cell has the same k lines: k table rows drawn without rules between them.
                depth = max(counts)
                rows += [[c[i] if c else "" for c in cells] for i in range(depth)]
            else:
                rows.append([" ".join(c) for c in cells])
        rows = [[c.replace("|", "\\|").strip() for c in r] for r in rows if any(c.strip() for c in r)]
        # Merged cells leave columns empty in every row; they are not columns of the table.
        keep = [i for i in range(max((len(r) for r in rows), default=0)) if any(i < len(r) and r[i] for r in rows)]
        rows = [[r[i] if i < len(r) else "" for i in keep] for r in rows]
        if usable and len(rows) >= 2:
            found.append((table.bbox, rows))
    return found


