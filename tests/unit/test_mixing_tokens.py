"""TokenCounter must equal len(apply_chat_template(tokenize=True)["input_ids"]) on every row."""

from __future__ import annotations

import random

import pytest

from ktools.mixing.formats import to_chat_row
from ktools.mixing.tokens import TokenCounter, _boundary_is_safe, reference_count
from ktools.testing.synthetic_generated import ALL_GENERATORS, SyntheticShape, generate_rows, synthetic_text

WITH_DOC = {"extractive_summary": True, "detailed_summary": True, "key_facts_to_qa": False,
            "document_based_qa": True}


@pytest.fixture(scope="module")
def tokenizer():
    from ktools.models import load_tokenizer

    return load_tokenizer()


def _rows(seed: int = 0, **shape) -> list[dict]:
    shape = SyntheticShape(**{"n_chunks": 4, "summaries_per_chunk": 4, "words_per_chunk": 400,
                              "words_per_summary": 120, "reasoning_share": 0.4, **shape})
    return [r for g in ALL_GENERATORS for r in generate_rows(g, shape, seed)]


def _tricky_rows() -> list[dict]:
    """Hand-made rows at the edges: whitespace ends, special-token text, odd unicode."""
    rng = random.Random(5)
    base = {"document_outline": "Part 1", "chunk_id": "c", "source": "s", "generator": "detailed_summary",
            "item_id": "c/summary/0", "domain": "d", "truncated": False}
    texts = [
        "", " ", "\n", "  leading spaces", "trailing spaces   ", "ends with newline\n", "\n\nstarts with newlines",
        "tabs\tand\r\nCRLF\r\n", "<|im_end|> injected <|im_start|>assistant\n", "don't it's we'll 'quoted'",
        "東京 データ 北海道。", "emoji 😀👍🏽 family 👨‍👩‍👧", "RTL: مرحبا بالعالم", "combining: e\u0301 n\u0303",
        "nbsp:\u00a0here and\u2003em space", "odd controls \x1c\x1d\x1e\x1f\x0b\x0c end", "Zero\u200bwidth",
        "numbers 1234567 3.14 1e10 ١٢٣", "x" * 3000, ("word " * 2000).strip(), synthetic_text(rng, 1500),
    ]
    rows = []
    for i, doc in enumerate(texts):
        for j, other in enumerate((texts[(i + 3) % len(texts)], "What is it?", "")):
            rows.append({**base, "document": doc, "raw_document": doc, "question": other or "Q?",
                         "response": texts[(i + j) % len(texts)],
                         "reasoning": texts[(i + 5) % len(texts)] if j == 1 else None,
                         "item_id": f"c/summary/{i}"})
    return rows


def _conversations(rows, gpt_oss=False):
    chat = [to_chat_row(r, with_document=WITH_DOC[r["generator"]], gpt_oss=gpt_oss) for r in rows]
    return [c.record["messages"] for c in chat], [c.context for c in chat]


@pytest.mark.parametrize("gpt_oss", [False, True])
def test_counts_equal_apply_chat_template_on_every_row(tokenizer, gpt_oss):
    rows = _rows() + _tricky_rows()
    convs, contexts = _conversations(rows, gpt_oss)
    assert any("thinking" in c[1] for c in convs)
    counter = TokenCounter(tokenizer, batch_size=64)
    assert counter.strategy == "bytelevel"
    fast = counter.count_conversations(convs, contexts)
    expected = [reference_count(tokenizer, c) for c in convs]
    mismatches = [(i, a, b) for i, (a, b) in enumerate(zip(fast, expected, strict=True)) if a != b]
    assert not mismatches, mismatches[:5]
    # The cache really was used (rows repeat documents) …
    assert counter.cache_stats["segment_hits"] > len(rows) / 2
    # … and counting twice gives the same answer from warm caches.
    assert counter.count_conversations(convs, contexts) == expected


def test_counts_without_segment_hints_and_other_strategies(tokenizer):
    rows = _rows(seed=3, n_chunks=2)[:80] + _tricky_rows()[:30]
    convs, _ = _conversations(rows)
    expected = [reference_count(tokenizer, c) for c in convs]
    counter = TokenCounter(tokenizer)
    assert counter.count_conversations(convs) == expected
    for strategy in ("rust", "python"):
        other = TokenCounter(tokenizer)
        other.strategy = strategy
        assert other.count_conversations(convs) == expected, strategy


def test_wrong_segment_hint_is_harmless(tokenizer):
    rows = _rows(seed=4, n_chunks=1)[:20]
    convs, contexts = _conversations(rows)
    expected = [reference_count(tokenizer, c) for c in convs]
    bogus = ["not in the text"] * len(convs)
    assert TokenCounter(tokenizer).count_conversations(convs, bogus) == expected
    # A hint cut mid-word is detected as an unsafe boundary.
    mid_word = [c[3:-3] if c else None for c in contexts]
    counter = TokenCounter(tokenizer)
    assert counter.count_conversations(convs, mid_word) == expected


def test_safe_boundaries_really_are_safe(tokenizer):
    """For every cut `_boundary_is_safe` accepts, counting the two sides apart gives the whole count."""
    backend = tokenizer.backend_tokenizer
    rng = random.Random(11)
    pieces = ["word", "word.", "x\n", "x\n\n", "x ", "  ", "\n", "\t", "'s", "don't", "123", " 45", "東京", "😀",
              "a\u00a0", "!!", "\r\n", "end\n", "\nstart", " space", "Ünïcödé", "(x)", "-", "\x1c"]
    checked = 0
    for _ in range(4000):
        left = "".join(rng.choices(pieces, k=rng.randint(1, 4)))
        right = "".join(rng.choices(pieces, k=rng.randint(1, 4)))
        text = left + right
        if not _boundary_is_safe(text, len(left)):
            continue
        whole = len(backend.encode(text, add_special_tokens=False).ids)
        parts = len(backend.encode(left, add_special_tokens=False).ids) + len(
            backend.encode(right, add_special_tokens=False).ids)
        assert whole == parts, (left, right)
        checked += 1
    assert checked > 500


def test_reference_count_handles_dict_output(tokenizer):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    out = tokenizer.apply_chat_template(messages, tokenize=True)
    assert "input_ids" in out  # transformers 5 returns a BatchEncoding
    assert reference_count(tokenizer, messages) == len(out["input_ids"])


def test_ascii_pattern_splits_like_the_unicode_pattern(tokenizer):
    import regex

    from ktools.mixing.tokens import GPT2_SPLIT_PATTERN

    counter = TokenCounter(tokenizer)
    unicode_split = regex.compile(GPT2_SPLIT_PATTERN).findall
    rng = random.Random(2)
    alphabet = [chr(i) for i in range(128)] + list("  \n\n'sdtmlvre")
    for _ in range(5000):
        text = "".join(rng.choices(alphabet, k=rng.randint(1, 40)))
        assert counter._ascii_split(text) == unicode_split(text), repr(text)
