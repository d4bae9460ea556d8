"""`ktools evaluate`: the base model alone (step 01, --base-only) or base vs fine-tuned (step 06)."""

from __future__ import annotations

import argparse
import json


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-only", action="store_true", help="step 01: evaluate the base model only")
    parser.add_argument("--base", help="base model (default: STUDENT_MODEL_NAME)")
    parser.add_argument("--tuned", help="fine-tuned model dir (default: output/fine_tuned_model/<student>)")
    parser.add_argument("--exam", help="exam JSONL (default: assets/sample/exam.jsonl)")
    parser.add_argument("--exam-limit", type=int, help="first N exam questions")
    parser.add_argument("--general-limit", type=int, help="first N general questions (0 = skip)")
    parser.add_argument("--held-out-limit", type=int, default=60,
                        help="first N questions of output/step_04/eval_set.jsonl (0 = skip)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    judge = parser.add_mutually_exclusive_group()
    judge.add_argument("--no-judge", action="store_true", help="skip the LLM judge")
    judge.add_argument("--judge", action="store_true",
                       help="judge even with the embedded teacher (default: judge with any other teacher)")
    parser.add_argument("--no-reuse-base", action="store_true", help="re-evaluate the base model in step 06")


def run(args: argparse.Namespace) -> int:
    from ktools.config import find_repo_root, load_settings
    from ktools.evaluate import (
        EvalOptions,
        default_eval_sets,
        make_judge_client,
        run_base_evaluation,
        run_evaluation,
    )
    from ktools.paths import OutputPaths

    settings = load_settings(step_dir="01_Base_Model_Evaluation" if args.base_only else "06_Evaluation")
    paths = OutputPaths.from_settings(settings)
    sets = default_eval_sets(paths, find_repo_root(), held_out_limit=args.held_out_limit,
                             exam_limit=args.exam_limit, general_limit=args.general_limit, exam_path=args.exam)
    use_judge = False if args.no_judge else True if args.judge else None
    judge = make_judge_client(settings, use_judge)
    options = EvalOptions(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, judge=judge is not None)
    base = args.base or settings.student_model_name
    try:
        if args.base_only:
            result = run_base_evaluation(base, sets, paths, options=options, judge_client=judge)
            summary = {name: {m: v["mean"] for m, v in s["summary"].items() if isinstance(v, dict)}
                       for name, s in result["sets"].items()}
            print(json.dumps({"written": str(paths.base_eval_json), "summary": summary}, indent=2))
        else:
            tuned = args.tuned or str(paths.fine_tuned_model(settings.student_model_name))
            report = run_evaluation(base, tuned, sets, paths, options=options, judge_client=judge,
                                    reuse_base=not args.no_reuse_base)
            summary = {name: {m: {"base": v["base"]["mean"], "tuned": v["tuned"]["mean"]}
                              for m, v in metrics.items()} for name, metrics in report["comparison"].items()}
            print(json.dumps({"written": str(paths.eval_report_json), "summary": summary}, indent=2))
    finally:
        if judge is not None:
            judge.close()
    return 0
