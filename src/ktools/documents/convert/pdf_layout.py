"""Reading order of a PDF page: words → text regions in the order a person reads them.

Measured with bench/convert_fidelity.py on `../shared/corpus/pdf/`: pdfminer's own layout
analysis (`extract_text`, LAParams text boxes) reads the Federal Register's three columns in
order (14 of 22 checks, pdfplumber's plain text 5) but runs column footnotes into the next
column, leaves page furniture in, and splits letter-spaced capitals into letters (`F O R`, on
the generated test page); it would also be a second pass over the glyphs on top of
pdfplumber's, whose tables we keep. So the order is found here, on the words pdf_text builds,
by whitespace analysis:

1. A *gutter* is an x-range of the region that few text rows cross (at most half) while at
   least `MIN_COLUMN_ROWS` rows have words on both sides of it.
2. Gutters are kept only when every column they make reads as prose: at least
   `MIN_COLUMN_EM` font sizes wide, its row pieces fill most of its width (median 70%), hold
   a median of at least three words and are mostly lower case. Table columns (short cells, numbers) fail this, so an
   aligned grid stays one region whose rows become a markdown table, never a column read
   top to bottom.
3. Rows that cross a gutter (a full-width title, a table across the columns) cut the region
   into horizontal bands; a band of rows that cross no gutter is read column by column,
   left to right; every band and column is analysed again (nested layouts), up to a depth.
   A blank strip across all columns (`BLANK_BAND_EM` high) also ends a band: a caption
   below the columns is read after all of them, not as the end of the middle one.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

MIN_COLUMN_ROWS = 3        # rows with text on both sides before a gap counts as a gutter
MIN_COLUMN_EM = 6.0        # a text column is at least this many font sizes wide
MIN_GUTTER_EM = 0.5        # and its gutter at least this wide
MAX_DEPTH = 6
BLANK_BAND_EM = 0.6        # a blank strip this many font sizes high across all columns cuts them


@dataclass
class Line:
    top: float
    bottom: float
    x0: float
    x1: float
    text: str
    size: float
    bold: bool
    words: list = field(default_factory=list)


def group_lines(words: list[dict]) -> list[Line]:
    """Words of one region (a column) grouped into lines, top to bottom, each left to right."""
    lines: list[Line] = []
    for w in sorted(words, key=lambda w: (round(w["top"]), w["x0"])):
        tolerance = max(2.0, 0.4 * float(w["size"]))
        for line in reversed(lines[-3:]):
            if abs(line.top - w["top"]) <= tolerance:
                line.words.append(w)
                break
        else:
            lines.append(Line(w["top"], w["bottom"], w["x0"], w["x1"], "", w["size"], False, [w]))
    for line in lines:
        line.words.sort(key=lambda w: w["x0"])
        line.x0 = min(w["x0"] for w in line.words)
        line.x1 = max(w["x1"] for w in line.words)
        line.bottom = max(w["bottom"] for w in line.words)
        line.text = " ".join(w["text"] for w in line.words)
        line.size = statistics.median(float(w["size"]) for w in line.words)
        line.bold = all("bold" in str(w.get("fontname", "")).lower() for w in line.words)
    lines.sort(key=lambda ln: ln.top)
    return lines


def _rows(words: list[dict]) -> list[list[dict]]:
    """Words grouped into rows by vertical overlap of their middles (across the whole region)."""
    rows: list[list[dict]] = []
    spans: list[list[float]] = []
    for word in sorted(words, key=lambda w: (w["top"], w["x0"])):
        middle = (word["top"] + word["bottom"]) / 2
        for index in range(len(rows) - 1, max(-1, len(rows) - 4), -1):
            if spans[index][0] <= middle <= spans[index][1]:
                rows[index].append(word)
                break
        else:
            rows.append([word])
            spans.append([word["top"], word["bottom"]])
    return rows


def _crosses(row: list[dict], x: float) -> bool:
    return any(w["x0"] < x < w["x1"] for w in row)


def _gutter_candidates(rows: list[list[dict]], left: float, right: float, size: float) -> list[float]:
    """Middles of x-ranges crossed by at most half of the rows, with text on both sides in enough rows."""
    start = int(left)
    length = int(right) - start + 2
    coverage = [0] * (length + 1)
    for row in rows:
        covered = [0] * (length + 1)
        for w in row:
            a, b = max(0, int(w["x0"]) - start + 1), min(length, int(w["x1"]) - start)
            if b >= a:
                covered[a] += 1
                covered[b + 1] -= 1
        running = 0
        for x in range(length):
            running += covered[x]
            if running:
                coverage[x] += 1
    limit = len(rows) // 2
    candidates: list[float] = []
    x = 0
    while x < length:
        if coverage[x] > limit:
            x += 1
            continue
        run_start = x
        while x < length and coverage[x] <= limit:
            x += 1
        run = coverage[run_start:x]
        # The gutter proper: the cleanest stretch wide enough — the longest one crossed by
        # the fewest rows, allowing a few more rows (a heading, a long word poking in) only
        # when the cleanest stretch is too narrow.
        lowest = min(run)
        middle, width = 0.0, 0
        for level in range(lowest, lowest + max(2, len(rows) // 20) + 1):
            best_start, best_width, here = 0, 0, None
            for i, c in enumerate([*run, level + 1]):
                if c <= level and here is None:
                    here = i
                elif c > level and here is not None:
                    if i - here > best_width:
                        best_start, best_width = here, i - here
                    here = None
            middle, width = start + run_start + best_start + (best_width - 1) / 2, best_width
            if width >= MIN_GUTTER_EM * size:
                break
        if width < MIN_GUTTER_EM * size or not (left < middle < right):
            continue
        if _splits_rows(rows, middle, size):
            candidates.append(middle)
    return candidates


def _splits_rows(rows: list[list[dict]], x: float, size: float) -> bool:
    """Whether x is a gutter for the rows: enough rows have text on both sides with a gap wider than a
    word space there, and a fair share of the rows that stop short of x on the left go on across it
    (a last column may be short; ragged-right line ends within one column do not go on)."""
    both = left_only = 0
    for row in rows:
        if _crosses(row, x):
            continue
        left = [w["x1"] for w in row if w["x1"] <= x]
        if not left:
            continue
        right = [w["x0"] for w in row if w["x0"] >= x]
        if right and min(right) - max(left) >= MIN_GUTTER_EM * size:
            both += 1
        else:
            left_only += 1
    return both >= MIN_COLUMN_ROWS and both >= 0.1 * left_only


def _column_is_prose(rows: list[list[dict]], low: float, high: float, size: float) -> bool:
    pieces = [[w for w in row if low <= (w["x0"] + w["x1"]) / 2 < high] for row in rows]
    pieces = [p for p in pieces if p]
    if len(pieces) < MIN_COLUMN_ROWS:
        return False
    col_left = min(w["x0"] for p in pieces for w in p)
    col_right = max(w["x1"] for p in pieces for w in p)
    width = col_right - col_left
    if width < MIN_COLUMN_EM * size:
        return False
    fill = statistics.median((max(w["x1"] for w in p) - min(w["x0"] for w in p)) / width for p in pieces)
    words = statistics.median(len(p) for p in pieces)
    # Running text fills its column (short last lines of paragraphs aside) and is mostly lower
    # case; a table's columns hold cells of varying width, often capitals or figures.
    lower = sum(1 for p in pieces if any(ch.islower() for w in p for ch in w["text"]))
    return fill >= 0.7 and words >= 3 and lower >= 0.5 * len(pieces)


def _prose_gutters(rows: list[list[dict]], candidates: list[float], left: float, right: float,
                   size: float) -> list[float]:
    """The candidates that make prose columns, cleanest first (fewest rows crossing it)."""
    def all_prose(gutters: list[float]) -> bool:
        inner = [r for r in rows if not any(_crosses(r, g) for g in gutters)]
        bounds = [left - 1, *gutters, right + 1]
        return all(_column_is_prose(inner, bounds[i], bounds[i + 1], size) for i in range(len(bounds) - 1))

    crossing = {g: sum(_crosses(r, g) for r in rows) for g in candidates}
    # The clean gutters together first: where the columns' baselines are staggered, one of
    # them alone leaves a side of two columns whose rows fill only half of it.
    clean = sorted(g for g in candidates if crossing[g] <= max(2, len(rows) // 10))
    chosen = clean if len(clean) > 1 and all_prose(clean) else []
    for gutter in sorted(candidates, key=crossing.__getitem__):
        if gutter in chosen:
            continue
        trial = sorted([*chosen, gutter])
        if all_prose(trial):
            chosen = trial
    return chosen


def reading_order(words: list[dict], depth: int = 0) -> list[list[dict]]:
    """The region's words as a list of regions (columns, bands) in reading order."""
    if not words:
        return []
    rows = _rows(words)
    if depth >= MAX_DEPTH or len(rows) < MIN_COLUMN_ROWS:
        return [words]
    size = statistics.median(float(w["size"]) for w in words) or 1.0
    left = min(w["x0"] for w in words)
    right = max(w["x1"] for w in words)
    gutters = _prose_gutters(rows, _gutter_candidates(rows, left, right, size), left, right, size)
    if not gutters:
        return [words]
    bands: list[tuple[bool, list[dict]]] = []
    for row in rows:
        spanning = any(_crosses(row, g) for g in gutters)
        if bands and bands[-1][0] == spanning:
            bands[-1][1].extend(row)
        else:
            bands.append((spanning, list(row)))
    regions: list[list[dict]] = []
    for spanning, band in bands:
        if spanning:
            regions += reading_order(band, depth + 1) if len(band) < len(words) else [band]
            continue
        for part in _split_at_blank_bands(band, size):
            bounds = [float("-inf"), *gutters, float("inf")]
            for low, high in zip(bounds, bounds[1:], strict=False):
                column = [w for w in part if low <= (w["x0"] + w["x1"]) / 2 < high]
                if column:
                    regions += reading_order(column, depth + 1)
    return regions


def _split_at_blank_bands(band: list[dict], size: float) -> list[list[dict]]:
    """Column text cut where a blank strip runs across all columns (a caption under the columns,
    the end of an article): what is below is read after every column above it."""
    ordered = sorted(band, key=lambda w: w["top"])
    parts: list[list[dict]] = [[]]
    lowest = float("-inf")
    for word in ordered:
        if parts[-1] and word["top"] - lowest > BLANK_BAND_EM * size:
            parts.append([])
        parts[-1].append(word)
        lowest = max(lowest, word["bottom"])
    return parts
