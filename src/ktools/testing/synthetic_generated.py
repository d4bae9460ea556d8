"""Synthetic step-03 output (`output/step_03/<generator>/gen.jsonl`) for tests and benchmarks.

The rows carry exactly the fields of the step-03 data contract (DESIGN.md and the
generation issue): `question`, `response`, `document`, `raw_document`,
`document_outline`, `domain`, `chunk_id`, `source`, `generator`, `item_id`,
`reasoning`, `truncated`, the judge fields, and `key_fact` for key_facts_to_qa.

The text is random but realistic for a tokenizer: paragraphs, markdown headings and
bullets, numbers, punctuation, non-ASCII words (accents, CJK, emoji), trailing
whitespace now and then. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ktools.io import write_jsonl

SUMMARY_GENERATORS = ("extractive_summary", "detailed_summary")
ALL_GENERATORS = ("extractive_summary", "detailed_summary", "key_facts_to_qa", "document_based_qa")

_WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will more can out who about "
    "regulation budget committee member annual report section clause officer procedure vote quorum meeting "
    "treasurer secretary amendment deadline council reserve fund audit fee penalty licence permit inspection "
    "harbour lighthouse ferry cargo tariff pilot vessel tonnage berth dredging survey chart beacon signal "
    "café naïve Zürich façade résumé coöperate São Paulo Ærø Łódź Straße 東京 北海道 データ 😀 ✓ — – … "
    "don't it's we're they've I'm you'll she'd"
).split()
_ASCII_WORDS = tuple(w for w in _WORDS if w.isascii())
_PUNCT = (".", ".", ".", ",", ";", ":", "!", "?")


def _sentence(rng: random.Random, n_words: int, vocabulary: tuple[str, ...] = tuple(_WORDS)) -> str:
    words = rng.choices(vocabulary, k=n_words)
    words[0] = words[0][:1].upper() + words[0][1:]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), str(rng.randint(1, 250_000)))
    if rng.random() < 0.2:
        words.insert(rng.randrange(len(words)), f"({rng.choice(vocabulary)})")
    return " ".join(words) + rng.choice(_PUNCT)


def synthetic_text(rng: random.Random, n_words: int, *, markdown: bool = True, ascii_only: bool = False) -> str:
    """About `n_words` words in paragraphs, sometimes with headings and bullet lists."""
    vocabulary = _ASCII_WORDS if ascii_only else tuple(_WORDS)
    parts: list[str] = []
    written = 0
    while written < n_words:
        kind = rng.random()
        if markdown and kind < 0.08:
            parts.append("## " + " ".join(rng.choices(vocabulary, k=rng.randint(2, 5))).title())
            written += 3
        elif markdown and kind < 0.18:
            bullets = [f"- {_sentence(rng, rng.randint(4, 12), vocabulary)}" for _ in range(rng.randint(2, 4))]
            parts.append("\n".join(bullets))
            written += 8 * len(bullets)
        else:
            sentences = [_sentence(rng, rng.randint(6, 22), vocabulary) for _ in range(rng.randint(2, 6))]
            parts.append(" ".join(sentences))
            written += sum(len(s.split()) for s in sentences)
    text = "\n\n".join(parts)
    if rng.random() < 0.05:
        text += rng.choice(("\n", " ", "  \n"))  # real model output is not always stripped
    return text


@dataclass(frozen=True)
class SyntheticShape:
    """How much synthetic data to make."""

    n_chunks: int = 6
    summaries_per_chunk: int = 5
    qa_per_summary: int = 3
    facts_per_chunk: int = 4
    qa_per_fact: int = 2
    doc_qa_per_chunk: int = 5
    words_per_chunk: int = 300
    words_per_summary: int = 80
    reasoning_share: float = 0.2  # rows with a `reasoning` string
    n_sources: int = 2
    ascii_only: bool = False  # English-like text without accents, CJK or emoji


def _judge(rng: random.Random) -> dict[str, Any]:
    return {
        "judge_question": rng.choice((None, 1, 2, 3)),
        "judge_faithfulness": rng.choice((None, 1, 2, 3)),
        "judge_relevancy": rng.choice((None, 1, 2, 3)),
    }


def _question(rng: random.Random, ascii_only: bool = False) -> str:
    vocabulary = _ASCII_WORDS if ascii_only else tuple(_WORDS)
    return "What " + " ".join(rng.choices(vocabulary, k=rng.randint(5, 14))) + "?"


def _answer(rng: random.Random, ascii_only: bool = False) -> str:
    return synthetic_text(rng, rng.randint(15, 70), markdown=rng.random() < 0.2, ascii_only=ascii_only)


def generate_rows(
    generator: str, shape: SyntheticShape = SyntheticShape(), seed: int = 0
) -> list[dict[str, Any]]:
    """Rows of one generator's `gen.jsonl`, shaped like step 03's output."""
    if generator not in ALL_GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; expected one of {ALL_GENERATORS}")
    rows: list[dict[str, Any]] = []
    ascii_only = shape.ascii_only
    vocabulary = _ASCII_WORDS if ascii_only else tuple(_WORDS)
    # Chunks depend only on the seed, so all generators share the same chunks.
    chunk_rng = random.Random(f"chunks:{seed}")
    chunks = []
    for c in range(shape.n_chunks):
        source = f"doc_{c % shape.n_sources}.md"
        chunk_id = f"{source}#{c:04d}"
        dash = "-" if ascii_only else "—"
        outline = f"Harbour Regulations {dash} Part {c + 1}: " + " ".join(chunk_rng.choices(vocabulary, k=3)).title()
        chunks.append((chunk_id, source, outline,
                       synthetic_text(chunk_rng, shape.words_per_chunk, ascii_only=ascii_only)))

    rng = random.Random(f"{generator}:{seed}")

    def base(chunk_id: str, source: str, outline: str, chunk: str, document: str, item_id: str) -> dict[str, Any]:
        reasoning = synthetic_text(rng, rng.randint(10, 40), markdown=False, ascii_only=ascii_only) \
            if rng.random() < shape.reasoning_share else None
        return {
            "question": _question(rng, ascii_only),
            "response": _answer(rng, ascii_only),
            "document": document,
            "raw_document": chunk,
            "document_outline": outline,
            "domain": "maritime regulation",
            "chunk_id": chunk_id,
            "source": source,
            "generator": generator,
            "item_id": item_id,
            "reasoning": reasoning,
            "truncated": False,
            **_judge(rng),
        }

    for chunk_id, source, outline, chunk in chunks:
        if generator in SUMMARY_GENERATORS:
            for s in range(shape.summaries_per_chunk):
                summary = synthetic_text(rng, shape.words_per_summary, ascii_only=ascii_only)
                for _ in range(shape.qa_per_summary):
                    rows.append(base(chunk_id, source, outline, chunk, summary, f"{chunk_id}/summary/{s}"))
        elif generator == "key_facts_to_qa":
            facts = [_sentence(rng, rng.randint(6, 16), vocabulary) for _ in range(shape.facts_per_chunk)]
            fact_list = "\n".join(f"{i + 1}. {f}" for i, f in enumerate(facts))
            for f, fact in enumerate(facts):
                for _ in range(shape.qa_per_fact):
                    row = base(chunk_id, source, outline, chunk, fact_list, f"{chunk_id}/fact/{f}")
                    row["key_fact"] = fact
                    rows.append(row)
        else:  # document_based_qa
            for _ in range(shape.doc_qa_per_chunk):
                rows.append(base(chunk_id, source, outline, chunk, chunk, f"{chunk_id}/document"))
    return rows


def write_synthetic_step03(
    output_dir: str | Path,
    shape: SyntheticShape = SyntheticShape(),
    seed: int = 0,
    generators: Iterable[str] = ALL_GENERATORS,
) -> dict[str, Path]:
    """Write `<output_dir>/step_03/<generator>/gen.jsonl` for each generator; return the paths."""
    written: dict[str, Path] = {}
    for generator in generators:
        path = Path(output_dir) / "step_03" / generator / "gen.jsonl"
        write_jsonl(path, generate_rows(generator, shape, seed))
        written[generator] = path
    return written
