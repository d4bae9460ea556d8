"""Glyphs → words, as a reader sees them: the text layer of one PDF page made into words.

pdfplumber's `extract_words` merges glyphs closer than a fixed 3 pt, which glues the words
of small or tightly set type (`FORFURTHERINFORMATIONCONTACT` at 7.4 pt, word gaps of
2.5 pt) and keeps letter-spaced capitals apart. Here the gap that separates words is
measured per text row, relative to the font size and to the row's own letter spacing:

- a space glyph always separates words;
- otherwise a gap separates words when it is wider than the row's usual letter gap
  plus `WORD_GAP_EM` of the font size (letter-spaced capitals have wide letter gaps
  and wider word gaps; tight justified text has near-zero letter gaps).

Before that, glyphs drawn twice (bold by overprinting) are removed, glyphs that are not
upright (rotated margin notes, printer's marks) or lie outside the page are dropped, and
the ligature glyphs (U+FB00–FB06) are expanded (NFKC for that range only, so that other
characters — superscripts, fractions, full-width forms — keep their form).
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from dataclasses import dataclass, field

WORD_GAP_EM = 0.15          # a gap wider than this part of the font size (beyond letter spacing) is a space
LETTER_GAP_MAX_EM = 0.5     # gaps up to this size are candidates for the row's letter spacing
CID = re.compile(r"\(cid:\d+\)")
_LIGATURES = {chr(code): unicodedata.normalize("NFKC", chr(code)) for code in range(0xFB00, 0xFB07)}


@dataclass
class PageText:
    """The words of one page, plus what was lost on the way."""
    words: list[dict]
    unmapped_glyphs: int = 0          # glyphs without a Unicode mapping, `(cid:N)`
    dropped_rotated: int = 0          # glyphs not upright (margin notes, printer's marks)
    bullets: list[dict] = field(default_factory=list)


def _upright(char: dict) -> bool:
    matrix = char.get("matrix") or (1, 0, 0, 1, 0, 0)
    a, b, c, d = matrix[:4]
    return bool(char.get("upright", True)) and abs(b) < 1e-3 and abs(c) < 1e-3 and a > 0 and d > 0


def drop_overprinted(chars: list[dict], tolerance: float = 1.0) -> list[dict]:
    """Glyphs drawn again at (nearly) the same place with the same text, font and size, removed.

    pdfplumber's `dedupe_chars` compares every glyph with its neighbours in Python
    (25 s for the 15-page Federal Register here); bucketing by rounded position is linear.
    """
    seen: dict[tuple, list[dict]] = {}
    kept: list[dict] = []
    for char in chars:
        bx, by = int(char["x0"] // tolerance), int(char["top"] // tolerance)
        signature = (char.get("text"), char.get("fontname"), round(float(char.get("size", 0)), 1))
        duplicate = False
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for other in seen.get((signature, bx + dx, by + dy), ()):
                    if abs(other["x0"] - char["x0"]) <= tolerance and abs(other["top"] - char["top"]) <= tolerance:
                        duplicate = True
                        break
        if not duplicate:
            seen.setdefault((signature, bx, by), []).append(char)
            kept.append(char)
    return kept


def clean_chars(page) -> tuple[list[dict], int]:
    """Upright, on-page, de-duplicated glyphs with ligatures expanded; and the number dropped as rotated."""
    chars = drop_overprinted(page.chars)
    x0, top, x1, bottom = page.bbox
    kept: list[dict] = []
    rotated = 0
    for char in chars:
        text = char.get("text", "")
        if not text:
            continue
        if not _upright(char):
            if not text.isspace():
                rotated += 1
            continue
        if char["x1"] < x0 or char["x0"] > x1 or char["bottom"] < top or char["top"] > bottom:
            continue
        if text in _LIGATURES:
            char = {**char, "text": _LIGATURES[text]}
        kept.append(char)
    return kept, rotated


def _rows(chars: list[dict]) -> list[list[dict]]:
    """Glyphs grouped into text rows by vertical overlap (whole page width; columns come later)."""
    rows: list[list[dict]] = []
    spans: list[tuple[float, float]] = []
    for char in sorted(chars, key=lambda c: (round(c["bottom"], 0), c["x0"])):
        middle = (char["top"] + char["bottom"]) / 2
        for index in range(len(rows) - 1, max(-1, len(rows) - 4), -1):
            top, bottom = spans[index]
            if top <= middle <= bottom:
                rows[index].append(char)
                break
        else:
            rows.append([char])
            spans.append((char["top"], char["bottom"]))
    return rows


def _letter_gap(row: list[dict], size: float) -> float:
    """The row's usual gap between letters of a word (0 for ordinary text, wide for letter-spaced type)."""
    gaps = [b["x0"] - a["x1"] for a, b in zip(row, row[1:], strict=False)
            if not a["text"].isspace() and not b["text"].isspace()]
    small = [g for g in gaps if -0.2 * size < g < LETTER_GAP_MAX_EM * size]
    if len(small) < 3:
        return 0.0
    return max(0.0, statistics.median(small))


def _word(chars: list[dict]) -> dict:
    sizes = [float(c["size"]) for c in chars]
    return {"text": "".join(c["text"] for c in chars),
            "x0": min(c["x0"] for c in chars), "x1": max(c["x1"] for c in chars),
            "top": min(c["top"] for c in chars), "bottom": max(c["bottom"] for c in chars),
            "size": max(set(sizes), key=sizes.count), "fontname": chars[0].get("fontname", "")}


# Spacing accents some PDFs draw over a letter as a glyph of their own (Age + ˆ + ncia).
_COMBINING = {"\u02c6": "\u0302", "^": "\u0302", "\u00a8": "\u0308", "\u00b4": "\u0301", "`": "\u0300",
              "\u02dc": "\u0303", "~": "\u0303", "\u00b8": "\u0327", "\u02da": "\u030a", "\u02c7": "\u030c"}


def _compose_accents(row: list[dict]) -> list[dict]:
    """Accent glyphs overlapping the letter before them are merged into it (NFC: ê, ç, ü)."""
    out: list[dict] = []
    for char in row:
        mark = _COMBINING.get(char["text"])
        if mark and out and out[-1]["text"].isalpha() and char["x0"] < out[-1]["x1"] - 0.1 * float(char["size"]):
            base = out[-1]
            out[-1] = {**base, "text": unicodedata.normalize("NFC", base["text"] + mark)}
            continue
        out.append(char)
    return out


def row_words(row: list[dict]) -> list[dict]:
    """Split one text row (glyphs sorted by x) into words."""
    row = _compose_accents(sorted(row, key=lambda c: c["x0"]))
    size = statistics.median(float(c["size"]) for c in row) or 1.0
    threshold = _letter_gap(row, size) + WORD_GAP_EM * size
    words: list[dict] = []
    current: list[dict] = []
    previous: dict | None = None
    for char in row:
        if char["text"].isspace():
            if current:
                words.append(_word(current))
                current = []
            previous = None
            continue
        if previous is not None and current:
            local = max(size * 0.5, min(float(char["size"]), float(previous["size"])))
            gap = char["x0"] - previous["x1"]
            if gap > threshold * local / size:
                words.append(_word(current))
                current = []
        current.append(char)
        previous = char
    if current:
        words.append(_word(current))
    return words


def drop_line_numbers(words: list[dict]) -> list[dict]:
    """Remove a margin column of line numbers (transcripts, legal pleadings): integers that count up
    by one from line to line, right-aligned at one x, each well apart from the text it numbers."""
    numbers = [w for w in words if w["text"].isdigit() and len(w["text"]) <= 3]
    if len(numbers) < 5:
        return words
    by_edge: dict[int, list[dict]] = {}
    for w in numbers:
        by_edge.setdefault(round(w["x1"] / 3), []).append(w)
    drop: set[int] = set()
    for column in by_edge.values():
        column.sort(key=lambda w: w["top"])
        values = [int(w["text"]) for w in column]
        counting = sum(1 for a, b in zip(values, values[1:], strict=False) if b == a + 1)
        if counting < 4 or counting < 0.8 * (len(values) - 1):
            continue
        x1 = max(w["x1"] for w in column)
        in_column = {id(w) for w in column}
        others = [w for w in words if w["x0"] > x1 and id(w) not in in_column]
        size = statistics.median(float(w["size"]) for w in column)
        apart = all(not any(abs(o["top"] - w["top"]) < size and o["x0"] - w["x1"] < size for o in others)
                    for w in column)
        if apart:
            drop.update(id(w) for w in column)
    return [w for w in words if id(w) not in drop] if drop else words


def page_words(page) -> PageText:
    """The page's words (upright, de-duplicated, ligatures expanded), with counts of lost glyphs."""
    chars, rotated = clean_chars(page)
    words: list[dict] = []
    for row in _rows(chars):
        words.extend(row_words(row))
    words = drop_line_numbers(words)
    unmapped = sum(len(CID.findall(w["text"])) for w in words)
    return PageText(words=words, unmapped_glyphs=unmapped, dropped_rotated=rotated)


# --- hyphenation at line ends -----------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_LINE_END_BREAK = re.compile(r"[^\W\d_]+-$")


def vocabulary(lines: list[str]) -> set[str]:
    """Lower-cased words of the document, compounds and their parts, from its text lines in order.

    The pieces of a word broken at a line end (`hir-` / `ing`) are left out, so that they do
    not count as words of their own.
    """
    found: set[str] = set()
    after_break = False
    for line in lines:
        text = line.strip()
        if after_break:
            text = re.sub(r"^[^\W\d_]+", "", text)
        after_break = bool(_LINE_END_BREAK.search(text))
        if after_break:
            text = _LINE_END_BREAK.sub("", text)
        for match in _WORD.finditer(text):
            word = match.group(0).lower()
            found.add(word)
            if "-" in word:
                found.update(word.split("-"))
    return found


def join_hyphenated(first: str, second: str, words: set[str]) -> str:
    """Join `first` (ending in '-') with the next line's first word `second`.

    Rule (no dictionary download): the hyphen is a line-end break — dropped — when the joined
    word occurs elsewhere in the document, or when neither half is a word of the document
    (`hir-` + `ing`). It is kept (a real compound: `well-` + `known`) when the hyphenated form
    occurs elsewhere, when either half is a word of its own, or when the second half starts
    with a capital (`Soekarno-` + `Hatta`).
    """
    head = first[:-1]
    head_word = re.search(r"[^\W\d_]+$", head)
    tail_word = re.match(r"[^\W\d_]+", second)
    if not head_word or not tail_word:
        return first + second
    if tail_word.group(0)[:1].isupper():
        return first + second  # a syllable break never continues in capitals: Soekarno-Hatta
    left, right = head_word.group(0).lower(), tail_word.group(0).lower()
    joined = left + right
    if joined in words:
        return head + second
    if f"{left}-{right}" in words or left in words or right in words:
        return first + second
    return head + second
