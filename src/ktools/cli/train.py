"""`ktools train`: fine-tune the student on a training mix (step 05)."""

from __future__ import annotations

import argparse
import json
import sys


def register(parser: argparse.ArgumentParser) -> None:
    from ktools.train.batching import STRATEGIES
    from ktools.train.schedule import SCHEDULERS

    parser.add_argument("--mix", help="training mix JSONL (default: output/step_04/training_mix/combined_cut_<cut>x.jsonl)")
    parser.add_argument("--cut", type=int, help="cut size of the mix to use (default: the smallest of CUT_SIZES)")
    parser.add_argument("--model", help="student model name or path (default: STUDENT_MODEL_NAME)")
    parser.add_argument("--method", choices=["full", "lora"], default="full")
    parser.add_argument("--backend", choices=["auto", "sft", "osft"], default="auto",
                        help="osft = training_hub (needs the package and a GPU)")
    parser.add_argument("--lr", type=float, help="learning rate (default: 2e-4 up to 400M parameters, 5e-5 full "
                        "/ 1e-4 LoRA above)")
    parser.add_argument("--lr-scheduler", choices=list(SCHEDULERS), default="cosine",
                        help="learning-rate schedule; wsd keeps the peak rate until the last 20 %% of the steps")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, help="exact number of optimizer steps (overrides --epochs)")
    parser.add_argument("--time-budget", type=float, default=7.0,
                        help="minutes: fewer steps are planned if the epochs would not fit (0 = no limit)")
    parser.add_argument("--max-seq-len", type=int, help="truncate examples to this many tokens (default 512)")
    parser.add_argument("--tokens-per-batch", type=int, default=2048)
    parser.add_argument("--batching", choices=STRATEGIES, default="length")
    parser.add_argument("--max-rows", type=int, help="use only the first N rows of the mix")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--retention-kl", type=float, default=0.0,
                        help="weight of KL(base || student) on the mix's general-replay rows, against a frozen "
                             "copy of the base model (default 0 = off)")
    parser.add_argument("--freeze-embeddings", action="store_true",
                        help="keep the token embeddings and the output head as they were (full method)")
    parser.add_argument("--freeze-lower-layers", type=int, default=0, metavar="N",
                        help="the lowest N transformer blocks keep their weights too; the backward pass stops "
                             "above them, so steps are cheaper (full method; default 0 = every block learns)")
    parser.add_argument("--update-fraction", type=float, default=1.0,
                        help="share of each weight tensor an optimizer step moves, the entries with the largest "
                             "momentum (MoFO; default 1 = plain AdamW)")
    parser.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="keep the trained logits as they are (default: fit a temperature on step 04's "
                             "held-out Q&A and fold it into the model; greedy answers are unchanged)")
    parser.add_argument("--output", help="final model directory (default: output/fine_tuned_model/<model>)")
    parser.add_argument("--strategy", choices=["auto", "ddp", "fsdp"], default="auto",
                        help="with 2+ GPUs: torchrun workers, data parallel (ddp) or sharded (fsdp); auto = fsdp "
                             "when the model's training memory exceeds one GPU. 0-1 GPU: this process")


def run(args: argparse.Namespace) -> int:
    from ktools.config import load_settings
    from ktools.train import TrainConfig
    from ktools.train.launch import run_training

    settings = load_settings(step_dir="05_Model_Training")
    config = TrainConfig.from_settings(
        settings, cut=args.cut, model_name=args.model, mix_path=args.mix, method=args.method, backend=args.backend,
        learning_rate=args.lr, lr_scheduler=args.lr_scheduler, epochs=args.epochs, max_steps=args.max_steps,
        time_budget_minutes=args.time_budget or None, max_seq_len=args.max_seq_len,
        tokens_per_batch=args.tokens_per_batch, batching=args.batching, max_rows=args.max_rows, seed=args.seed,
        resume=not args.no_resume, output_dir=args.output, retention_kl=args.retention_kl,
        freeze_embeddings=args.freeze_embeddings, freeze_lower_layers=args.freeze_lower_layers,
        update_fraction=args.update_fraction)
    if args.no_calibrate:
        config = config.replace(calibration_path="")
    # Workers' output goes to stderr, so stdout stays the JSON summary.
    result = run_training(config, args.strategy, sink=_write_stderr)
    summary = {k: v for k, v in result.to_dict().items() if k not in {"losses", "config"}}
    print(json.dumps(summary, indent=2))
    return 0


def _write_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()
