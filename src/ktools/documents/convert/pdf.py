"""PDF → markdown from the text layer, read as a person reads it, with page provenance.

- pypdf checks the file first: not a PDF / corrupted / password-protected each get their
  own error (an owner-only password that opens with "" is accepted; a user password is
  given with `password=`, i.e. `PDF_PASSWORD` or `--password`).
- pdf_text turns each page's glyphs into words: overprinted duplicates removed, rotated
  margin text dropped, ligatures expanded, word gaps measured against the font size and
  the row's letter spacing. Glyphs without a Unicode mapping (`(cid:N)`) are counted:
  their pages are reported (`PdfConversion.unmapped_glyph_pages`, the manifest, a warning).
- pdf_layout orders the words: columns found per page (also below a full-width title or
  table), read column by column; an aligned grid is not a column layout.
- Ruled tables (pdfplumber's `find_tables`) become markdown tables when their cells hold
  single rows of text (a table ruled only around its header is read as text instead);
  unruled aligned rows become markdown tables too. Running headers/footers (top or bottom
  lines repeated on most pages) are dropped; footnotes (smaller type at a column's foot)
  follow the page's body text. Lines in a font clearly larger than the body become
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
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from ktools.documents.convert.pdf_layout import Line, group_lines, reading_order
from ktools.documents.convert.pdf_text import CID, join_hyphenated, page_words, vocabulary
from ktools.documents.errors import DocumentError

log = logging.getLogger(__name__)

MAX_PAGES = 5000
MAX_GLYPHS_PER_PAGE = 500_000
SECONDS_PER_PAGE = 20.0
PASSWORD_HINT = ("pass the password: `--password PW` on `ktools convert-docs`/`ktools prepare`, "
                 "PDF_PASSWORD=PW in 02_Data_Processing/.env, or convert_step(..., pdf_password=PW)")

# "(cid:N)" is a bullet glyph without a unicode mapping (e.g. ZapfDingbats).
# Symbol-font bullets land in the private use area (U+F0B7 , U+F0A7 , U+F0D8 …).
_BULLET = re.compile(r"^(?:[•◦▪●○■‣–\-*\uf0a7\uf0b7\uf0d8\uf076\uf0fc]\s+|\(cid:\d+\)\s*)(?=\S)")
_NUMBERED = re.compile(r"^(\d{1,3}[.)]|\([a-z0-9]{1,3}\)|[a-z][.)])\s+")
_SENTENCE_END = re.compile(r"[.!?:;]['’”\")]*$")


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


@dataclass
class _Page:
    regions: list[list[tuple[str, object]]]   # per region (column/band), its lines and tables in order
    unmapped_glyphs: int = 0
    height: float = 792.0
    had_text: bool = False   # words before page furniture was dropped


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
        pages: list[_Page] = []
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
    _drop_running_lines(pages)
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
    texts = [_render(_footnotes_last(page, body), body, levels, words) for page in pages]
    _join_across_pages(texts, words)
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


def _read_page(page, source: str, number: int) -> _Page:
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
    return _Page(regions, unmapped, float(page.height), bool(text.words))


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
        for row in table.rows:
            cells = []
            for cell in row.cells:
                if cell is None:
                    cells.append([])
                    continue
                inside = [w for w in words if cell[0] <= (w["x0"] + w["x1"]) / 2 <= cell[2]
                          and cell[1] <= (w["top"] + w["bottom"]) / 2 <= cell[3]]
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


def _edge_lines(page: _Page) -> list[Line]:
    """The page's two topmost and two bottom-most lines by position (whatever the reading order)."""
    lines = [it for region in page.regions for kind, it in region if kind == "line"]
    tops = sorted({round(ln.top) for ln in lines})  # type: ignore[attr-defined]
    bottoms = sorted({round(ln.bottom) for ln in lines})  # type: ignore[attr-defined]
    keep_top, keep_bottom = set(tops[:2]), set(bottoms[-2:])
    return [ln for ln in lines if round(ln.top) in keep_top or round(ln.bottom) in keep_bottom]  # type: ignore


def _running_key(line: Line) -> str:
    return re.sub(r"\d+", "#", line.text).strip().lower()


_PAGE_NUMBER = re.compile(r"(?:page\s*)?[-–]?\s*\d{1,5}\s*[-–]?(?:\s*(?:of|/)\s*\d{1,5})?", re.IGNORECASE)


def _drop_running_lines(pages: list[_Page]) -> None:
    """Remove page numbers at a page's top or bottom, and running headers/footers: top/bottom lines
    that repeat (digits aside) on most pages."""
    for page in pages:
        numbers = {id(ln) for ln in _edge_lines(page) if _PAGE_NUMBER.fullmatch(ln.text.strip())}
        if numbers:
            page.regions = [[(kind, it) for kind, it in region if id(it) not in numbers] for region in page.regions]
    if len(pages) < 3:
        return
    counts: Counter[str] = Counter()
    for page in pages:
        counts.update({_running_key(ln) for ln in _edge_lines(page)})
    running = {k for k, n in counts.items() if n >= max(3, len(pages) // 2)}
    for page in pages:
        drop = {id(ln) for ln in _edge_lines(page) if _running_key(ln) in running}
        page.regions = [[(kind, it) for kind, it in region if id(it) not in drop] for region in page.regions]


def _footnotes_last(page: _Page, body: float) -> list[tuple[str, object]]:
    """The page's items in reading order, each column's footnotes (smaller type at its foot) after the body."""
    main: list[tuple[str, object]] = []
    notes: list[tuple[str, object]] = []
    for region in page.regions:
        tail = len(region)
        while (tail > 0 and region[tail - 1][0] == "line" and region[tail - 1][1].size < 0.9 * body  # type: ignore
               and region[tail - 1][1].top > 0.3 * page.height):  # type: ignore
            tail -= 1
        body_lines = sum(1 for kind, it in region[:tail] if kind == "line" and it.size >= 0.9 * body)  # type: ignore
        if body_lines >= 3 and tail < len(region):  # a masthead's small lines under a title are no footnotes
            main += region[:tail]
            notes += region[tail:]
        else:
            main += region
    return main + notes


def _bare_number_item(line: Line) -> bool:
    """'1  text' drawn as a list label: a small number followed by a wider-than-space gap."""
    words = line.words
    if len(words) < 2 or not re.fullmatch(r"\d{1,2}[.)]?", words[0]["text"]):
        return False
    return words[1]["x0"] - words[0]["x1"] > 0.6 * max(float(words[0]["size"]), 1.0)


def _cells(line: Line) -> list[str]:
    """Split a line at wide gaps: an unruled table row has several cells."""
    cells: list[list[str]] = [[line.words[0]["text"]]]
    for before, word in zip(line.words, line.words[1:], strict=False):
        if word["x0"] - before["x1"] > 2.5 * max(float(word["size"]), 1.0):
            cells.append([])
        cells[-1].append(word["text"])
    return [" ".join(c) for c in cells]


def _prose_grid(rows: list[list[str]]) -> bool:
    """Rows of equally many cells that all read as running text (several words, no figures only)."""
    if len({len(r) for r in rows}) != 1:
        return False
    cells = [c for r in rows for c in r]
    return all(len(c.split()) >= 4 and sum(ch.isalpha() for ch in c) >= 0.6 * len(c) for c in cells)


def _markdown_table(rows: list[list[str]]) -> str:
    width = max(len(r) for r in rows)
    rows = [[c.replace("|", "\\|") for c in r] + [""] * (width - len(r)) for r in rows]
    table = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    return "\n".join(table + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def _join_lines(text: str, line: str, words: set[str]) -> str:
    """Append the next line of a paragraph: a line-end hyphen joined when it breaks a word."""
    if re.search(r"[^\W\d_]-$", text) and line[:1].isalpha():
        head, _, rest = line.partition(" ")
        last_word = text.rpartition(" ")[2]
        joined = join_hyphenated(last_word, head, words)
        return text[: len(text) - len(last_word)] + joined + (" " + rest if rest else "")
    last_token = text.rpartition(" ")[2]
    if last_token.endswith("/") and ("://" in last_token or last_token.startswith("www.")):
        return text + line  # a URL broken after a slash: https:// + www.regulations.gov
    if text and line and _wide(text[-1]) and _wide(line[0]):
        return text + line  # Chinese/Japanese text has no spaces between words, nor at line ends
    if re.search(r"\d[–—]$", text) and line[:1].isdigit():
        return text + line  # a number range or identifier broken after its dash (FAA–2020–\n0686)
    return text + " " + line


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _continues(previous: Line, line: Line) -> bool:
    """A paragraph runs on into the next column when the text breaks mid-sentence."""
    return not _SENTENCE_END.search(previous.text) and line.text[:1].islower()


def _render(items: list[tuple[str, object]], body: float, levels: dict[float, int], words: set[str]) -> str:
    blocks: list[str] = []
    paragraph: list[Line] = []
    rows: list[list[str]] = []
    previous_heading: Line | None = None
    item_line: Line | None = None
    item_indent = 0.0

    def flush_rows() -> None:
        if len(rows) >= 2 and _prose_grid(rows):
            # Side-by-side prose too short for the layout analysis (two lines under a figure):
            # text columns, read one after the other — never a table.
            for column in range(len(rows[0])):
                text = rows[0][column]
                for row in rows[1:]:
                    text = _join_lines(text, row[column], words)
                blocks.append(text)
        elif len(rows) >= 2:
            blocks.append(_markdown_table(rows))
        elif rows:
            blocks.append(" ".join(rows[0]))
        rows.clear()

    def flush() -> None:
        if paragraph:
            text = paragraph[0].text
            for line in paragraph[1:]:
                text = _join_lines(text, line.text, words)
            blocks.append(text)
            paragraph.clear()

    # The page's usual space between lines: a paragraph break is a clearly larger one.
    lines_only = [it for kind, it in items if kind == "line"]
    gaps = [b.top - a.bottom for a, b in zip(lines_only, lines_only[1:], strict=False)  # type: ignore[attr-defined]
            if 0 <= b.top - a.bottom < 1.5 * max(a.size, 1.0)]  # type: ignore[attr-defined]
    leading = sorted(gaps)[len(gaps) // 4] if len(gaps) >= 3 else 0.0  # a low quantile: paragraph gaps aside
    for kind, item in items:
        if kind == "table":
            flush()
            flush_rows()
            blocks.append(_markdown_table(item))  # type: ignore[arg-type]
            continue
        line: Line = item  # type: ignore[assignment]
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
            previous = paragraph[-1]
            gap = line.top - previous.bottom
            if line.top < previous.top:  # the next column or band
                if not _continues(previous, line):
                    flush()
            elif gap > max(0.5 * max(line.size, 1.0), leading + 0.25 * line.size):
                flush()
            elif line.x0 - previous.x0 > 0.8 * line.size and _SENTENCE_END.search(previous.text):
                flush()  # an indented first line after a finished sentence starts a paragraph
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
