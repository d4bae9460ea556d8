"""Generated PDFs with the layouts real documents use: columns, running headers, tight type.

Each builder writes one PDF with reportlab and returns its path together with what the
conversion must keep (sentences that cross column/line breaks) and drop (furniture).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas

BODY_FONT, BODY_SIZE, LEADING = "Helvetica", 9.5, 12.0

PROSE = (
    "The ferry service between Kesterholm and Brannock Quay runs every twenty minutes in summer. "
    "Each vessel carries at most two hundred passengers and forty cars on the vehicle deck. "
    "Tickets bought on board cost one coin more than tickets bought at the terminal kiosk. "
    "The harbourmaster may suspend crossings when the wind exceeds thirty-four knots at the mast. "
    "Passengers with reduced mobility should ask for assistance at least a day before they travel. "
    "Bicycles are carried free of charge outside the morning and evening peak periods. "
    "Dogs must stay on a short lead and are not allowed in the upper passenger lounge. "
    "Lost property is kept at the Kesterholm office for ninety days and then given to charity. "
    "Crew members practise an abandon-ship drill every fortnight with the terminal staff. "
    "The night service on Fridays leaves Brannock Quay at half past eleven and calls nowhere else. "
    "Season passes are sold for one, three and twelve months and are loaded onto a smartcard. "
    "Children under five travel free when they are accompanied by a paying adult passenger. "
)


def unique_prose(copies: int, first: int = 1) -> str:
    """PROSE repeated, every sentence made unique by a rule number (so a check finds only one copy)."""
    sentences = [m.group(0).strip() for m in re.finditer(r"[^.]+\.", PROSE)]
    turn = first % len(sentences)  # pages built with different `first` start with different sentences
    sentences = (sentences[turn:] + sentences[:turn]) * copies
    return " ".join(f"{s[:-1]} (R-{n})." for n, s in enumerate(sentences, start=first))


def wrap(text: str, width: float, font: str = BODY_FONT, size: float = BODY_SIZE) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and stringWidth(trial, font, size) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return lines


def _draw_lines(c: canvas.Canvas, lines: list[str], x: float, top: float) -> float:
    c.setFont(BODY_FONT, BODY_SIZE)
    y = top
    for line in lines:
        c.drawString(x, y, line)
        y -= LEADING
    return y


def sentences_across(lines: list[str], index: int) -> list[str]:
    """The sentences of the wrapped text that run over the break after `lines[index - 1]`."""
    text = " ".join(lines)
    cut = len(" ".join(lines[:index]))
    found = []
    for match in re.finditer(r"[^.]+\.", text):
        if match.start() < cut < match.end():
            found.append(match.group(0).strip())
    return found


def _columns(c: canvas.Canvas, text: str, count: int, top: float, rows: int,
             left: float = 56.0, right: float = 539.0, gutter: float = 14.0) -> list[str]:
    """Fill `count` columns of `rows` lines with the text; return the sentences that cross a column break."""
    width = (right - left - gutter * (count - 1)) / count
    lines = wrap(text, width)
    crossing: list[str] = []
    for column in range(count):
        chunk = lines[column * rows:(column + 1) * rows]
        _draw_lines(c, chunk, left + column * (width + gutter), top)
        if column and column * rows < len(lines):
            crossing += sentences_across(lines, column * rows)
    return crossing


def make_two_column_pdf(path: Path) -> tuple[Path, list[str]]:
    """A full-width title and ruled table above two text columns (a mixed layout)."""
    c = canvas.Canvas(str(path), pagesize=A4)
    c.setFont("Helvetica-Bold", 18)
    c.drawString(56, 790, "Estuary Ferry Operations")
    c.setFont(BODY_FONT, BODY_SIZE)
    c.drawString(56, 770, "This notice explains how the estuary ferries run and what passengers may bring.")
    # A ruled table across the page, above the columns.
    xs, ys = [56, 240, 390, 539], [750, 734, 718, 702]
    c.grid(xs, ys)
    for row, cells in enumerate([("Route", "Crossing time", "Vehicles"), ("K1 Kesterholm", "18 minutes", "Yes"),
                                 ("K4 Marrow Point", "25 minutes", "No")]):
        for col, cell in enumerate(cells):
            c.drawString(xs[col] + 4, ys[row] - 11, cell)
    crossing = _columns(c, unique_prose(2), 2, 680, 26)
    c.save()
    return path, crossing


def make_three_column_pdf(path: Path, pages: int = 3) -> tuple[Path, list[str], list[str]]:
    """Three justified-width columns per page, a running header and footer on every page,
    and a printer's mark rotated in the margin."""
    c = canvas.Canvas(str(path), pagesize=A4)
    crossing: list[str] = []
    furniture = ["Harbour Gazette / Vol. 12 / Notices", "Printed by the Orlen Press on recycled paper",
                 "PROOF 0042 PLATE"]
    for number in range(1, pages + 1):
        c.setFont(BODY_FONT, 8)
        c.drawString(56, 805, f"Harbour Gazette / Vol. 12 / Notices {4700 + number}")
        c.drawString(56, 30, f"Printed by the Orlen Press on recycled paper {number}")
        c.saveState()
        c.translate(25, 300)
        c.rotate(90)
        c.drawString(0, 0, "PROOF 0042 PLATE")
        c.restoreState()
        crossing += _columns(c, unique_prose(3, first=100 * number + number), 3, 770, 50)
        c.showPage()
    c.save()
    return path, crossing, furniture


def make_tight_type_pdf(path: Path) -> Path:
    """Letter-spaced capitals, words set tight without space glyphs, and end-of-line hyphens."""
    c = canvas.Canvas(str(path), pagesize=A4)
    text = c.beginText(56, 780)
    text.setFont("Helvetica-Bold", 8)
    text.setCharSpace(2.2)  # letter-spaced capitals: wide letter gaps, wider word gaps
    text.textLine("FOR FURTHER INFORMATION CONTACT")
    text.setCharSpace(0)
    c.drawText(text)
    # Words placed one by one, 0.3 em apart and no space glyph between them (tight setting).
    x, size = 56.0, 7.0
    for word in "a highly diverse set of tables".split():
        c.setFont(BODY_FONT, size)
        c.drawString(x, 760, word)
        x += stringWidth(word, BODY_FONT, size) + 0.3 * size
    lines = ["The port authority is hir-", "ing two new deck officers this spring.",
             "Its well-", "known ferries are well maintained and the staff are well paid.",
             "Every self-", "service kiosk accepts the smartcard. The service desk opens at six."]
    _draw_lines(c, lines, 56, 730)
    c.save()
    return path


def vera_font() -> str:
    """Register Bitstream Vera (ships inside reportlab) and return its name: it has ligature glyphs."""
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont("Vera", os.path.join(os.path.dirname(reportlab.__file__), "fonts", "Vera.ttf")))
    return "Vera"


def make_ligature_pdf(path: Path, unmapped: bool = False) -> Path:
    """Text with ﬁ/ﬂ ligature glyphs; `unmapped` removes the font's Unicode map (→ (cid:N) glyphs)."""
    font = vera_font()
    c = canvas.Canvas(str(path), pagesize=A4)
    c.setPageCompression(0)
    c.setFont(font, 11)
    c.drawString(56, 780, "The \ufb01rst of\ufb02ine \ufb01eld test was \ufb01nished on time.")
    c.drawString(56, 760, "Officers check the ferry every morning before the first crossing.")
    c.save()
    if unmapped:
        data = path.read_bytes()
        path.write_bytes(re.sub(rb"/ToUnicode \d+ 0 R", b"", data))
    return path


def make_footnote_pdf(path: Path) -> tuple[Path, str, str]:
    """Two pages of one column; page 1 ends mid-sentence above a footnote in small type."""
    c = canvas.Canvas(str(path), pagesize=A4)
    lines = wrap(unique_prose(1, first=500), 420)
    _draw_lines(c, lines[:8], 72, 760)
    c.setFont(BODY_FONT, 7)
    c.drawString(72, 90, "1 The timetable is published by the Authority each spring and autumn.")
    c.drawString(72, 81, "2 Fares are quoted in Orlen coins and include the harbour levy.")
    c.showPage()
    _draw_lines(c, lines[8:16], 72, 760)
    c.save()
    return path, sentences_across(lines, 8)[0], "1 The timetable is published by the Authority each spring and autumn."
