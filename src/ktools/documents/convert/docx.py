"""DOCX → markdown with python-docx, walking the body in order (paragraphs and tables).

Heading styles become `#` levels (Title → `#`, Heading N one level below it when the
document has a Title), list styles/numbering become `-`/`1.` items, tables become
markdown tables (first row as header), code/preformatted styles become fences,
bold/italic runs keep `**`/`*`. Measured against mammoth/markitdown: same structure,
also keeps the Title, 20× faster, no extra dependency (README).
"""

from __future__ import annotations

import io
import re
import zipfile

from ktools.documents.errors import DocumentError

_HEADING = re.compile(r"^heading\s*(\d)$", re.I)


def _run_text(run) -> str:
    text = run.text or ""
    if not text.strip():
        return text
    core = text.strip()
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()):]
    if getattr(run, "bold", None):
        core = f"**{core}**"
    if getattr(run, "italic", None):
        core = f"*{core}*"
    return lead + core + trail


def _paragraph_text(paragraph) -> str:
    parts = []
    for item in paragraph.iter_inner_content():
        if hasattr(item, "runs") and not hasattr(item, "bold"):  # a hyperlink
            parts.append("".join(_run_text(r) for r in item.runs))
        else:
            parts.append(_run_text(item))
    text = "".join(parts)
    return re.sub(r"\*\*\s*\*\*", "", text).strip()


class _StyleNames:
    """Paragraph style names by style id, each looked up once. python-docx's
    `paragraph.style` scans every style of the document for each call (the default style
    when a paragraph names none): a 0.87 MB DOCX of 240k paragraphs ran past 120 s."""

    def __init__(self, document):
        self._document = document
        self._names: dict[str | None, str] = {}

    def __call__(self, paragraph) -> str:
        style_id = paragraph._p.style  # the pStyle id, None for the default style
        name = self._names.get(style_id)
        if name is None:
            style = paragraph.style
            name = self._names[style_id] = (style.name if style is not None else "") or ""
        return name


def _list_info(paragraph, style: str) -> tuple[str | None, int]:
    ppr = paragraph._p.pPr
    level = 0
    numbered = None
    if ppr is not None and ppr.numPr is not None:
        ilvl = ppr.numPr.ilvl
        level = int(ilvl.val) if ilvl is not None else 0
        numbered = "number" in style.lower()
        return ("number" if numbered else "bullet"), level
    if "list number" in style.lower():
        return "number", 0
    if "list bullet" in style.lower() or style.lower().startswith("list paragraph"):
        return "bullet", 0
    return None, 0


def _table_markdown(table) -> str:
    rows = []
    for row in table.rows:
        cells = []
        for cell in row.cells:
            cells.append(cell.text.replace("|", "\\|").replace("\n", " ").strip())
        rows.append(cells)
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def docx_to_markdown(data: bytes, source: str, warnings: list[str]) -> str:
    from docx import Document
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DocumentError(source, "not a valid .docx file (it is not a ZIP package)",
                            "an old Word .doc or a renamed file? Open it in Word/LibreOffice and save as .docx")
    try:
        document = Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises several types for broken packages
        raise DocumentError(source, f"corrupted .docx ({type(exc).__name__}: {exc})",
                            "open and re-save it in Word/LibreOffice") from None

    body = document.element.body
    style_of = _StyleNames(document)
    paragraphs = [Paragraph(el, document) for el in body.iterchildren() if el.tag.endswith("}p")]
    has_title = any(style_of(p) == "Title" for p in paragraphs)
    blocks: list[str] = []
    code: list[str] = []
    numbers: dict[int, int] = {}

    def flush_code() -> None:
        if code:
            blocks.append("```\n" + "\n".join(code) + "\n```")
            code.clear()

    for element in body.iterchildren():
        if element.tag.endswith("}tbl"):
            flush_code()
            numbers.clear()
            table_md = _table_markdown(Table(element, document))
            if table_md:
                blocks.append(table_md)
            continue
        if not element.tag.endswith("}p"):
            continue
        paragraph = Paragraph(element, document)
        style = style_of(paragraph)
        if re.search(r"code|preformatted|source", style, re.I):
            code.append(paragraph.text)
            continue
        flush_code()
        text = _paragraph_text(paragraph)
        if not text:
            continue
        heading = _HEADING.match(style)
        if style == "Title":
            blocks.append("# " + text.replace("**", ""))
            numbers.clear()
        elif heading:
            level = min(int(heading.group(1)) + (1 if has_title else 0), 6)
            blocks.append("#" * level + " " + text.replace("**", ""))
            numbers.clear()
        else:
            kind, level = _list_info(paragraph, style)
            if kind is None:
                numbers.clear()
                blocks.append(text)
            elif kind == "number":
                numbers[level] = numbers.get(level, 0) + 1
                for deeper in [k for k in numbers if k > level]:
                    del numbers[deeper]
                blocks.append("   " * level + f"{numbers[level]}. {text}")
            else:
                blocks.append("  " * level + f"- {text}")
    flush_code()
    if not blocks:
        raise DocumentError(source, "the .docx has no text", "check the document is not only images")
    # List items of one list stay on consecutive lines.
    out: list[str] = []
    for block in blocks:
        is_item = bool(re.match(r"^\s*(-|\d+\.) ", block))
        if out and is_item and re.match(r"^\s*(-|\d+\.) ", out[-1].split("\n")[-1]):
            out[-1] += "\n" + block
        else:
            out.append(block)
    return "\n\n".join(out) + "\n"
