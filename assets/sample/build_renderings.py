"""Build the HTML, PDF and DOCX renderings of the sample document.

    python assets/sample/build_renderings.py

Reads `sample_document.md` next to this script and writes `sample_document.html`,
`sample_document.pdf` and `sample_document.docx` beside it. The output is
deterministic (fixed timestamps and document ids), so re-running the script on an
unchanged markdown file gives byte-identical files and a clean `git status`.

The markdown is parsed by a small block parser written for this one file (headings,
paragraphs, bullet and numbered lists, pipe tables, fenced code, **bold** and
*italic*), so the renderings need no markdown library — only reportlab and
python-docx, which are in the `test` and `docs` extras.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "sample_document.md"

# A fixed moment used wherever a file format wants a timestamp, so builds are reproducible.
FIXED_TIMESTAMP = (2025, 3, 3, 0, 1, 0)


@dataclass
class Block:
    kind: str  # heading | para | ul | ol | table | code
    text: str = ""
    level: int = 0
    items: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)  # table: first row is the header


_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
_BULLET = re.compile(r"^[-*]\s+(.*)$")
_NUMBERED = re.compile(r"^\d+\.\s+(.*)$")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def _split_row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_markdown(text: str) -> list[Block]:
    """Split the markdown into blocks; raises ValueError naming the line on anything unexpected."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("```"):
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if end == len(lines):
                raise ValueError(f"{SOURCE.name}:{i + 1}: code fence is never closed")
            blocks.append(Block("code", text="\n".join(lines[i + 1 : end])))
            i = end + 1
            continue
        if m := _HEADING.match(line):
            blocks.append(Block("heading", text=m.group(2), level=len(m.group(1))))
            i += 1
            continue
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not _TABLE_RULE.match(lines[i].strip()):
                    rows.append(_split_row(lines[i]))
                i += 1
            if len({len(r) for r in rows}) != 1:
                raise ValueError(f"{SOURCE.name}: table before line {i + 1} has rows of different widths")
            blocks.append(Block("table", rows=rows))
            continue
        for kind, pattern in (("ul", _BULLET), ("ol", _NUMBERED)):
            if pattern.match(line):
                items = []
                while i < len(lines) and (m := pattern.match(lines[i])):
                    items.append(m.group(1))
                    i += 1
                blocks.append(Block(kind, items=items))
                break
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not _starts_block(lines[i]):
                para.append(lines[i].strip())
                i += 1
            blocks.append(Block("para", text=" ".join(para)))
    return blocks


def _starts_block(line: str) -> bool:
    return bool(
        line.startswith(("```", "|")) or _HEADING.match(line) or _BULLET.match(line) or _NUMBERED.match(line)
    )


# --- inline markup -------------------------------------------------------------------

_INLINE = re.compile(r"\*\*(.+?)\*\*|\*(.+?)\*")


def inline_spans(text: str) -> list[tuple[str, str]]:
    """[(style, text)] with style in {"", "b", "i"}; nesting is not needed for this document."""
    spans: list[tuple[str, str]] = []
    pos = 0
    for m in _INLINE.finditer(text):
        if m.start() > pos:
            spans.append(("", text[pos : m.start()]))
        spans.append(("b", m.group(1)) if m.group(1) is not None else ("i", m.group(2)))
        pos = m.end()
    if pos < len(text):
        spans.append(("", text[pos:]))
    return spans


def inline_markup(text: str, bold: tuple[str, str], italic: tuple[str, str]) -> str:
    out = []
    for style, chunk in inline_spans(text):
        escaped = html.escape(chunk, quote=False)
        if style == "b":
            out.append(f"{bold[0]}{escaped}{bold[1]}")
        elif style == "i":
            out.append(f"{italic[0]}{escaped}{italic[1]}")
        else:
            out.append(escaped)
    return "".join(out)


def plain(text: str) -> str:
    return "".join(chunk for _, chunk in inline_spans(text))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", plain(text).lower()).strip("-")


# --- HTML: a realistic saved web page, with boilerplate around the article ----------

_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} | Orlenmoor Estuary Ferry Authority</title>
<link rel="stylesheet" href="/static/css/oefa-main.css">
<script src="/static/js/cookie-consent.js" defer></script>
</head>
<body class="page-regulations">
<div id="cookie-banner" class="cookie-banner" role="dialog">
  <p>We use cookies to remember your journey searches and to measure how our website is used.
  <a href="/privacy/cookies">Read our cookie policy</a>.</p>
  <button type="button">Accept all cookies</button> <button type="button">Reject optional cookies</button>
</div>
<nav class="site-nav" aria-label="Main menu">
  <ul>
    <li><a href="/">Home</a></li>
    <li><a href="/timetables">Timetables</a></li>
    <li><a href="/fares">Fares and tickets</a></li>
    <li><a href="/tidecard">Tidecard</a></li>
    <li><a href="/travel-updates">Travel updates</a></li>
    <li><a href="/about">About us</a></li>
    <li><a href="/contact">Contact</a></li>
  </ul>
</nav>
<header class="site-header">
  <a class="logo" href="/"><img src="/static/img/oefa-logo.svg" alt="OEFA logo"></a>
  <p class="strapline">Connecting Kesterholm, Brannock Quay, Saltreach Island and Marrow Point</p>
  <form class="search" action="/search"><input type="search" name="q" placeholder="Search this site"><button>Search</button></form>
  <ol class="breadcrumb"><li><a href="/">Home</a></li><li><a href="/about">About us</a></li><li>Regulations</li></ol>
</header>
<div class="layout">
<aside class="sidebar">
  <h2>Languages</h2>
  <ul class="language-list">
    <li><a href="/en/regulations" lang="en">English</a></li>
    <li><a href="/or/regulations" lang="or">Orlenmoorsk</a></li>
    <li><a href="/de/regulations" lang="de">Deutsch</a></li>
    <li><a href="/fr/regulations" lang="fr">Français</a></li>
    <li><a href="/pl/regulations" lang="pl">Polski</a></li>
  </ul>
  <h2>On this page</h2>
  <ul class="toc">
{toc}
  </ul>
  <h2>Related pages</h2>
  <ul>
    <li><a href="/safety-management">Safety Management Manual</a></li>
    <li><a href="/board/minutes">Board minutes</a></li>
    <li><a href="/accessibility">Accessibility statement</a></li>
  </ul>
</aside>
<main id="content">
<article class="regulations">
{article}
</article>
</main>
</div>
<footer class="site-footer">
  <ul class="footer-links">
    <li><a href="/privacy">Privacy notice</a></li>
    <li><a href="/privacy/cookies">Cookies</a></li>
    <li><a href="/accessibility">Accessibility</a></li>
    <li><a href="/careers">Careers</a></li>
    <li><a href="/sitemap">Sitemap</a></li>
  </ul>
  <p>&copy; 2025 Orlenmoor Estuary Ferry Authority. All rights reserved. Registered office: Kesterholm Terminal.</p>
  <p>Follow us: <a href="/social/ferry-updates">Ferry updates</a> &middot; <a href="/social/news">News</a></p>
</footer>
</body>
</html>
"""


def render_html(blocks: list[Block]) -> str:
    bold, italic = ("<strong>", "</strong>"), ("<em>", "</em>")
    parts: list[str] = []
    toc: list[str] = []
    title = ""
    for block in blocks:
        if block.kind == "heading":
            if block.level == 1 and not title:
                title = plain(block.text)
            if block.level == 2:
                toc.append(f'    <li><a href="#{slug(block.text)}">{html.escape(plain(block.text))}</a></li>')
            content = inline_markup(block.text, bold, italic)
            parts.append(f'<h{block.level} id="{slug(block.text)}">{content}</h{block.level}>')
        elif block.kind == "para":
            parts.append(f"<p>{inline_markup(block.text, bold, italic)}</p>")
        elif block.kind in ("ul", "ol"):
            items = "\n".join(f"  <li>{inline_markup(item, bold, italic)}</li>" for item in block.items)
            parts.append(f"<{block.kind}>\n{items}\n</{block.kind}>")
        elif block.kind == "table":
            head = "".join(f"<th>{inline_markup(c, bold, italic)}</th>" for c in block.rows[0])
            body = "\n".join(
                "  <tr>" + "".join(f"<td>{inline_markup(c, bold, italic)}</td>" for c in row) + "</tr>"
                for row in block.rows[1:]
            )
            parts.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>")
        elif block.kind == "code":
            parts.append(f"<pre><code>{html.escape(block.text, quote=False)}</code></pre>")
    return _HTML_PAGE.format(title=html.escape(title), toc="\n".join(toc), article="\n".join(parts))


# --- PDF (reportlab): real text layer, page numbers, tables --------------------------


def render_pdf(blocks: list[Block]) -> bytes:
    from reportlab import rl_config
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        ListFlowable,
        ListItem,
        Paragraph,
        Preformatted,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    rl_config.invariant = 1  # fixed creation date and document id: reproducible bytes

    styles = getSampleStyleSheet()
    heading_styles = {1: styles["Title"], 2: styles["Heading1"], 3: styles["Heading2"]}
    body = styles["BodyText"]
    cell = ParagraphStyle("cell", parent=body, fontSize=8.5, leading=10.5)
    header_cell = ParagraphStyle("header_cell", parent=cell, fontName="Helvetica-Bold")
    code = ParagraphStyle("code", parent=styles["Code"], fontSize=8, leading=10)
    bold, italic = ("<b>", "</b>"), ("<i>", "</i>")

    story: list = []
    for block in blocks:
        if block.kind == "heading":
            story.append(
                Paragraph(inline_markup(block.text, bold, italic), heading_styles[min(block.level, 3)])
            )
        elif block.kind == "para":
            story.append(Paragraph(inline_markup(block.text, bold, italic), body))
        elif block.kind in ("ul", "ol"):
            items = [ListItem(Paragraph(inline_markup(t, bold, italic), body)) for t in block.items]
            if block.kind == "ul":
                story.append(ListFlowable(items, bulletType="bullet", start="\u2022", leftIndent=14))
            else:
                story.append(ListFlowable(items, bulletType="1", leftIndent=16))
        elif block.kind == "table":
            data = [
                [Paragraph(inline_markup(c, bold, italic), header_cell if r == 0 else cell) for c in row]
                for r, row in enumerate(block.rows)
            ]
            width = (A4[0] - 40 * mm) / len(block.rows[0])
            table = Table(data, colWidths=[width] * len(block.rows[0]), repeatRows=1)
            table.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde6ee")),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ]
                )
            )
            story += [Spacer(1, 4), table, Spacer(1, 6)]
        elif block.kind == "code":
            story.append(Preformatted(block.text, code))

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(20 * mm, 12 * mm, "OEFA-REG-009 Operating Regulations, Edition 9")
        canvas.drawRightString(A4[0] - 20 * mm, 12 * mm, f"Page {doc.page}")
        canvas.restoreState()

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=20 * mm,
        title="OEFA Operating Regulations, Edition 9",
        author="Orlenmoor Estuary Ferry Authority",
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


# --- DOCX (python-docx): real heading and list styles, a table -----------------------


def render_docx(blocks: list[Block]) -> bytes:
    import datetime

    from docx import Document
    from docx.shared import Pt

    document = Document()
    fixed = datetime.datetime(*FIXED_TIMESTAMP, tzinfo=datetime.UTC)
    props = document.core_properties
    props.title = "OEFA Operating Regulations, Edition 9"
    props.author = "Orlenmoor Estuary Ferry Authority"
    props.created = props.modified = fixed
    props.last_modified_by = "OEFA Regulations Office"
    props.revision = 1

    def add_runs(paragraph, text: str) -> None:
        for style, chunk in inline_spans(text):
            run = paragraph.add_run(chunk)
            run.bold = style == "b" or None
            run.italic = style == "i" or None

    for block in blocks:
        if block.kind == "heading":
            paragraph = document.add_heading(level=min(block.level, 3))
            add_runs(paragraph, block.text)
        elif block.kind == "para":
            add_runs(document.add_paragraph(), block.text)
        elif block.kind in ("ul", "ol"):
            style = "List Bullet" if block.kind == "ul" else "List Number"
            for item in block.items:
                add_runs(document.add_paragraph(style=style), item)
        elif block.kind == "table":
            table = document.add_table(rows=len(block.rows), cols=len(block.rows[0]))
            table.style = "Table Grid"
            for r, row in enumerate(block.rows):
                for c, value in enumerate(row):
                    paragraph = table.cell(r, c).paragraphs[0]
                    add_runs(paragraph, value)
                    if r == 0:
                        for run in paragraph.runs:
                            run.bold = True
            document.add_paragraph()
        elif block.kind == "code":
            paragraph = document.add_paragraph(style="No Spacing")
            run = paragraph.add_run(block.text)
            run.font.name = "Courier New"
            run.font.size = Pt(9)

    buffer = io.BytesIO()
    document.save(buffer)
    return _with_fixed_zip_times(buffer.getvalue())


def _with_fixed_zip_times(data: bytes) -> bytes:
    """python-docx stamps zip members with the current time; rewrite them with a fixed one."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIMESTAMP)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()


def main() -> None:
    blocks = parse_markdown(SOURCE.read_text(encoding="utf-8"))
    (HERE / "sample_document.html").write_text(render_html(blocks), encoding="utf-8")
    (HERE / "sample_document.pdf").write_bytes(render_pdf(blocks))
    (HERE / "sample_document.docx").write_bytes(render_docx(blocks))


if __name__ == "__main__":
    main()
