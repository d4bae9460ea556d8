"""Benchmark: is the tuned student's "forgetting" more than any weight change of its size does?

Step 06 measures forgetting on `assets/general_questions.jsonl`: questions picked because
the base student answers them right (greedy, key fact in the answer). On a set picked that
way, *any* change to the weights loses some answers, learnt or not: the base's right answers
include lucky ones, and a 135M model's greedy path flips on small perturbations. This
benchmark gives that floor. For a fine-tuned model it scores, on the general set (and with
`--exam` on the sample exam):

- ``base``: the base student;
- ``tuned``: the fine-tuned model (`--tuned`, e.g. `output/fine_tuned_model/<model>`);
- ``random xS``: the base plus a random direction, per weight tensor of the same norm as the
  tuned model's change of that tensor times S (`--scales`), one per `--seeds` seed;
- ``tuned, largest F``: with `--largest F,...`, the base plus only the largest fraction F of
  each tensor's change entries (by magnitude): where in the change the facts and the general
  answers go.

A random direction teaches nothing, so if it loses as many general answers as the tuned
model, what the general set measures is the size of the change, not what was learnt.

    python bench/forgetting_null.py --tuned /tmp/exp11/fine_tuned_model/SmolLM2-135M-Instruct
    python bench/forgetting_null.py --tuned DIR --scales 1,0.5,0.25 --seeds 0,1 --exam
    python bench/forgetting_null.py --tuned DIR --scales 1 --largest 0.3,0.1 --exam

Each row costs ~1 minute on 2 idle cores (~2 with `--exam`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ktools.config import EMBEDDED_MODEL_NAME, find_repo_root  # noqa: E402
from ktools.evaluate.answering import generate_answers  # noqa: E402
from ktools.evaluate.evalset import EvalItem, load_eval_set  # noqa: E402
from ktools.evaluate.metrics import key_fact_hit_rate  # noqa: E402
from ktools.evaluate.stats import paired_bootstrap_ratio  # noqa: E402


def hits(model: object, tokenizer: object, items: list[EvalItem], max_new_tokens: int) -> list[float]:
    answers = generate_answers(model, tokenizer, [i.question for i in items], max_new_tokens=max_new_tokens)
    return [key_fact_hit_rate(a, i.key_facts) or 0.0 for a, i in zip(answers, items, strict=True)]


def largest_entries(delta: object, fraction: float) -> object:
    """`delta` with all but its `fraction` largest-magnitude entries set to 0 (the selection
    step 05's momentum filter uses; tensors above its SAMPLE size are thresholded from a sample)."""
    from ktools.train.mofo import top_fraction_mask

    return delta * top_fraction_mask(delta, fraction).to(delta.dtype)


def kept_interval(base: list[float], other: list[float]) -> tuple[float, float, float]:
    """other's score as a share of base's, with step 06's 95 % paired bootstrap interval."""
    ratio = paired_bootstrap_ratio(base, other)
    return ratio["mean"], ratio["lo"], ratio["hi"]


def main(argv: list[str] | None = None) -> int:
    import torch
    from safetensors.torch import load_file

    from ktools.models import load_causal_lm, load_tokenizer
    from ktools.train.threads import choose_torch_threads

    root = find_repo_root()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, required=True, help="a fine-tuned model folder (model.safetensors)")
    parser.add_argument("--base", default=EMBEDDED_MODEL_NAME, help="the model it was tuned from")
    parser.add_argument("--general", type=Path, default=root / "assets" / "general_questions.jsonl")
    parser.add_argument("--exam", nargs="?", const=root / "assets" / "sample" / "exam.jsonl", type=Path,
                        default=None, help="also score this exam (default path when given alone)")
    parser.add_argument("--scales", default="1.0,0.5", help="random-direction norms, times the tuned change's")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--largest", default="", help="also the tuned change cut to its largest entries, e.g. 0.3,0.1")
    parser.add_argument("--general-tokens", type=int, default=32, help="as step 06 (GENERAL max_new_tokens)")
    parser.add_argument("--exam-tokens", type=int, default=64)
    args = parser.parse_args(argv)

    weights = args.tuned / "model.safetensors"
    if not weights.is_file():
        parser.error(f"{weights} not found: --tuned must be a saved model folder")
    choose_torch_threads()
    tokenizer = load_tokenizer(args.base)
    tokenizer.padding_side = "left"
    model = load_causal_lm(args.base, device="cpu")
    model.eval()
    base_state = {k: v.detach().clone() for k, v in model.named_parameters()}
    tuned_state = load_file(str(weights))
    if not any(k in tuned_state for k in base_state):
        parser.error(f"{weights} shares no tensor names with {args.base}: not a fine-tune of it")
    sets = {"general": (load_eval_set(args.general), args.general_tokens)}
    if args.exam:
        sets["exam"] = (load_eval_set(args.exam), args.exam_tokens)

    def load(delta_of: dict[str, torch.Tensor] | None) -> None:
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(base_state[name] + delta_of[name] if delta_of and name in delta_of else base_state[name])

    def score(label: str) -> dict[str, list[float]]:
        t0 = time.perf_counter()
        out = {name: hits(model, tokenizer, items, tokens) for name, (items, tokens) in sets.items()}
        print(f"  {label}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return out

    tuned_delta = {k: tuned_state[k].to(base_state[k].dtype) - base_state[k] for k in base_state if k in tuned_state}
    rows: list[tuple[str, dict[str, list[float]]]] = []
    load(None)
    rows.append(("base", score("base")))
    load(tuned_delta)
    rows.append(("tuned", score("tuned")))
    for seed in (int(s) for s in args.seeds.split(",")):
        for scale in (float(s) for s in args.scales.split(",")):
            gen = torch.Generator().manual_seed(seed)
            noise = {}
            for name, delta in tuned_delta.items():
                direction = torch.randn(delta.shape, generator=gen, dtype=torch.float32).to(delta.dtype)
                noise[name] = direction / (direction.norm() + 1e-12) * delta.norm() * scale
            load(noise)
            rows.append((f"random x{scale:g} (seed {seed})", score(f"random x{scale:g} seed {seed}")))

    for fraction in (float(f) for f in args.largest.split(",") if f):
        load({name: largest_entries(delta, fraction) for name, delta in tuned_delta.items()})
        rows.append((f"tuned, largest {fraction:.0%}", score(f"largest {fraction:.0%}")))

    base_hits = rows[0][1]
    header = "| weights | " + " | ".join(f"{name} key facts" for name in sets) + " | general kept (95 % interval) |"
    print(header)
    print("|---" * (len(sets) + 2) + "|")
    for label, result in rows:
        cells = [f"{sum(result[name]):.0f} / {len(result[name])}" for name in sets]
        point, low, high = kept_interval(base_hits["general"], result["general"])
        print(f"| {label} | " + " | ".join(cells) + f" | {point:.0%} [{low:.0%}, {high:.0%}] |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
