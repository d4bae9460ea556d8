"""Benchmark: what each knowledge component of step 04 buys — ablations on a real document.

For each configuration (all components; each one switched off in turn; step 03's rows
alone) it builds the step-04 mix from the same step 02/03 outputs, fine-tunes the student
for the same time budget, and scores base and tuned on the same sets:

- ``exam``         the hand-written exam of the sample document (99 questions);
- ``corpus_exam``  the exam step 04 builds from the document (held out by fact);
- ``general``      general knowledge the base model has (forgetting).

It prints one table per set: key-fact hit rate, multiple-choice accuracy, reference NLL
(each with its 95 % bootstrap interval) and the paired difference to the base model,
and writes everything to `<work>/knowledge_bench.json`. Steps 02 and 03 are taken from
`--from` (default: `output/`, i.e. a finished `ktools run --profile demo --steps 0-3`);
each configuration works in its own folder under `--work`, so the real outputs are
never touched.

    python bench/knowledge.py --minutes 8                       # all, leave-one-out, step-03 only
    python bench/knowledge.py --minutes 8 --configs all,-replay # chosen configurations
    python bench/knowledge.py --minutes 2 --exam-limit 30       # a quick look

Each configuration costs the training budget plus ~2-4 minutes of evaluation on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ktools.config import EMBEDDED_MODEL_NAME, find_repo_root  # noqa: E402
from ktools.evaluate.evalset import load_eval_set  # noqa: E402
from ktools.evaluate.runner import EvalOptions, compare, evaluate_model  # noqa: E402
from ktools.knowledge.components import COMPONENTS  # noqa: E402
from ktools.mixing import MixOptions, build_mixes  # noqa: E402
from ktools.paths import OutputPaths  # noqa: E402
from ktools.train.config import TrainConfig  # noqa: E402
from ktools.train.trainer import train  # noqa: E402

METRICS = ("key_fact_hit", "choice_correct", "nll")


def configurations(spec: str) -> dict[str, tuple[str, ...]]:
    """Name → components. "default": all, each left out, none (step 03 only)."""
    if spec == "default":
        names = ["all", *(f"-{c}" for c in COMPONENTS), "none"]
    else:
        names = [s.strip() for s in spec.split(",") if s.strip()]
    out = {}
    for name in names:
        if name == "all":
            out[name] = COMPONENTS
        elif name == "none":
            out[name] = ()
        elif name.startswith("-"):
            out[name] = tuple(c for c in COMPONENTS if c != name[1:])
        else:
            out[name] = tuple(p for p in name.split("+") if p)
    return out


def prepare(work: Path, source: Path) -> OutputPaths:
    """A fresh output folder holding a copy of step 02 and step 03 from `source`."""
    if work.exists():
        shutil.rmtree(work)
    for step in ("step_02", "step_03"):
        if not (source / step).is_dir():
            raise SystemExit(f"{source / step} not found: run `ktools run --profile demo --steps 0-3` first")
        shutil.copytree(source / step, work / step)
    return OutputPaths(work)


def fmt(ci: dict) -> str:
    if ci.get("mean") is None:
        return "–"
    return f"{ci['mean']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="default", help="comma-separated: all, none, -COMPONENT, A+B+C")
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per configuration")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--epochs", type=float, default=20.0, help="upper bound; the time budget usually binds")
    parser.add_argument("--exam-limit", type=int, default=None)
    parser.add_argument("--from", dest="source", default="output", help="where steps 02/03 are (default output/)")
    parser.add_argument("--work", default="output/bench_knowledge")
    args = parser.parse_args()

    repo = find_repo_root()
    source = (repo / args.source).resolve()
    work_root = (repo / args.work).resolve()
    student = EMBEDDED_MODEL_NAME
    options = EvalOptions(judge=False)
    hand_written = load_eval_set(repo / "assets" / "sample" / "exam.jsonl", args.exam_limit)
    general = load_eval_set(repo / "assets" / "general_questions.jsonl")
    results: dict[str, dict] = {}
    base_cache: dict[str, dict] = {}
    for name, components in configurations(args.configs).items():
        started = time.perf_counter()
        folder = name.replace("+", "_").replace("-", "without_")
        paths = prepare(work_root / folder, source)
        # The base student's replay answers are the same for every configuration: generated once.
        shared_replay, replay = work_root / "replay_answers.json", paths.step(4) / "replay_answers.json"
        if shared_replay.is_file():
            replay.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shared_replay, replay)
        mix = build_mixes(MixOptions(cut_sizes=[2], qa_per_doc=3, components=components, seed=42), paths,
                          progress=False)
        if replay.is_file() and not shared_replay.is_file():
            shutil.copy(replay, shared_replay)
        config = TrainConfig(model_name=student, mix_path=str(paths.training_mix(2)),
                             output_dir=str(paths.root / "model"), checkpoints_dir=str(paths.checkpoints_dir),
                             report_dir=str(paths.step(5)), time_budget_minutes=args.minutes, epochs=args.epochs,
                             learning_rate=args.learning_rate, resume=False)
        trained = train(config, progress=False)
        sets = {"exam": hand_written, "general": general}
        if paths.corpus_exam.is_file():
            sets["corpus_exam"] = load_eval_set(paths.corpus_exam, args.exam_limit)
        base = evaluate_model(student, sets, options=options, progress=False, label="base", reuse=base_cache)
        base_cache.update(base["sets"])
        tuned = evaluate_model(str(paths.root / "model"), sets, options=options, progress=False, label="tuned")
        comparison = compare(base, tuned, options)
        results[name] = {"components": list(components), "mix_rows": sum(r["rows"] for r in mix.per_cut()),
                         "mix_tokens": sum(r["total_tokens"] for r in mix.per_cut()),
                         "train": {"steps": trained.steps, "epochs": round(trained.epochs_done, 2),
                                   "tokens_per_second": trained.tokens_per_second, "final_loss": trained.final_loss},
                         "comparison": comparison, "seconds": round(time.perf_counter() - started, 1)}
        print(f"{name}: {results[name]['mix_rows']} rows, {results[name]['mix_tokens']:,} tokens, "
              f"{trained.epochs_done:.2f} epochs at {trained.tokens_per_second} tokens/s, "
              f"{results[name]['seconds']:.0f} s", flush=True)
        (work_root / "knowledge_bench.json").write_text(json.dumps(results, indent=2, default=str))
    for set_name in ("exam", "corpus_exam", "general"):
        print(f"\n## {set_name}\n")
        print("| configuration | key-fact hit (tuned) | Δ vs base | multiple choice (tuned) | Δ | ref. NLL (tuned) | Δ |")
        print("|---|---|---|---|---|---|---|")
        for name, result in results.items():
            comp = result["comparison"].get(set_name)
            if not comp:
                continue
            cells = []
            for metric in METRICS:
                cells += [fmt(comp[metric]["tuned"]), fmt(comp[metric]["diff"])]
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nbase model: exam key-fact hit {fmt(next(iter(results.values()))['comparison']['exam']['key_fact_hit']['base'])}"
          if results else "")
    print(f"details: {work_root / 'knowledge_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
