"""Drop step-03 rows that state specifics their source chunk does not contain.

A teacher that invents facts teaches them: a small teacher's "detailed summary" of a
ferry regulation added terminals, dates and reference numbers that are nowhere in the
document, and a student trained on it answers with them. The judges (faithfulness,
grounding) catch some of that; this check catches the rest cheaply and by rule, with
no teacher: the *specifics* of a row (numbers, and capitalised names that are not the
first word of a sentence) must occur in the row's source chunk, outline or domain.

Nor may a row's answer say nothing. 12 of the embedded teacher's 132 rows for the sample
document (run fresh2) were only scaffolding ("Answer:" seven times, "The answer is:",
"The Fact: The", a lone quote mark); they invent nothing, so 8 of them reached the training
mix, and the student trained on it (run f3) answered 6 of the 99 exam questions with "The
answer is:" or "Answer:" and stopped.

A row is dropped when its trained text (the response, and for summary generators the
generated summary it is conditioned on) holds an invented number, or more than
`max_invented_names` invented names (one is tolerated: a teacher may name the
document's subject in its own words). Numbers are compared by their digits, so
"1,200" matches "1200" and "3 March" matches "03 March" only when written the same
way; names by case-insensitive word, so a capitalised common word that occurs in
the chunk in lower case is not "invented".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# A number: digits, optionally grouped or with a decimal part ("1,200", "3.5", "B/2024/117" -> 2024, 117),
# or a code mixing letters and digits ("K4", "OWB-2" -> "owb-2"), compared as a whole.
_NUMBER = re.compile(r"(?<![\w])(?:[A-Za-z]+-?\d[\w-]*|\d+(?:[.,]\d+)*(?:[A-Za-z]\w*)?)(?![\w])")
# "1." / "2)" / "(3)" numbering a list item: the teacher's layout, not a fact.
_ENUMERATION = re.compile(r"^\s*\(?\d{1,2}[.)]\s", re.M)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
# Where a sentence (or a list item, heading or label) starts: capitals there say nothing.
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n\s*(?:[-*#>]+\s*|\d+[.)]\s*)?|\"\s*|\(\s*)$")
# Capitalised words that are never names.
_NOT_NAMES = frozenset("""
a an the this that these those it its i we you he she they there here what which who whom whose
when where why how yes no not and or but if then so as at by for from in into of on to with
according answer question summary document section article chapter note example however also
""".split())


# Words an answer's scaffolding is made of: an answer of these alone (and no digit) says nothing.
_SCAFFOLDING = frozenset("""
a an the answer answers is are was were be can also written as fact facts here it this that following
response question q to of
""".split())


def says_nothing(answer: str) -> bool:
    """True for an answer without a digit or any word beyond "The answer is:" scaffolding."""
    if any(ch.isdigit() for ch in answer):
        return False
    return all(word.lower() in _SCAFFOLDING for word in _WORD.findall(answer))


def _digits(token: str) -> str:
    return re.sub(r"(?<=\d)[.,](?=\d)", "", token.lower().rstrip(".,"))


def numbers(text: str) -> set[str]:
    """The numbers and codes in `text` ("1,200" -> "1200", "K4" -> "k4"), list numbering left out."""
    return {_digits(m.group()) for m in _NUMBER.finditer(_ENUMERATION.sub(" ", text))}


def names(text: str) -> set[str]:
    """Capitalised words of `text` that do not start a sentence or item, lower-cased."""
    found = set()
    for m in _WORD.finditer(text):
        word = m.group()
        if not word[0].isupper() or word.lower() in _NOT_NAMES or len(word) < 2:
            continue
        if _SENTENCE_START.search(text[max(0, m.start() - 12):m.start()]):
            continue
        found.add(word.lower().strip("'’-"))
    return found


@dataclass
class SourceVocabulary:
    """What a row may state: the numbers and words of its chunk, outline and domain."""

    numbers: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, texts: Iterable[str]) -> SourceVocabulary:
        vocab = cls()
        for text in texts:
            vocab.numbers |= numbers(text)
            vocab.words |= {w.lower().strip("'’-") for w in _WORD.findall(text)}
        return vocab

    def invented(self, text: str) -> tuple[list[str], list[str]]:
        """(numbers, names) of `text` that the source does not contain."""
        new_numbers = sorted(n for n in numbers(text) if n not in self.numbers)
        new_names = sorted(n for n in names(text) if n not in self.words)
        return new_numbers, new_names


@dataclass
class FidelityReport:
    checked: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "dropped": self.dropped, "examples": self.examples[:20]}


def trained_texts(row: dict[str, Any], generator: str, summary_generators: Iterable[str]) -> list[str]:
    """The texts of a row the student learns from: its response, and a generated summary
    (summary generators put it in the prompt, and the response restates it)."""
    texts = [str(row.get("response") or ""), str(row.get("question") or "")]
    if generator in summary_generators and row.get("document") != row.get("raw_document"):
        texts.append(str(row.get("document") or ""))
    return texts


def drop_invented(datasets: dict[str, list[dict[str, Any]]], summary_generators: Iterable[str],
                  max_invented_names: int = 1) -> tuple[dict[str, list[dict[str, Any]]], FidelityReport]:
    """`datasets` without rows that state specifics absent from their source or whose answer says
    nothing; and what was dropped."""
    summary_generators = tuple(summary_generators)
    report = FidelityReport()
    vocabularies: dict[tuple[str, str], SourceVocabulary] = {}
    kept_all = {}
    for generator, rows in datasets.items():
        kept = []
        for row in rows:
            key = (str(row.get("chunk_id")), str(row.get("source")))
            if key not in vocabularies:
                vocabularies[key] = SourceVocabulary.of(
                    [str(row.get("raw_document") or row.get("document") or ""),
                     str(row.get("document_outline") or ""), str(row.get("domain") or "")])
            vocab = vocabularies[key]
            report.checked[generator] = report.checked.get(generator, 0) + 1
            response = str(row.get("response") or "")
            if says_nothing(response):
                report.dropped[generator] = report.dropped.get(generator, 0) + 1
                report.examples.append({"dataset": generator, "chunk_id": row.get("chunk_id"),
                                        "reason": "the answer says nothing", "response": response[:200]})
                continue
            new_numbers: list[str] = []
            new_names: list[str] = []
            for text in trained_texts(row, generator, summary_generators):
                n, w = vocab.invented(text)
                new_numbers += n
                new_names += w
            new_names = sorted(set(new_names))
            if new_numbers or len(new_names) > max_invented_names:
                report.dropped[generator] = report.dropped.get(generator, 0) + 1
                report.examples.append({"dataset": generator, "chunk_id": row.get("chunk_id"),
                                        "reason": "invented specifics",
                                        "invented_numbers": sorted(set(new_numbers))[:8],
                                        "invented_names": new_names[:8],
                                        "response": str(row.get("response") or "")[:200]})
                continue
            kept.append(row)
        kept_all[generator] = kept
    return kept_all, report
