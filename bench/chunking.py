"""Benchmark: structure-aware token chunking of a synthetic ~10 MB markdown corpus.

    python bench/chunking.py [--mb 10] [--baseline-kb 200] [--max-tokens 768]

Prints the time and throughput of `ktools.documents.chunking.chunk_markdown` (one
batched tokenization with offsets + arithmetic splitting) on the whole corpus, and
of a naive baseline measured in the same run on a slice: the usual loop that adds
blocks to a chunk and re-tokenizes the candidate chunk after every addition. The
baseline's cost grows linearly with the corpus size (per chunk it tokenizes
O(blocks × chunk) text), so it is extrapolated linearly to the full corpus; both
the measured and the extrapolated figures are printed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def synthetic_corpus(megabytes: float, seed: int = 0) -> list[str]:
    """Documents of ~100 KB: headings, paragraphs, lists, tables, code; pseudo-words + numbers."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "ren", "mar", "ti", "vos", "eth", "qua", "sil", "dor", "an", "be", "cru", "fen"]
    vocab = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(6000)]

    def sentence() -> str:
        words = [rng.choice(vocab) if rng.random() > 0.08 else str(rng.randint(1, 5000))
                 for _ in range(rng.randint(8, 28))]
        return " ".join(words).capitalize() + "."

    docs, size, target = [], 0, int(megabytes * 1_000_000)
    while size < target:
        parts = [f"# Document {len(docs) + 1}\n"]
        while sum(len(p) for p in parts) < 100_000:
            parts.append(f"## {rng.choice(vocab).title()} {rng.randint(1, 99)}\n")
            for _ in range(rng.randint(2, 6)):
                parts.append(" ".join(sentence() for _ in range(rng.randint(2, 7))) + "\n")
            roll = rng.random()
            if roll < 0.2:
                parts.append("\n".join(f"- {sentence()}" for _ in range(rng.randint(3, 8))) + "\n")
            elif roll < 0.35:
                parts.append("| a | b | c |\n|---|---|---|\n" + "".join(
                    f"| {rng.choice(vocab)} | {rng.randint(1, 999)} | {rng.choice(vocab)} |\n" for _ in range(10)))
            elif roll < 0.45:
                parts.append("```\n" + "\n".join(f"run --{rng.choice(vocab)} {rng.randint(1, 9)}"
                                                 for _ in range(8)) + "\n```\n")
        doc = "\n".join(parts)
        docs.append(doc)
        size += len(doc.encode())
    return docs


def naive_chunks(markdown: str, tokenizer, max_tokens: int) -> int:
    """Baseline: add block by block, re-tokenizing the candidate chunk each time."""
    from ktools.documents.chunking import parse_blocks

    count, current = 0, ""
    for block in parse_blocks(markdown):
        text = markdown[block.start:block.end]
        candidate = current + text
        if current and len(tokenizer.encode(candidate, add_special_tokens=False)) > max_tokens:
            count += 1
            current = text
        else:
            current = candidate
    return count + (1 if current else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0, help="corpus size in MB")
    parser.add_argument("--baseline-kb", type=float, default=200.0, help="slice measured with the baseline")
    parser.add_argument("--max-tokens", type=int, default=768)
    parser.add_argument("--overlap-tokens", type=int, default=64)
    parser.add_argument("--min-tokens", type=int, default=128)
    parser.add_argument("--tokenizer", default=None, help="default: the embedded SmolLM2 tokenizer")
    args = parser.parse_args(argv)

    from ktools.documents.chunking import chunk_markdown
    from ktools.models import load_tokenizer

    tokenizer = load_tokenizer(args.tokenizer)
    corpus = synthetic_corpus(args.mb)
    total_mb = sum(len(d.encode()) for d in corpus) / 1e6
    print(f"corpus: {len(corpus)} documents, {total_mb:.2f} MB; max_tokens={args.max_tokens} "
          f"overlap={args.overlap_tokens} min={args.min_tokens}; cpus={os.cpu_count()}")

    start, cpu_start = time.perf_counter(), time.process_time()
    n_chunks = n_tokens = 0
    for index, doc in enumerate(corpus):
        result = chunk_markdown(doc, tokenizer, source=f"doc{index}.md", max_tokens=args.max_tokens,
                                overlap_tokens=args.overlap_tokens, min_tokens=args.min_tokens)
        n_chunks += len(result.chunks)
        n_tokens += result.n_tokens
    ours, ours_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"ktools chunk_markdown: {ours:.2f} s wall ({ours_cpu:.2f} s CPU) for {total_mb:.2f} MB = "
          f"{total_mb / ours:.2f} MB/s ({n_chunks} chunks, {n_tokens / ours / 1e3:.0f}k tokens/s)")

    slice_text, slice_bytes = [], 0
    for doc in corpus:
        if slice_bytes >= args.baseline_kb * 1000:
            break
        piece = doc[: int(args.baseline_kb * 1000 - slice_bytes)]
        slice_text.append(piece)
        slice_bytes += len(piece.encode())
    start, cpu_start = time.perf_counter(), time.process_time()
    for piece in slice_text:
        naive_chunks(piece, tokenizer, args.max_tokens)
    naive, naive_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    slice_mb = slice_bytes / 1e6
    naive_full = naive * total_mb / slice_mb
    naive_full_cpu = naive_cpu * total_mb / slice_mb
    print(f"naive baseline (re-tokenize each candidate chunk): {naive:.2f} s wall ({naive_cpu:.2f} s CPU) for "
          f"{slice_mb:.2f} MB = {slice_mb / naive:.3f} MB/s → extrapolated to {total_mb:.2f} MB: "
          f"{naive_full:.0f} s wall ({naive_full_cpu:.0f} s CPU)")
    print(f"speed-up: {naive_full / ours:.1f}x wall, {naive_full_cpu / max(ours_cpu, 1e-9):.1f}x CPU "
          "(CPU time is the fairer figure on a shared machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
