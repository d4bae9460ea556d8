"""Page items (lines in reading order, tables) → markdown blocks.

Lines in a font clearly larger than the body become headings (sizes ranked into levels);
bullet/number lines become list items (a wrapped item's next lines join it); lines split by
wide gaps into cells become markdown table rows — unless every cell reads as running text,
which is side-by-side prose (text columns too short for the layout analysis), read column by
column. Paragraph lines are joined: across a column break when the sentence runs on, a
line-end hyphen by pdf_text.join_hyphenated, Chinese/Japanese lines without a space, a URL
broken after a slash without one.
"""

from __future__ import annotations

import re
import unicodedata

from ktools.documents.convert.pdf_layout import Line
from ktools.documents.convert.pdf_text import join_hyphenated

# "(cid:N)" is a bullet glyph without a unicode mapping (e.g. ZapfDingbats);
# Symbol-font bullets land in the private use area (U+F0B7 , U+F0A7 , U+F0D8 …).
_BULLET = re.compile(r"^(?:[•◦▪●○■‣–\-*\uf0a7\uf0b7\uf0d8\uf076\uf0fc]\s+|\(cid:\d+\)\s*)(?=\S)")
_NUMBERED = re.compile(r"^(\d{1,3}[.)]|\([a-z0-9]{1,3}\)|[a-z][.)])\s+")
_SENTENCE_END = re.compile(r"[.!?:;]['’”\")]*$")



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


def render_page(items: list[tuple[str, object]], body: float, levels: dict[float, int], words: set[str]) -> str:
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
