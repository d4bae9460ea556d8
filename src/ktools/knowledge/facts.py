"""Sentences and fact spans of a markdown document, found by rule (no model, no download).

The knowledge views of step 04 and the rule-built exam both start here:

- `sentences(markdown)` — the document as plain sentences, each with its heading path:
  paragraphs split at sentence ends, list items and definition lines as sentences of
  their own, and every table row rewritten as a sentence that names its columns
  ("Edition 6: Reference OEFA-REG-006; In force from 1 April 2016; …"), because a
  table row read alone loses the meaning its header gives it.
- `fact_spans(sentence)` — the short strings a question can be answered with: dates,
  times, amounts and numbers with their unit, codes (`OEFA-REG-009`, `B/2024/117`)
  and proper names (capitalised word runs), each with a kind. A span is the answer of
  a cloze or exam question and the key fact it is scored on, so it must occur
  verbatim in the sentence; `fact_spans` only returns such spans.
- `defined_terms(markdown)` — what the document itself says its terms mean
  (``**Term** means …`` and ``Full Name (ABBR)``), used to restate sentences with the
  entity named in full.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December|"
           "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec")
_UNITS = (r"(?:per\s?cent|percent|%|days?|weeks?|months?|years?|hours?|minutes?|seconds?|metres?|meters?|"
          r"kilometres?|km|m|cm|mm|kg|tonnes?|tons?|knots?|miles?|nautical miles?|passengers?|vehicles?|"
          r"members?|people|persons?|crossings?|lane metres?|litres?|liters?|kW|kWh|MW|GB|MB|TB|Hz|"
          r"(?-i:V|A|W)|°C|°F|degrees?|times?|points?|seats?|berths?|terminals?|vessels?|routes?|staff)")
_SPAN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("date", re.compile(rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTHS})\.?,?\s+\d{{4}}"
                        rf"|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
                        rf"|\d{{4}}-\d{{2}}-\d{{2}}|(?:{_MONTHS})\s+\d{{4}})\b")),
    ("time", re.compile(r"\b\d{1,2}:\d{2}(?:\s?[–-]\s?\d{1,2}:\d{2})?(?:\s?(?:am\b|pm\b|a\.m\.|p\.m\.))?"
                        r"|\b\d{1,2}\s?(?:am\b|pm\b|a\.m\.|p\.m\.)", re.IGNORECASE)),
    ("money", re.compile(r"(?:(?:[£$€¥]|\b[A-Z]{2,3}\s)\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:million|billion|thousand|m|bn|k))?"
                         r"|\b\d[\d,]*(?:\.\d+)?\s?(?:EUR|USD|GBP|euros?|dollars?|pounds?)\b)")),
    ("code", re.compile(r"\b(?=[A-Z0-9/–-]*\d)(?=[A-Z0-9/–-]*[A-Z])[A-Z0-9]+(?:[-–/][A-Z0-9]+)+\b"
                        r"|\b[A-Z]{1,4}\d{1,4}[A-Z]?\b")),
    ("quantity", re.compile(rf"\b\d[\d,]*(?:\.\d+)?\s?(?:[-–]\s?\d[\d,]*(?:\.\d+)?\s?)?{_UNITS}(?![\w])",
                            re.IGNORECASE)),
    ("number", re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")),
)
# Capitalised runs ("Odalys Brennerfeld", "Tillwick Harbour Trust"); lower-case joiners
# inside a run are allowed ("Board of the Authority" stays one name).
_NAME = re.compile(r"\b[A-Z][\w'’-]*[a-z][\w'’-]*(?:\s+(?:(?:of|the|and|de|van|von|for|on)\s+)?"
                   r"[A-Z][\w'’-]*)+")
_WORD_NUMBERS = re.compile(r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                           r"twenty|thirty|forty|fifty|hundred)\b", re.IGNORECASE)
# Sentence-initial words that make a capitalised run look like a name.
_FUNCTION_WORDS = {"The", "A", "An", "This", "These", "That", "Those", "It", "They", "In", "On", "At", "For",
                   "If", "When", "Where", "Each", "Every", "All", "Any", "No", "Only", "From", "Under", "With",
                   "By", "To", "As", "After", "Before", "During", "Between", "Section", "Sections", "Table",
                   "See", "And", "Or", "But", "Its", "Their", "Our", "We", "You", "There", "Here"}
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|\([a-z0-9]{1,3}\))\s+")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]?\s+(?=[\"'“(]?[A-Z0-9])")
# Abbreviations after which a full stop does not end a sentence.
_ABBREVIATIONS = re.compile(r"(?:\b(?:e\.g|i\.e|etc|cf|vs|no|nos|art|arts|sec|para|fig|p|pp|vol|ch|approx|"
                            r"Mr|Mrs|Ms|Dr|Prof|St|Inc|Ltd|Co|Corp|Jr|Sr)|\b[A-Z])\.$", re.IGNORECASE)
_MARKUP = re.compile(r"\*\*|__|`|(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w)|\[(?P<text>[^\]]*)\]\([^)]*\)")
_DEFINITION = re.compile(r"^\s*(?:[-*+]\s+)?(?:\*\*|__)?[\"“]?(?P<term>[A-Z][\w' -]{0,60}?)[\"”]?(?:\*\*|__)?"
                         r"\s+(?:means|refers to|is defined as)\s+(?P<meaning>(?:[^;.]|\.(?=\d))+)")
_ABBREVIATION_DEF = re.compile(r"(?P<full>[A-Z][\w'’-]+(?:\s+(?:(?:of|the|and|for|de|on)\s+)?[A-Z][\w'’-]+){1,7})"
                               r"\s+\((?P<abbr>[A-Z]{2,8})\)")


@dataclass(frozen=True)
class Sentence:
    """One sentence of the document, where it stands, and which chunk holds it."""

    text: str
    heading_path: tuple[str, ...] = ()
    index: int = 0  # position in the document (a stable id within one source)
    from_table: bool = False
    # A table row's identifying cell as the sentence names it ("Route K1") and its other cells as
    # (column header, cell) pairs: what a question about one cell asks for (views.plain_qa).
    row_label: str = ""
    cells: tuple[tuple[str, str], ...] = ()

    @property
    def section(self) -> str:
        return self.heading_path[-1] if self.heading_path else ""


@dataclass(frozen=True)
class FactSpan:
    text: str
    kind: str  # date | time | money | code | quantity | number | name
    start: int
    end: int


@dataclass
class DocumentFacts:
    """The sentences and defined terms of one source document."""

    source: str
    title: str
    sentences: list[Sentence] = field(default_factory=list)
    terms: dict[str, str] = field(default_factory=dict)


def strip_markup(text: str) -> str:
    """Markdown emphasis, code ticks and links removed (the link text kept)."""
    return _MARKUP.sub(lambda m: m.group("text") or "", text).strip()


def split_sentences(paragraph: str) -> list[str]:
    parts: list[str] = []
    buffer = ""
    for piece in _SENTENCE_END.split(paragraph):
        buffer = f"{buffer} {piece}".strip() if buffer else piece.strip()
        if buffer and not _ABBREVIATIONS.search(buffer):
            parts.append(buffer)
            buffer = ""
    if buffer:
        parts.append(buffer)
    return [p for p in parts if p]


@dataclass(frozen=True)
class TableRow:
    text: str
    label: str
    cells: tuple[tuple[str, str], ...]


def _table_sentences(rows: list[list[str]]) -> list[TableRow]:
    """A markdown table as one sentence per data row, naming each cell by its column header."""
    if len(rows) < 2:
        return []
    header, body = rows[0], rows[1:]
    out = []
    for cells in body:
        pairs = [(h, c) for h, c in zip(header, cells, strict=False) if c and c not in {"-", "—", "–"}]
        if not pairs:
            continue
        (first_h, first_c), rest = pairs[0], pairs[1:]
        lead = f"{first_h} {first_c}" if first_h else first_c
        text = lead + (": " + "; ".join(f"{h} {c}" if h else c for h, c in rest) if rest else "") + "."
        out.append(TableRow(text, lead, tuple((h, c) for h, c in rest if h)))
    return out


def _cells(line: str) -> list[str]:
    return [strip_markup(c.strip()) for c in line.strip().strip("|").split("|")]


def sentences(markdown: str) -> tuple[str, list[Sentence]]:
    """The document's title (its first heading) and its sentences in reading order."""
    title = ""
    path: list[tuple[int, str]] = []
    out: list[Sentence] = []
    paragraph: list[str] = []
    table: list[list[str]] = []

    def heading_path() -> tuple[str, ...]:
        return tuple(text for _, text in path)

    def add(text: str, row: TableRow | None = None) -> None:
        text = re.sub(r"\s+", " ", text).strip()
        if len(text) >= 12 and re.search(r"[A-Za-z]{2}", text):
            out.append(Sentence(text, heading_path(), len(out), row is not None,
                                row.label if row else "", row.cells if row else ()))

    def flush() -> None:
        if paragraph:
            for sentence in split_sentences(strip_markup(" ".join(paragraph))):
                add(sentence)
            paragraph.clear()
        if table:
            for row in _table_sentences(table):
                add(row.text, row)
            table.clear()

    for raw in markdown.splitlines():
        line = raw.rstrip()
        heading = _HEADING.match(line)
        if heading:
            flush()
            level, text = len(heading.group(1)), strip_markup(heading.group(2))
            title = title or text
            path[:] = [(lv, t) for lv, t in path if lv < level] + [(level, text)]
            continue
        if _TABLE_ROW.match(line):
            if paragraph:
                flush()
            if not _TABLE_RULE.match(line):
                table.append(_cells(line))
            continue
        if table:
            flush()
        if not line.strip():
            flush()
            continue
        if _LIST_ITEM.match(line):
            flush()
            paragraph.append(_LIST_ITEM.sub("", line))
            flush()
            continue
        paragraph.append(line.strip())
    flush()
    return title, out


def document_facts(markdown: str, source: str = "") -> DocumentFacts:
    title, found = sentences(markdown)
    return DocumentFacts(source=source, title=title, sentences=found, terms=defined_terms(markdown))


def defined_terms(markdown: str) -> dict[str, str]:
    """Term → what the document says it means, for short meanings (≤ 12 words)."""
    terms: dict[str, str] = {}
    for line in markdown.splitlines():
        match = _DEFINITION.match(line)
        if match:
            meaning = strip_markup(match.group("meaning")).strip()
            if 0 < len(meaning.split()) <= 12:
                terms.setdefault(match.group("term").strip(), meaning)
    for match in _ABBREVIATION_DEF.finditer(strip_markup(markdown)):
        full = match.group("full").strip()
        abbr = match.group("abbr")
        # Keep only the words whose initials spell the abbreviation ("… the Orlenmoor Estuary
        # Ferry Authority (OEFA)" → "Orlenmoor Estuary Ferry Authority").
        words = full.split()
        for k in range(len(words)):
            tail = words[k:]
            initials = "".join(w[0] for w in tail if w[0].isupper())
            if initials == abbr:
                terms.setdefault(abbr, " ".join(tail))
                break
    return terms


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in taken)


def fact_spans(sentence: str) -> list[FactSpan]:
    """Answerable spans of a sentence, most specific kinds first, never overlapping."""
    taken: list[tuple[int, int]] = []
    spans: list[FactSpan] = []
    for kind, pattern in _SPAN_PATTERNS:
        for match in pattern.finditer(sentence):
            text = match.group(0).strip(" ,.;:")
            start = sentence.find(text, match.start())
            bounds = (start, start + len(text))
            if not text or _overlaps(bounds, taken):
                continue
            if kind == "number" and (len(text) < 2 and not _context_number(sentence, bounds)):
                continue  # a lone digit is usually a list index or section number
            taken.append(bounds)
            spans.append(FactSpan(text, kind, *bounds))
    for match in _NAME.finditer(sentence):
        text = match.group(0)
        words = text.split()
        while words and words[0] in _FUNCTION_WORDS:
            words = words[1:]
        if len(words) < 2:
            continue
        text = " ".join(words)
        start = sentence.find(text, match.start())
        bounds = (start, start + len(text))
        if not _overlaps(bounds, taken):
            taken.append(bounds)
            spans.append(FactSpan(text, "name", *bounds))
    for match in _WORD_NUMBERS.finditer(sentence):
        bounds = (match.start(), match.end())
        if not _overlaps(bounds, taken):
            taken.append(bounds)
            spans.append(FactSpan(match.group(0), "number", *bounds))
    return sorted(spans, key=lambda s: s.start)


def _context_number(sentence: str, bounds: tuple[int, int]) -> bool:
    after = sentence[bounds[1]: bounds[1] + 12].lower()
    return bool(re.match(r"\s+(?:of|out of|or more|or fewer|members|times|\w+s\b)", after))


# How good a span is as the answer of a question: specific facts first.
KIND_RANK = {"date": 0, "money": 1, "code": 2, "quantity": 3, "name": 4, "time": 5, "number": 6}


def best_span(sentence: str, exclude: set[str] | None = None) -> FactSpan | None:
    """The span a question about this sentence should ask for, or None when it has none."""
    candidates = [s for s in fact_spans(sentence) if not exclude or s.text not in exclude]
    # A span that is most of the sentence leaves nothing to ask with.
    candidates = [s for s in candidates if len(s.text) <= 0.6 * len(sentence)]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (KIND_RANK[s.kind], s.start))
