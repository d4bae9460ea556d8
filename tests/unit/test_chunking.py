"""Chunker properties on the embedded SmolLM2 tokenizer."""

from __future__ import annotations

import random

import pytest

from ktools.documents.chunking import chunk_markdown, parse_blocks, token_starts


@pytest.fixture(scope="module")
def tok():
    from ktools.models import load_tokenizer

    return load_tokenizer(None)


def _real_tokens(tok, text: str) -> int:
    return len(tok.backend_tokenizer.encode(text, add_special_tokens=False).ids)


def synthetic_markdown(seed: int = 0, sections: int = 12) -> str:
    rng = random.Random(seed)
    words = "ferry tide pier master crossing ticket vessel harbour route fare knots wind deck crew".split()
    parts = ["# Handbook of the Harbour\n\nIntroductory text for the handbook.\n"]
    for s in range(1, sections + 1):
        parts.append(f"## {s}. Section {s}\n")
        for _ in range(rng.randint(1, 4)):
            parts.append(" ".join(rng.choice(words) for _ in range(rng.randint(20, 120))).capitalize() + ".\n")
        if s % 3 == 0:
            parts.append("| Route | Fare | Minutes |\n|---|---|---|\n" +
                         "".join(f"| K{i} | {i * 3}.50 | {10 + i} |\n" for i in range(1, 15)))
        if s % 4 == 0:
            parts.append("- " + "\n- ".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(6)) + "\n")
        if s % 5 == 0:
            parts.append("```\n" + "\n".join(f"beacon --id {i} --mode fog" for i in range(12)) + "\n```\n")
    return "\n".join(parts)


def test_token_starts_match_whole_text_tokenization(tok):
    md = synthetic_markdown(1) * 3
    whole = tok.backend_tokenizer.encode(md, add_special_tokens=False)
    starts = token_starts(md, tok, piece_chars=500)
    assert len(starts) == len(whole.ids)
    assert list(starts) == [a for a, _ in whole.offsets]


@pytest.mark.parametrize("max_tokens, overlap, min_tokens", [(128, 0, 32), (200, 32, 50), (512, 64, 128)])
def test_chunk_properties(tok, max_tokens, overlap, min_tokens):
    md = synthetic_markdown(2)
    result = chunk_markdown(md, tok, source="doc.md", max_tokens=max_tokens, overlap_tokens=overlap,
                            min_tokens=min_tokens)
    chunks = result.chunks
    assert len(chunks) > 2
    for chunk in chunks:
        assert md[chunk.start:chunk.end] == chunk.document  # offsets point at the text
        assert chunk.n_tokens <= max_tokens
        assert _real_tokens(tok, chunk.document) <= max_tokens  # also when re-tokenized alone
    # every character covered, ranges in order
    assert chunks[0].start == 0 and chunks[-1].end == len(md)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start <= a.end and b.start > a.start
        shared = a.end - b.start
        if overlap:
            assert shared > 0
            shared_tokens = _real_tokens(tok, md[b.start:a.end])
            assert overlap - 2 <= shared_tokens <= overlap + 10
        else:
            assert shared == 0
    # no tiny tail
    last_new = chunks[-1].n_tokens - (overlap if len(chunks) > 1 else 0)
    assert last_new >= min_tokens - 10
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_deterministic(tok):
    md = synthetic_markdown(3)
    a = chunk_markdown(md, tok, source="d.md", max_tokens=150, overlap_tokens=20, min_tokens=30)
    b = chunk_markdown(md, tok, source="d.md", max_tokens=150, overlap_tokens=20, min_tokens=30)
    assert [c.as_row() for c in a.chunks] == [c.as_row() for c in b.chunks]


def test_breaks_prefer_headings_and_never_split_rows_or_code_lines(tok):
    md = synthetic_markdown(4)
    result = chunk_markdown(md, tok, source="d.md", max_tokens=300, overlap_tokens=0, min_tokens=50)
    line_starts = {0} | {i + 1 for i, ch in enumerate(md) if ch == "\n"}
    for chunk in result.chunks[1:]:
        assert chunk.start in line_starts  # every break is at a line start
    # breaks land before headings far more often than a random block boundary would
    blocks = parse_blocks(md)
    heading_share = sum(b.kind == "heading" for b in blocks) / len(blocks)
    heading_starts = sum(c.document.startswith("#") for c in result.chunks[1:])
    assert heading_starts / len(result.chunks[1:]) >= 3 * heading_share
    assert not result.warnings


def test_heading_path(tok):
    md = "# Top\n\nIntro.\n\n## A\n\ntext a\n\n### A.1\n\n" + "word " * 300 + "\n\n## B\n\ntext b\n"
    chunks = chunk_markdown(md, tok, source="d.md", max_tokens=100, overlap_tokens=0, min_tokens=10).chunks
    assert chunks[0].heading_path == ["Top"]
    assert any(c.heading_path == ["Top", "A", "A.1"] for c in chunks)
    assert chunks[-1].heading_path[-1] in ("A.1", "B")
    assert [b.kind for b in parse_blocks("# T\n\n| a |\n| b |\n\n- x\n  more\n- y\n")] == \
        ["heading", "table_row", "table_row", "list_item", "list_item"]


def test_oversized_block_is_split_by_tokens_with_a_warning(tok):
    md = "# Title\n\n" + ("longword " * 900) + "\n\n## Next\n\nshort end paragraph here.\n"
    result = chunk_markdown(md, tok, source="big.md", max_tokens=256, overlap_tokens=0, min_tokens=0)
    assert all(c.n_tokens <= 256 for c in result.chunks)
    assert any("big.md line 3" in w and "longer than max_tokens=256" in w for w in result.warnings)
    assert "".join(c.document for c in result.chunks) == md


def test_short_document_is_one_chunk_with_a_warning(tok):
    result = chunk_markdown("# Note\n\nTiny.\n", tok, source="tiny.md", max_tokens=512, overlap_tokens=64,
                            min_tokens=128)
    assert len(result.chunks) == 1 and result.chunks[0].document == "# Note\n\nTiny.\n"
    assert "tiny.md: only" in result.warnings[0]


def test_bad_parameters_are_clear(tok):
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk_markdown("x", tok, max_tokens=100, overlap_tokens=80)
    with pytest.raises(ValueError, match="min_tokens"):
        chunk_markdown("x", tok, max_tokens=100, overlap_tokens=0, min_tokens=100)


def test_sample_document_gives_10_to_20_chunks_with_defaults(tok, repo_root):
    from ktools.documents.step import DEFAULT_MAX_TOKENS, DEFAULT_MIN_TOKENS, DEFAULT_OVERLAP_TOKENS

    md = (repo_root / "assets" / "sample" / "sample_document.md").read_text(encoding="utf-8")
    chunks = chunk_markdown(md, tok, source="sample_document.md", max_tokens=DEFAULT_MAX_TOKENS,
                            overlap_tokens=DEFAULT_OVERLAP_TOKENS, min_tokens=DEFAULT_MIN_TOKENS).chunks
    assert 10 <= len(chunks) <= 20


def test_heading_before_a_huge_block_gives_no_tiny_or_repeated_chunks(tok):
    md = "# Notes\n\n" + "The pier opens at 06:00 every day. " * 80
    result = chunk_markdown(md, tok, source="notes.md", max_tokens=128, overlap_tokens=16, min_tokens=32)
    chunks = result.chunks
    assert chunks[0].document.startswith("# Notes\n\nThe pier")  # the heading stays with its text
    assert all(c.n_tokens >= 32 for c in chunks)
    assert all(b.start - a.start > 64 for a, b in zip(chunks, chunks[1:], strict=False))
    assert result.warnings == ["notes.md line 3: a paragraph longer than max_tokens=128; "
                               "split inside it at a token boundary"]


@pytest.mark.parametrize("seed", range(12))
def test_random_documents_keep_every_invariant(tok, seed):
    rng = random.Random(seed)
    words = ["tide", "pier", "06:40", "K2", "crew", "**bold**", "ferry", "x" * rng.randint(1, 40), "§4.2"]
    parts = []
    for _ in range(rng.randint(1, 40)):
        kind = rng.random()
        if kind < 0.15:
            parts.append("#" * rng.randint(1, 4) + " " + " ".join(rng.choices(words, k=rng.randint(1, 6))))
        elif kind < 0.3:
            parts.append("\n".join(f"| {rng.choice(words)} | {rng.randint(0, 99)} |" for _ in range(rng.randint(1, 30))))
        elif kind < 0.4:
            parts.append("```\n" + "\n".join(" ".join(rng.choices(words, k=5)) for _ in range(rng.randint(1, 20))) + "\n```")
        elif kind < 0.5:
            parts.append("\n".join("- " + " ".join(rng.choices(words, k=rng.randint(1, 30))) for _ in range(5)))
        else:
            parts.append(" ".join(rng.choices(words, k=rng.randint(1, 400))))
    md = ("\n" * rng.randint(1, 3)).join(parts) + ("\n" if rng.random() < 0.5 else "")
    max_tokens = rng.choice([32, 64, 100, 256])
    overlap = rng.randint(0, max_tokens // 2)
    min_tokens = rng.randint(0, max_tokens - 1)
    chunks = chunk_markdown(md, tok, source="r.md", max_tokens=max_tokens, overlap_tokens=overlap,
                            min_tokens=min_tokens).chunks
    assert chunks[0].start == 0 and chunks[-1].end == len(md)
    for chunk in chunks:
        assert chunk.document and md[chunk.start:chunk.end] == chunk.document
        assert 0 < chunk.n_tokens <= max_tokens
        assert _real_tokens(tok, chunk.document) <= max_tokens
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.start < b.start <= a.end
