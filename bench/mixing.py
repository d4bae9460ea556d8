"""Benchmark: exact chat-template token counting of a training mix, fast path vs row by row.

Data: synthetic step-03 `detailed_summary` output, 200 chunks (~1,500 words each) x
50 summaries x 3 Q&A = 30,000 rows, mixed at cut 50 with the summary in context.

- baseline: format each row, then `len(tokenizer.apply_chat_template(messages,
  tokenize=True)["input_ids"])` row by row (what the public example does, and the
  definition of the count);
- ktools: the same formatting, then `TokenCounter.count_conversations` (batched
  rendering, pre-token counting, cached document segments), starting from empty caches.

Both run interleaved in slices (a shared machine's load hits both alike); the script
prints wall-clock rows/s and CPU time of each and the ratios.

Counts must be identical on every row; the script exits 1 otherwise.

    python bench/mixing.py            # 30,000 rows (several minutes: the baseline is slow)
    python bench/mixing.py --quick    # 20 chunks: 3,000 rows
    python bench/mixing.py --ascii    # English-like text without non-ASCII words
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ktools.mixing.cuts import select_cut  # noqa: E402
from ktools.mixing.formats import to_chat_row  # noqa: E402
from ktools.mixing.load import load_generated  # noqa: E402
from ktools.mixing.tokens import TokenCounter, reference_count  # noqa: E402
from ktools.models import load_tokenizer  # noqa: E402
from ktools.paths import OutputPaths  # noqa: E402
from ktools.testing.synthetic_generated import SyntheticShape, write_synthetic_step03  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 chunks instead of 200")
    parser.add_argument("--chunks", type=int, default=None)
    parser.add_argument("--summaries", type=int, default=50)
    parser.add_argument("--qa", type=int, default=3)
    parser.add_argument("--chunk-words", type=int, default=1500)
    parser.add_argument("--summary-words", type=int, default=300)
    parser.add_argument("--tokenizer", default=None, help="tokenizer name/path (default: embedded SmolLM2)")
    parser.add_argument("--ascii", action="store_true",
                        help="English-like ASCII text (default: 10%% accented/CJK/emoji words)")
    parser.add_argument("--slices", type=int, default=10, help="interleave baseline and ktools in this many slices")
    args = parser.parse_args()
    n_chunks = args.chunks or (20 if args.quick else 200)

    shape = SyntheticShape(n_chunks=n_chunks, summaries_per_chunk=args.summaries, qa_per_summary=args.qa,
                           words_per_chunk=args.chunk_words, words_per_summary=args.summary_words,
                           reasoning_share=0.2, ascii_only=args.ascii)
    with tempfile.TemporaryDirectory(prefix="ktools-bench-mixing-") as tmp:
        t0 = time.perf_counter()
        write_synthetic_step03(Path(tmp), shape, seed=7, generators=("detailed_summary",))
        rows = load_generated(OutputPaths(Path(tmp)), generators=("detailed_summary",)).datasets["detailed_summary"]
        print(f"data: {len(rows)} generated rows, {n_chunks} chunks x {args.summaries} summaries x {args.qa} Q&A "
              f"({time.perf_counter() - t0:.1f} s to make and load)")
    mix = select_cut(rows, args.summaries, args.qa, seed=42)
    tokenizer = load_tokenizer(args.tokenizer)
    print(f"mix: cut {args.summaries}x, {len(mix)} rows, document in context; cores: {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")

    # The two run interleaved, slice by slice, so that load from other processes on this
    # shared machine hits both alike; wall and CPU time are summed per method. The fast
    # counter is created once (timed) and keeps its caches across slices, as in a real run.
    baseline: list[int] = []
    fast: list[int] = []
    base_wall = base_cpu = fast_wall = fast_cpu = 0.0
    counter = None
    step = max(1, len(mix) // args.slices)
    for start in range(0, len(mix), step):
        part = mix[start:start + step]
        w, c = time.perf_counter(), time.process_time()
        for row in part:
            messages = to_chat_row(row, with_document=True).record["messages"]
            baseline.append(reference_count(tokenizer, messages))
        base_wall += time.perf_counter() - w
        base_cpu += time.process_time() - c

        w, c = time.perf_counter(), time.process_time()
        if counter is None:
            counter = TokenCounter(tokenizer)
        chat_rows = [to_chat_row(row, with_document=True) for row in part]
        fast.extend(counter.count_conversations([r.record["messages"] for r in chat_rows],
                                                [r.context for r in chat_rows]))
        fast_wall += time.perf_counter() - w
        fast_cpu += time.process_time() - c

    mismatches = [i for i, (a, b) in enumerate(zip(baseline, fast, strict=True)) if a != b]
    n = len(mix)
    print(f"tokens: {sum(baseline):,} total, {sum(baseline) / n:.0f} per row")
    print(f"baseline (apply_chat_template row by row): {base_wall:8.2f} s wall {n / base_wall:8.0f} rows/s"
          f"   CPU {base_cpu:8.2f} s")
    print(f"ktools TokenCounter ({counter.strategy}):        {fast_wall:8.2f} s wall {n / fast_wall:8.0f} rows/s"
          f"   CPU {fast_cpu:8.2f} s")
    print(f"ratio: {base_wall / fast_wall:.1f}x wall, {base_cpu / fast_cpu:.1f}x CPU  (target >= 5x, aim 10x)")
    print(f"counts identical on all {n} rows: {not mismatches}   cache: {counter.cache_stats}")
    if mismatches:
        i = mismatches[0]
        print(f"MISMATCH on {len(mismatches)} rows, first: row {i}: baseline {baseline[i]} vs fast {fast[i]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
