"""A closed-book exam for every corpus, and the check that it never leaks into training.

Each exam item asks about one fact of one sentence of the user's document:

- ``question``  — written by rule as a question about the sentence with its fact span
  replaced by a question phrase ("…, appointed on which date?"), prefixed with the
  document it is about; a real teacher (not the embedded 135M one) may rephrase it
  into a natural question (kept only when it does not give the answer away);
- ``answer``    — the fact span, which occurs verbatim in the document;
- ``key_facts`` — ``[answer]``: an answer is right when it contains the fact;
- ``choices``   — the fact plus three distractors of the same kind (dates for a date,
  names for a name) taken from other sentences of the same document, for scoring by
  log-likelihood (`ktools.evaluate.choice`);
- ``sentence_key`` — the sentence it was built from (`views.sentence_key`).

Exam sentences are chosen spread over the document's sections (seeded), from
sentences with a usable fact span. Their *text* stays in training (the student must
read the fact somewhere); no training *question* is built from them, and
`find_leaks` checks every training row's question against every exam question by
normalised text and by word-shingle similarity.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ktools.knowledge.facts import DocumentFacts, FactSpan, Sentence, best_span, fact_spans
from ktools.knowledge.questions import rule_question
from ktools.knowledge.views import normalise, sentence_key

log = logging.getLogger(__name__)

N_CHOICES = 4
# Two questions whose word 3-shingles overlap this much are near-copies.
NEAR_COPY_JACCARD = 0.6


class ExamError(ValueError):
    """The exam cannot be built or read; the message names the file, record and field."""


@dataclass
class ExamItem:
    id: str
    question: str
    answer: str
    key_facts: list[str]
    choices: list[str]
    source: str
    section: str
    sentence_key: str
    sentence: str
    kind: str
    written_by: str = "rule"  # rule | teacher

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExamBuild:
    items: list[ExamItem] = field(default_factory=list)
    per_source: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def held_out(self) -> set[str]:
        return {item.sentence_key for item in self.items}


def _choices(span: FactSpan, pool: Mapping[str, list[str]], rng: random.Random) -> list[str]:
    others = [t for t in pool.get(span.kind, []) if normalise(t) != normalise(span.text)]
    seen: set[str] = set()
    distinct = []
    for text in others:
        if normalise(text) not in seen:
            seen.add(normalise(text))
            distinct.append(text)
    if len(distinct) < N_CHOICES - 1:
        return []
    options = rng.sample(distinct, N_CHOICES - 1) + [span.text]
    rng.shuffle(options)
    return options


def select_exam_sentences(facts: DocumentFacts, n: int, seed: int) -> list[tuple[Sentence, FactSpan]]:
    """Up to `n` (sentence, span) pairs spread over sections, each sentence used once."""
    rng = random.Random(f"{seed}:exam:{facts.source}")
    by_section: dict[str, list[tuple[Sentence, FactSpan]]] = defaultdict(list)
    for sentence in facts.sentences:
        span = best_span(sentence.text)
        if span is None or len(sentence.text.split()) < 6:
            continue
        by_section[sentence.section].append((sentence, span))
    for group in by_section.values():
        rng.shuffle(group)
    picked: list[tuple[Sentence, FactSpan]] = []
    sections = sorted(by_section)
    rng.shuffle(sections)
    # One question per key fact: a document that repeats "9 a.m. to 5 p.m." in three
    # places would otherwise ask the same thing three times.
    answers: set[str] = set()
    while len(picked) < n and any(by_section.values()):
        for section in sections:
            while by_section[section] and len(picked) < n:
                sentence, span = by_section[section].pop()
                if span.text.casefold() not in answers:
                    answers.add(span.text.casefold())
                    picked.append((sentence, span))
                    break
    return sorted(picked, key=lambda p: p[0].index)


def build_exam(corpus: Mapping[str, DocumentFacts], *, share: float = 0.12, max_per_source: int = 40,
               min_per_source: int = 5, seed: int = 42, rephrase: Any = None) -> ExamBuild:
    """The exam of every source: `share` of its quizzable sentences, between the bounds.

    `rephrase(question, sentence, answer) -> str | None` lets a teacher rewrite a rule
    question; a rewrite that contains the answer or is not a question is ignored.
    """
    build = ExamBuild()
    for source, facts in sorted(corpus.items()):
        quizzable = sum(1 for s in facts.sentences if best_span(s.text) is not None)
        n = min(max_per_source, max(min_per_source, round(share * quizzable)))
        # Never hold out more than a third: the rest must be left to teach with.
        n = min(n, quizzable // 3)
        if n <= 0:
            build.notes.append(f"{source}: too few sentences with a fact to build an exam from")
            continue
        rng = random.Random(f"{seed}:choices:{source}")
        pool: dict[str, list[str]] = defaultdict(list)
        for sentence in facts.sentences:
            for span in fact_spans(sentence.text):
                pool[span.kind].append(span.text)
        for sentence, span in select_exam_sentences(facts, n, seed):
            question = rule_question(sentence, span, facts.title)
            written_by = "rule"
            if rephrase is not None:
                better = _accept_rephrase(rephrase(question, sentence.text, span.text), span.text)
                if better:
                    question, written_by = better, "teacher"
            key = sentence_key(source, sentence.text)
            build.items.append(ExamItem(
                id=f"{_slug(source)}-{sentence.index:04d}", question=question, answer=span.text,
                key_facts=[span.text], choices=_choices(span, pool, rng), source=source,
                section=sentence.section, sentence_key=key, sentence=sentence.text, kind=span.kind,
                written_by=written_by))
        build.per_source[source] = sum(1 for i in build.items if i.source == source)
    return build


def _accept_rephrase(text: str | None, answer: str) -> str | None:
    if not text:
        return None
    text = text.strip().strip('"').splitlines()[0].strip() if text.strip() else ""
    if not text.endswith("?") or len(text.split()) > 45 or len(text.split()) < 4:
        return None
    if normalise(answer) and normalise(answer) in normalise(text):
        return None
    return text


def _slug(source: str) -> str:
    stem = re.sub(r"[^\w]+", "-", source.rsplit("/", 1)[-1].rsplit(".", 1)[0]).strip("-").lower()
    return stem[:40] or "doc"


# --- leak check --------------------------------------------------------------------------

def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i: i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set[Any], b: set[Any]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


@dataclass(frozen=True)
class Leak:
    exam_id: str
    row_index: int
    reason: str  # "same question" | "near-copy (Jaccard 0.71)" | "question built from an exam sentence"


def find_leaks(exam: Sequence[Mapping[str, Any]], questions: Sequence[str],
               row_sentence_keys: Sequence[Iterable[str]] | None = None) -> list[Leak]:
    """Training rows (given by their question, i.e. the user turn) that leak an exam item.

    A leak is a row whose question equals an exam question after normalisation, contains
    it, or shares ≥ NEAR_COPY_JACCARD of its word 3-shingles with it; or (by fact) a
    question row built from the same sentence as an exam item.
    """
    leaks: list[Leak] = []
    exam_norm = [(str(e["id"]), normalise(str(e["question"])), shingles(str(e["question"])),
                  e.get("sentence_key")) for e in exam]
    index: dict[tuple[str, ...], set[int]] = defaultdict(set)
    for k, (_, _, sh, _) in enumerate(exam_norm):
        for s in sh:
            index[s].add(k)
    by_sentence = {key: eid for eid, _, _, key in exam_norm if key}
    for row, question in enumerate(questions):
        norm = normalise(question)
        row_sh = shingles(question)
        candidates = set().union(*(index.get(s, set()) for s in row_sh)) if row_sh else set()
        for k in candidates:
            exam_id, exam_text, exam_sh, _ = exam_norm[k]
            if norm == exam_text or (exam_text and exam_text in norm):
                leaks.append(Leak(exam_id, row, "same question"))
                continue
            similarity = jaccard(row_sh, exam_sh)
            if similarity >= NEAR_COPY_JACCARD:
                leaks.append(Leak(exam_id, row, f"near-copy (Jaccard {similarity:.2f})"))
        if row_sentence_keys is not None:
            for key in row_sentence_keys[row]:
                if key in by_sentence:
                    leaks.append(Leak(by_sentence[key], row, "question built from an exam sentence"))
    return leaks


def read_exam(path: Any) -> list[dict[str, Any]]:
    from ktools.io import iter_jsonl

    items = []
    for line, row in enumerate(iter_jsonl(path), start=1):
        for name in ("id", "question", "answer"):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise ExamError(f"{path}, record {line}: field {name!r} must be a non-empty string")
        items.append(row)
    return items
