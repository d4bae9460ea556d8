"""Benchmark: training throughput of packing vs length grouping (tokens/s of real tokens).

Both strategies get the same examples and the same token budget per batch; each
runs full optimizer steps (forward, backward, AdamW) of the embedded student on the
CPU (or the GPU when present). Rounds alternate the order so that load from other
processes hits all alike. Baseline: length grouping (padding, the usual
`group_by_length`); ratio = packing / length. A third variant measures packing with
bf16 autocast (CPUs with AVX512-BF16/AMX may gain; the result decides the default).

Data: the first rows of `output/step_04/training_mix/combined_cut_<N>x.jsonl` when it
exists, else synthetic conversations whose lengths follow a mix (many short Q&A,
some long summaries with the document in context).

    python bench/training_batching.py            # 3 rounds x 3 steps each
    python bench/training_batching.py --quick    # 1 round x 2 steps, shorter budget
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from ktools.models import load_causal_lm, load_tokenizer  # noqa: E402
from ktools.paths import OutputPaths  # noqa: E402
from ktools.train.batching import collate, make_batches  # noqa: E402
from ktools.train.data import load_mix, tokenize_mix  # noqa: E402

WORDS = ("ferry estuary authority passenger vehicle ticket timetable pier harbour regulation fare crossing "
         "operator safety weather suspension refund season concession").split()


def synthetic_rows(n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        long = i % 3 == 0  # a third carry a document in context
        context = " ".join(rng.choices(WORDS, k=rng.randint(150, 330))) if long else ""
        question = " ".join(rng.choices(WORDS, k=rng.randint(8, 20))) + "?"
        answer = " ".join(rng.choices(WORDS, k=rng.randint(10, 60 if not long else 120))) + "."
        rows.append(([{"role": "user", "content": (context + "\n\n" + question).strip()},
                      {"role": "assistant", "content": answer}], True))
    return rows


def run_steps(model, optimizer, examples, batches, steps, pad_id, bf16=False) -> tuple[int, int, float]:
    real = padded = 0
    start = time.perf_counter()
    for batch in batches[:steps]:
        inputs = collate([examples[i] for i in batch.indices], batch.packed, pad_id)
        real += sum(len(examples[i]) for i in batch.indices)
        padded += inputs["input_ids"].numel()
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**{k: v.to(model.device) for k, v in inputs.items()}, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return real, padded, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tokens-per-batch", type=int, default=2048)
    parser.add_argument("--max-seq-len", type=int, default=512)
    args = parser.parse_args()
    rounds, steps = (1, 2) if args.quick else (3, 3)
    budget = 1024 if args.quick else args.tokens_per_batch

    tokenizer = load_tokenizer()
    mixes = sorted(OutputPaths.from_settings().training_mix_dir.glob("combined_cut_*x.jsonl"))
    rows = load_mix(mixes[0], limit=400) if mixes else synthetic_rows(300)
    source = str(mixes[0]) if mixes else "synthetic"
    examples = tokenize_mix(tokenizer, rows, args.max_seq_len)
    lengths = [len(e) for e in examples]
    print(f"data: {source}: {len(examples)} examples, median {statistics.median(lengths):.0f} tokens, "
          f"max {max(lengths)}; budget {budget} tokens per batch; torch threads {torch.get_num_threads()}")

    model = load_causal_lm()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)  # tiny lr: keep the model ~unchanged
    results: dict[str, list[tuple[int, int, float]]] = {"length": [], "packing": [], "packing+bf16": []}
    plans = {s: make_batches(examples, s.split("+")[0], budget, seed=0) for s in results}
    for s, plan in plans.items():
        print(f"{s}: {len(plan)} batches per epoch")
    run_steps(model, optimizer, examples, plans["packing"], 1, tokenizer.pad_token_id)  # warm-up
    for r in range(rounds):
        order = list(results) if r % 2 == 0 else list(reversed(results))
        for strategy in order:
            plan = plans[strategy][r * steps:] or plans[strategy]
            results[strategy].append(run_steps(model, optimizer, examples, plan, steps, tokenizer.pad_token_id,
                                               bf16=strategy.endswith("bf16")))

    summary = {}
    for strategy, runs in results.items():
        real = sum(r[0] for r in runs)
        padded = sum(r[1] for r in runs)
        seconds = sum(r[2] for r in runs)
        epoch_seconds = sum(lengths) / (real / seconds)
        summary[strategy] = real / seconds
        print(f"{strategy:8s} {real / seconds:8.1f} real tokens/s  padding {1 - real / padded:5.1%}  "
              f"steps/epoch {len(plans[strategy])}  est. epoch {epoch_seconds / 60:5.1f} min")
    print(f"ratio packing/length (real tokens/s): {summary['packing'] / summary['length']:.2f}x")
    print(f"ratio packing+bf16 autocast / packing fp32: {summary['packing+bf16'] / summary['packing']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
