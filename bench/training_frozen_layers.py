"""Benchmark: training step time with the lowest transformer blocks frozen (FREEZE_LOWER_LAYERS).

Every variant runs full optimizer steps (forward, backward, AdamW) of the embedded student on
the same batches of the training mix, with the embeddings frozen as the `learn` profile does.
Freezing the lowest N blocks means no gradient flows below block N: the backward pass, about
two thirds of a step, shrinks by N / blocks. Rounds alternate the order of the variants so that
load from other processes hits all alike. Baseline: every block learns (N = 0); ratio = the
baseline's seconds per token / the variant's (above 1: faster). The model's weights are
restored before each variant, so all of them train from the same start.

Data: the first rows of `output/step_04/training_mix/combined_cut_<N>x.jsonl` when it exists,
else the synthetic conversations of bench/training_batching.py.

    python bench/training_frozen_layers.py                  # N = 0, 10, 15, 20; 3 rounds x 2 steps
    python bench/training_frozen_layers.py --quick          # N = 0, 15; 1 round x 1 step
    python bench/training_frozen_layers.py --layers 0 8 16
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from ktools.models import load_causal_lm, load_tokenizer  # noqa: E402
from ktools.paths import OutputPaths  # noqa: E402
from ktools.train.batching import collate, make_batches  # noqa: E402
from ktools.train.data import load_mix, tokenize_mix  # noqa: E402
from ktools.train.freeze import decoder_layers, freeze_embeddings, freeze_lower_layers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_batching import synthetic_rows  # noqa: E402


def set_frozen(model, count: int) -> None:
    for weight in model.parameters():
        weight.requires_grad_(True)
    freeze_embeddings(model)
    freeze_lower_layers(model, count)


def timed_steps(model, examples, batches, pad_id) -> tuple[int, float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    tokens = 0
    start = time.perf_counter()
    for batch in batches:
        inputs = collate([examples[i] for i in batch.indices], batch.packed, pad_id)
        tokens += sum(len(examples[i]) for i in batch.indices)
        model(**inputs, use_cache=False).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return tokens, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layers", type=int, nargs="+", help="frozen block counts to compare (0 is always run)")
    parser.add_argument("--tokens-per-batch", type=int, default=2048)
    args = parser.parse_args()
    rounds, steps = (1, 1) if args.quick else (3, 2)
    counts = sorted({0, *(args.layers or ((15,) if args.quick else (10, 15, 20)))})

    tokenizer = load_tokenizer()
    mixes = sorted(OutputPaths.from_settings().training_mix_dir.glob("combined_cut_*x.jsonl"))
    rows = load_mix(mixes[0], limit=600) if mixes else synthetic_rows(300)
    examples = tokenize_mix(tokenizer, rows, 512)
    batches = make_batches(examples, "length", args.tokens_per_batch, seed=0)
    model = load_causal_lm()
    model.train()
    blocks = len(decoder_layers(model))
    print(f"data: {mixes[0] if mixes else 'synthetic'}: {len(examples)} examples in {len(batches)} batches of "
          f"<= {args.tokens_per_batch} tokens; {blocks} transformer blocks; torch threads {torch.get_num_threads()}")
    start_weights = {k: v.clone() for k, v in model.state_dict().items()}

    set_frozen(model, 0)
    timed_steps(model, examples, batches[:1], tokenizer.pad_token_id)  # warm-up (allocations, kernels)
    results: dict[int, list[tuple[int, float]]] = {n: [] for n in counts}
    for r in range(rounds):
        order = counts if r % 2 == 0 else list(reversed(counts))
        chosen = batches[1 + r * steps: 1 + (r + 1) * steps]
        for n in order:
            model.load_state_dict(start_weights)
            set_frozen(model, n)
            results[n].append(timed_steps(model, examples, chosen, tokenizer.pad_token_id))

    def seconds_per_token(runs):
        return sum(s for _, s in runs) / sum(t for t, _ in runs)

    base = seconds_per_token(results[0])
    for n in counts:
        per_round = [t / s for t, s in results[n]]
        print(f"frozen blocks {n:2d}/{blocks}: {1 / seconds_per_token(results[n]):7.1f} tokens/s "
              f"(rounds: {', '.join(f'{x:.0f}' for x in per_round)}; median {statistics.median(per_round):.0f})  "
              f"ratio vs none: {base / seconds_per_token(results[n]):.2f}x  "
              f"(backward-only estimate: {1 / (1 / 3 + 2 / 3 * (blocks - n) / blocks):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
