"""Page furniture: running headers/footers and page numbers dropped, footnotes after the body."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from ktools.documents.convert.pdf_layout import Line


@dataclass
class PageLayout:
    """One page read: its regions (columns, bands) in reading order, each a list of ("line", Line)
    and ("table", rows) items, plus what conversion lost on it."""
    regions: list[list[tuple[str, object]]]   # per region (column/band), its lines and tables in order
    unmapped_glyphs: int = 0
    height: float = 792.0
    had_text: bool = False   # words before page furniture was dropped


def _edge_lines(page: PageLayout) -> list[Line]:
    """The page's two topmost and two bottom-most lines by position (whatever the reading order)."""
    lines = [it for region in page.regions for kind, it in region if kind == "line"]
    tops = sorted({round(ln.top) for ln in lines})  # type: ignore[attr-defined]
    bottoms = sorted({round(ln.bottom) for ln in lines})  # type: ignore[attr-defined]
    keep_top, keep_bottom = set(tops[:2]), set(bottoms[-2:])
    return [ln for ln in lines if round(ln.top) in keep_top or round(ln.bottom) in keep_bottom]  # type: ignore


def _running_key(line: Line) -> str:
    return re.sub(r"\d+", "#", line.text).strip().lower()


_PAGE_NUMBER = re.compile(r"(?:page\s*)?[-–]?\s*\d{1,5}\s*[-–]?(?:\s*(?:of|/)\s*\d{1,5})?", re.IGNORECASE)


def drop_running_lines(pages: list[PageLayout]) -> None:
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


def split_footnotes(page: PageLayout, body: float) -> tuple[list[tuple[str, object]], list[tuple[str, object]]]:
    """The page's items in reading order as (body, footnotes): each column's footnotes are the
    smaller type at its foot, read after the body text of all columns."""
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
    return main, notes


