"""Knowledge views: rule-built training rows that restate the document's own facts.

A small student does not learn a document from a few generated Q&A about it. What the
literature found, and `bench/knowledge.py` measures here, is that it learns from the
document's text and its facts *seen in several forms*, mixed with questions in one
training stage (Allen-Zhu & Li, *Physics of Language Models 3.1*; Knowledge-Instruct,
arXiv 2504.05571; Self-Tuning, arXiv 2406.06326). Each view below is one such form,
built by rule from step 02's chunks, so it needs no teacher and cannot invent a fact:

- ``raw_text``     each chunk as it is, loss on every token;
- ``restatement``  every sentence standing alone: defined terms and abbreviations
                   expanded to what the document says they mean, prefixed with the
                   document and section it comes from (a fact read out of context
                   keeps its subject);
- ``shuffled``     each chunk's sentences in a seeded random order (the same facts
                   without the crutch of their neighbours);
- ``cloze``        "fill in the blank" over the sentence's fact span (date, amount,
                   code, name), answered with the whole sentence;
- ``fact_qa``      the same span asked as a question ("…, appointed on which date?"),
                   the form of the corpus exam's questions, answered with the sentence;
- ``about``        "What does the document say about X?" for the names, codes and
                   defined terms of the document, answered by the sentences that
                   mention X;
- ``plain_qa``     questions asked the way people ask them: one per table cell ("What
                   is the distance of Route K1 (…)?" → "The distance of Route K1 is 2.4
                   nautical miles."), and "What is X?" / "Who is X?" for sentences
                   "The X is Y" with a fact in Y (answered with the sentence). The
                   in-place questions of `fact_qa` ("Route K1: …; Distance what number
                   …?") are not how an exam or a user asks; a manual's specifications,
                   fares and limits are mostly tables and "the limit is …" sentences.

Text views (`raw_text`, `restatement`, `shuffled`) train on the whole row (`unmask`);
question views train on the answer only, as the exam asks for it. Question views answer
with a whole sentence, never a bare span: trained on bare spans (cloze → "OC 4.00"), the
student answered *every* question with a short document fact — "What is the capital of
Japan?" → "Kesterholm" — and lost half its general answers (bench/knowledge.py notes).
Nor the fact first and then its sentence ("28 November 2024. The Board approved …"): that
made the exam's short reference answers far likelier (reference NLL −48 % against −26 %
for sentence answers) but the student opened answers with a short and often wrong fact,
so fewer key facts came out right (0.136 against 0.187) and it kept 12 of 21 general
answers against 18 (README, run exp1).

Sentences in `held_out` (those the corpus exam asks about) get no question rows —
their text stays in the text views, which is what the exam measures: can the student
answer a question about a fact it read but was never quizzed on.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ktools.knowledge.facts import DocumentFacts, Sentence, best_span, document_facts, fact_spans
from ktools.knowledge.questions import copula_question, rule_question, short_title, table_questions
from ktools.training_rows import chat_messages

TEXT_VIEWS = ("raw_text", "restatement", "shuffled")
QUESTION_VIEWS = ("cloze", "fact_qa", "about", "plain_qa")
VIEWS = TEXT_VIEWS + QUESTION_VIEWS
# How many sentences one text-view row holds: long enough that the chat template's
# fixed tokens (system prompt, turn markers) are a small share of the row.
SENTENCES_PER_ROW = 6
MAX_ABOUT_SENTENCES = 3
# ~400 tokens of English: a raw-text row stays well inside step 05's default 512-token rows.
RAW_TEXT_CHARS = 1600


@dataclass(frozen=True)
class ViewRow:
    """One training conversation of a view, before chat formatting and token counting."""

    view: str
    prompt: str
    answer: str
    source: str
    chunk_id: str
    item_id: str
    unmask: bool
    key_fact: str | None = None

    def record(self, domain: str = "") -> dict[str, Any]:
        return {"messages": chat_messages(self.prompt, self.answer),
                "metadata": {"generator": self.view, "chunk_id": self.chunk_id, "source": self.source,
                             "item_id": self.item_id, "domain": domain, "document": None,
                             "key_fact": self.key_fact},
                "unmask": self.unmask, "token_length": None}


def split_text(text: str, max_chars: int = RAW_TEXT_CHARS) -> list[str]:
    """`text` in pieces of at most ~`max_chars` characters, cut between paragraphs (a paragraph
    longer than that stays whole): a chunk of step 02 may be longer than the rows step 05
    trains on, and a row cut off at the end teaches only its beginning."""
    pieces: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        if current and len(current) + len(paragraph) + 2 > max_chars:
            pieces.append(current)
            current = paragraph
        else:
            current = f"{current}\n\n{paragraph}" if current else paragraph
    if current.strip():
        pieces.append(current)
    return pieces


def sentence_key(source: str, text: str) -> str:
    """A stable id of one sentence of one source (survives re-chunking)."""
    return hashlib.sha1(f"{source}\n{normalise(text)}".encode()).hexdigest()[:16]


def normalise(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def restate(sentence: Sentence, facts: DocumentFacts) -> str:
    """The sentence standing alone: terms expanded once, and where it comes from."""
    text = sentence.text
    for term, meaning in facts.terms.items():
        # A defined multi-word term is used in any case ("a visitor berth"); a one-word term only as
        # written ("the Master", not "master key").
        flags = re.IGNORECASE if " " in term else 0
        pattern = re.compile(rf"\b(?:the\s+)?{re.escape(term)}\b(?!\s*\()", flags)
        match = pattern.search(text)
        if match and meaning.lower() not in text.lower():
            replacement = f"{match.group(0)} ({meaning})"
            text = text[: match.start()] + replacement + text[match.end():]
    where = short_title(facts.title)
    section = sentence.section
    if section and section != facts.title:
        return f"According to the {where}, section {section}: {text}"
    return f"According to the {where}: {text}"


def _blank(sentence: str, start: int, end: int) -> str:
    return sentence[:start] + "____" + sentence[end:]


def _chunk_of(sentence: Sentence, chunk_ids: Mapping[int, str]) -> str:
    return chunk_ids.get(sentence.index, "")


def build_view_rows(facts: DocumentFacts, chunks: Sequence[Mapping[str, Any]], *,
                    views: Iterable[str] = VIEWS, held_out: set[str] | None = None, seed: int = 42
                    ) -> dict[str, list[ViewRow]]:
    """Every view's rows for one source document (see the module docstring)."""
    views = [v for v in views if v in VIEWS]
    held_out = held_out or set()
    rng = random.Random(f"{seed}:{facts.source}")
    sentence_chunks = _assign_chunks(facts.sentences, chunks)
    out: dict[str, list[ViewRow]] = {v: [] for v in views}
    where = short_title(facts.title)

    if "raw_text" in out:
        for chunk in chunks:
            heading = " › ".join(chunk.get("heading_path") or []) or where
            for k, piece in enumerate(split_text(str(chunk["document"]))):
                out["raw_text"].append(ViewRow("raw_text", f"Recite this part of the {where}: {heading}", piece,
                                               facts.source, str(chunk["chunk_id"]),
                                               f"{chunk['chunk_id']}/raw_text/{k}", unmask=True))
    by_section: dict[tuple[str, ...], list[Sentence]] = defaultdict(list)
    for sentence in facts.sentences:
        by_section[sentence.heading_path].append(sentence)
    if "restatement" in out:
        for path, group in by_section.items():
            for k in range(0, len(group), SENTENCES_PER_ROW):
                part = group[k: k + SENTENCES_PER_ROW]
                section = path[-1] if path else where
                out["restatement"].append(ViewRow(
                    "restatement", f"What does the {where} say in section {section}?",
                    " ".join(restate(s, facts) for s in part), facts.source, _chunk_of(part[0], sentence_chunks),
                    f"{facts.source}/restatement/{part[0].index}", unmask=True))
    if "shuffled" in out:
        for path, group in by_section.items():
            if len(group) < 2:
                continue
            order = list(group)
            rng.shuffle(order)
            section = path[-1] if path else where
            for k in range(0, len(order), SENTENCES_PER_ROW):
                part = order[k: k + SENTENCES_PER_ROW]
                out["shuffled"].append(ViewRow(
                    "shuffled", f"List facts from the {where}, section {section}, in any order.",
                    " ".join(s.text for s in part), facts.source, _chunk_of(part[0], sentence_chunks),
                    f"{facts.source}/shuffled/{part[0].index}", unmask=True))
    quizzable = [s for s in facts.sentences if sentence_key(facts.source, s.text) not in held_out]
    if "cloze" in out or "fact_qa" in out:
        for sentence in quizzable:
            # One question per sentence, about its most specific fact: the answer is the whole
            # sentence, so its other facts are trained on in the same row (two rows per sentence
            # doubled the cost).
            span = best_span(sentence.text)
            chunk_id = _chunk_of(sentence, sentence_chunks)
            if span is not None:
                if "cloze" in out:
                    section = f", section {sentence.section}" if sentence.section != facts.title else ""
                    prompt = (f"Fill in the blank with the exact words of the {where}{section}: "
                              f"{_blank(sentence.text, span.start, span.end)}")
                    out["cloze"].append(ViewRow("cloze", prompt, sentence.text, facts.source, chunk_id,
                                                f"{facts.source}/cloze/{sentence.index}/{span.start}",
                                                unmask=False, key_fact=span.text))
                if "fact_qa" in out:
                    out["fact_qa"].append(ViewRow("fact_qa", rule_question(sentence, span, facts.title),
                                                  sentence.text, facts.source, chunk_id,
                                                  f"{facts.source}/fact_qa/{sentence.index}/{span.start}",
                                                  unmask=False, key_fact=span.text))
    if "plain_qa" in out:
        for sentence in quizzable:
            asked = copula_question(sentence, where)
            if asked is not None:
                out["plain_qa"].append(ViewRow(
                    "plain_qa", asked[0], sentence.text, facts.source, _chunk_of(sentence, sentence_chunks),
                    f"{facts.source}/plain_qa/{sentence.index}", unmask=False, key_fact=asked[1]))
            for header, question, answer, key_fact in table_questions(sentence, where):
                out["plain_qa"].append(ViewRow(
                    "plain_qa", question, answer, facts.source, _chunk_of(sentence, sentence_chunks),
                    f"{facts.source}/plain_qa/{sentence.index}/{normalise(header)}", unmask=False,
                    key_fact=key_fact))
    if "about" in out:
        mentions: dict[str, list[Sentence]] = defaultdict(list)
        subjects = {s.text for sent in quizzable for s in fact_spans(sent.text) if s.kind in {"name", "code"}}
        subjects |= {t for t in facts.terms if len(t) > 2}
        for sentence in quizzable:
            low = sentence.text.lower()
            for subject in subjects:
                if re.search(rf"\b{re.escape(subject.lower())}\b", low):
                    mentions[subject].append(sentence)
        for subject in sorted(mentions):
            group = mentions[subject][:MAX_ABOUT_SENTENCES]
            out["about"].append(ViewRow(
                "about", f"What does the {where} say about {subject}?",
                " ".join(restate(s, facts) for s in group), facts.source, _chunk_of(group[0], sentence_chunks),
                f"{facts.source}/about/{normalise(subject)}", unmask=False, key_fact=subject))
    return out


def _assign_chunks(sentences: Sequence[Sentence], chunks: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Sentence index → id of the first chunk whose text holds it (by normalised text)."""
    normalised = [(str(c["chunk_id"]), normalise(str(c.get("document", "")))) for c in chunks]
    found: dict[int, str] = {}
    for sentence in sentences:
        probe = normalise(sentence.text)[:80]
        for chunk_id, text in normalised:
            if probe and probe in text:
                found[sentence.index] = chunk_id
                break
    return found


def corpus_facts(chunks: Sequence[Mapping[str, Any]], documents: Mapping[str, str]) -> dict[str, DocumentFacts]:
    """Facts of every source that has chunks; `documents` maps source → its converted markdown."""
    sources = sorted({str(c.get("source", "")) for c in chunks})
    return {source: document_facts(documents[source], source) for source in sources if source in documents}
