"""`ktools mix`: build the step-04 training mixes, eval set and stats."""

from __future__ import annotations

import argparse
import json
import sys

from ktools.config import ConfigError, load_settings


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError("expected true or false")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cut-sizes", help="comma-separated cut sizes, e.g. 5,50 (env CUT_SIZES)")
    parser.add_argument("--qa-per-doc", type=int, help="Q&A kept per summary (env QA_PER_DOC)")
    parser.add_argument("--gpt-oss", type=_bool, metavar="BOOL",
                        help="also write the GPT-OSS format (env SAVE_GPT_OSS_FORMAT)")
    parser.add_argument("--alpaca", action="store_true", help="also write Alpaca JSONL of each mix")
    parser.add_argument("--max-seq-len", type=int, help="drop rows longer than this many tokens (env MIX_MAX_SEQ_LEN)")
    parser.add_argument("--eval-share", type=float, default=0.1, help="share held out for eval (default 0.1)")
    parser.add_argument("--seed", type=int, default=42, help="sampling seed (default 42)")
    parser.add_argument("--tokenizer", help="tokenizer for token counts (env TOKENIZER_MODEL_NAME)")
    parser.add_argument("--output-dir", help="output folder (env KTOOLS_OUTPUT_DIR; default <repo>/output)")
    parser.add_argument("--components", default="all",
                        help="knowledge components added to every cut: all (default), none, a comma-separated "
                             "list of raw_text, restatement, shuffled, cloze, fact_qa, about, plain_qa, closed_book_qa, replay, or "
                             "'-cloze,-replay' for all but those")
    parser.add_argument("--replay-share", type=float, default=0.1,
                        help="share of the mix that is general replay (default 0.1)")
    parser.add_argument("--corpus-exam", type=_bool, default=True, metavar="BOOL",
                        help="build output/step_04/exam.jsonl from the documents (default true)")
    parser.add_argument("--keep-invented", action="store_true",
                        help="keep step-03 rows that state numbers or names their chunk does not contain "
                             "(by default they are dropped: a teacher's inventions would be learnt as facts)")
    parser.add_argument("--replay-self-prompts", type=int, default=0,
                        help="general prompts the student may write itself when the prompts file cannot fill "
                             "--replay-share (default 0: none)")
    parser.add_argument("--exam", default="", help="your own exam (JSONL): its questions are kept out of training")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")


def run(args: argparse.Namespace) -> int:
    from ktools.mixing import MixingInputError, MixOptions, mixing_step
    from ktools.paths import OutputPaths

    try:
        settings = load_settings(step_dir="04_Knowledge_Mixing", cut_sizes=args.cut_sizes,
                                 qa_per_doc=args.qa_per_doc, save_gpt_oss_format=args.gpt_oss,
                                 max_seq_len=args.max_seq_len, tokenizer_model_name=args.tokenizer,
                                 output_dir=args.output_dir)
        options = MixOptions.from_settings(settings, save_alpaca=args.alpaca, eval_share=args.eval_share,
                                           seed=args.seed, components=args.components,
                                           replay_share=args.replay_share, corpus_exam=args.corpus_exam,
                                           exam_path=args.exam, drop_invented=not args.keep_invented,
                                           replay_self_prompts=args.replay_self_prompts)
        # As notebook 04: a real teacher (from the settings) rephrases the corpus exam's questions.
        report = mixing_step(settings, options, OutputPaths.from_settings(settings), progress=sys.stderr.isatty())
    except (ConfigError, MixingInputError, ValueError) as exc:
        print(f"ktools mix: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        return 0
    for row in report.feasibility:
        print(f"cut {row['cut']:>4}x  {row['status']:<8} {row['reason']}")
    for row in report.per_cut():
        print(f"cut {row['cut']:>4}x: {row['rows']} rows, {row['total_tokens']:,} tokens "
              f"(mean {row['mean_tokens']}, max {row['max_tokens']}), dropped as too long: {row['dropped_too_long']}")
    knowledge = report.knowledge
    if knowledge.get("rows"):
        print("knowledge components: " + ", ".join(f"{k} {v}" for k, v in knowledge["rows"].items()))
    if knowledge.get("exam_items"):
        print(f"corpus exam: {knowledge['exam_items']} questions; {knowledge['leaks_removed']} leaking "
              "training rows removed")
    eval_rows = sum(report.split["eval_rows"].values())
    print(f"eval set: {eval_rows} held-out Q&A ({report.split['grouping']})")
    for note in report.notes:
        print(f"note: {note}")
    for f in report.files:
        print(f"wrote {f['path']}" + (f" ({f['rows']} rows)" if f["rows"] is not None else ""))
    return 0
