"""`ktools generate`: step 03 from the command line, with the Training Data Generator's flags.

    ktools generate                                   # all four generators over output/step_02/seed_data.jsonl
    ktools generate --chunks-dir /data/chunks --qa-dir /data/qa_results \\
        --provider local --model qwen3:14b --ollama-base-url http://192.168.50.133:11434 \\
        --questions-per-chunk 5 --temperature 0.3
    ktools generate --chunks-dir /data/chunks --qa-dir /data/qa_results --dry-run

Every flag also has its environment variable (GENERATOR_*, OLLAMA_*; see
`ktools.compat.training_data_generator.settings`), read from the environment and `.env`: CLI > env > .env > defaults.

`--provider local` means Ollama when an Ollama URL is given (`--ollama-base-url` or
OLLAMA_BASE_URL), as in the Training Data Generator, and the embedded SmolLM2 teacher
otherwise (ktools' meaning of "local"); `--provider embedded` always means the embedded teacher.

Outputs go to --qa-dir (alias --out; env GENERATOR_OUTPUT_DIR; default output/step_03):
`{document}_qa.json` per document, `qa_generation_summary.json`, `qa_failures.jsonl`, and
the engine's `<generator>/gen.jsonl`, `report.json`, `responses.sqlite` (exact resume).
Exit status: 0 all done; 1 the run is not complete - some chunks or input files failed,
a generator kept no rows, a budget or cost cap stopped it, or every dry-run request
failed (one line on stderr says why); 2 bad settings or input; 130 interrupted (re-run
the same command to resume).
"""

from __future__ import annotations

import argparse
import sys

SAMPLES_SHOWN = 2


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _batch(raw: str) -> int:
    return _positive_int(raw)


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n", 2)[2]
    src = parser.add_argument_group("input (one of)")
    either = src.add_mutually_exclusive_group()
    either.add_argument("--seed", help="seed JSONL (default: output/step_02/seed_data.jsonl)")
    either.add_argument("--chunks-dir", help="folder of chunk files: *_chunks.json, JSON/JSONL chunks, "
                        ".txt/.md one chunk each (env GENERATOR_PROCESS_DIR)")

    out = parser.add_argument_group("output")
    out.add_argument("--qa-dir", "--out", dest="qa_dir",
                     help="output folder (env GENERATOR_OUTPUT_DIR; default output/step_03)")

    gen = parser.add_argument_group("generation")
    gen.add_argument("--generators", help="comma-separated: extractive_summary, detailed_summary, "
                     "key_facts_to_qa, document_based_qa, or 'all' (default: all with --seed, "
                     "document_based_qa with --chunks-dir)")
    gen.add_argument("--questions-per-chunk", type=_positive_int,
                     help="questions per chunk / per summary (env GENERATOR_QUESTIONS_PER_CHUNK; default 3)")
    gen.add_argument("--summaries", type=_positive_int, help="summaries per chunk (env NUMBER_OF_SUMMARIES)")
    gen.add_argument("--temperature", type=float, help="sampling temperature (env GENERATOR_TEMPERATURE)")
    gen.add_argument("--max-tokens", type=_positive_int, help="max tokens per completion (env GENERATOR_MAX_TOKENS)")
    gen.add_argument("--stage-max-tokens", dest="stage_max_tokens", action="append", type=_stage_cap,
                     metavar="STAGE=N", help="cap one stage's completions at N tokens (repeatable), e.g. "
                     "judges=1024; stages: summaries, questions, answers, facts, qa_pairs, judges "
                     "(env STAGE_MAX_TOKENS=judges=1024,answers=2048)")
    gen.add_argument("--stage-thinking", dest="stage_thinking", action="append", type=_stage_thinking,
                     metavar="STAGE=MODE", help="thinking of a reasoning teacher per stage (repeatable): on, off or "
                     "minimal/low/medium/high, e.g. judges=off (env STAGE_THINKING; sent as "
                     "chat_template_kwargs.enable_thinking or reasoning_effort, by provider - THINKING_CONTROL)")
    gen.add_argument("--qa-system-message", help="system message for the generator prompts")
    gen.add_argument("--qa-extra-instructions", help="extra instructions added to every generator prompt "
                     "(also CUSTOMISATION_PROMPT)")
    gen.add_argument("--qa-prompt-template-file", help="Q&A prompt template (the reference tool's {text}, "
                     "{num_questions}, {extra_instructions} placeholders, Jinja2 text, or a prompt YAML); "
                     "replaces the document_based_qa prompt")
    gen.add_argument("--prompts-dir", help="folder of <prompt>.yaml files replacing the built-in prompts")
    gen.add_argument("--judges", choices=("auto", "on", "off"), default="auto",
                     help="question/faithfulness/relevancy judges (auto: on for a real teacher, off for the "
                          "embedded one)")

    llm = parser.add_argument_group("teacher")
    llm.add_argument("--provider", help="openai, claude/anthropic, gemini, local (Ollama with an Ollama URL, "
                     "else the embedded teacher), embedded (always the embedded teacher), ollama, vllm (env GENERATOR_PROVIDER)")
    llm.add_argument("--model", help="model name (env GENERATOR_MODEL)")
    llm.add_argument("--base-url", help="OpenAI-compatible base URL (…/v1); several replicas: comma-separated, "
                     "URL#N caps one at N requests in flight (env GENERATOR_BASE_URL, TEACHER_MODEL_BASE_URL)")
    llm.add_argument("--api-key", help="API key (better: env GENERATOR_API_KEY, OPENAI_API_KEY, "
                     "TEACHER_MODEL_API_KEY…); never printed")
    llm.add_argument("--ollama-base-url", help="Ollama server URL (env OLLAMA_BASE_URL)")

    local = parser.add_argument_group("sampling for local models")
    local.add_argument("--top-k", "--ollama-top-k", dest="top_k", type=_positive_int, help="env OLLAMA_TOP_K")
    local.add_argument("--top-p", "--ollama-top-p", dest="top_p", type=float, help="env OLLAMA_TOP_P")
    local.add_argument("--repeat-penalty", "--ollama-repeat-penalty", dest="repeat_penalty", type=float,
                       help="env OLLAMA_REPEAT_PENALTY")
    local.add_argument("--num-predict", "--ollama-num-predict", dest="num_predict", type=_positive_int,
                       help="max tokens for a local model (env OLLAMA_NUM_PREDICT; wins over --max-tokens)")
    local.add_argument("--stop", "--ollama-stop", dest="stop", action="append",
                       help="stop sequence (repeatable)")

    run = parser.add_argument_group("processing")
    run.add_argument("--max-concurrency", type=_positive_int, help="requests in flight (env MAX_CONCURRENCY)")
    run.add_argument("--batch-processing", nargs="?", const=True, type=_batch, metavar="N",
                     help="the reference tool's name for concurrency: alone = concurrent (MAX_CONCURRENCY), "
                          "with N = N requests in flight (env GENERATOR_BATCH_PROCESSING)")
    run.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                     help="resume (default, env GENERATOR_RESUME); --no-resume starts over, moving earlier "
                          "outputs to a backup folder")
    run.add_argument("--retry-failed", action="store_true", help="also re-run chunks that failed before")
    run.add_argument("--dry-run", action="store_true",
                     help="run 2 chunks through every stage, show samples, estimate requests and tokens")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    cost = parser.add_argument_group("cost and rate")
    cost.add_argument("--token-budget", type=_positive_int, help="stop cleanly after this many tokens sent; "
                      "re-run to go on (env TOKEN_BUDGET)")
    cost.add_argument("--price-input", type=_price, help="price per million input tokens (env TEACHER_PRICE_INPUT)")
    cost.add_argument("--price-output", type=_price, help="price per million output tokens (env TEACHER_PRICE_OUTPUT)")
    cost.add_argument("--max-cost", type=_price, help="stop cleanly (resumable) once this much money is spent; "
                      "needs the prices (env MAX_COST)")
    cost.add_argument("--rpm", type=_positive_int, help="at most this many requests per minute (env TEACHER_RPM)")
    cost.add_argument("--tpm", type=_positive_int, help="at most this many tokens per minute (env TEACHER_TPM)")
    gen.add_argument("--structured-output", choices=("auto", "on", "off"),
                     help="JSON schema for questions, facts, Q&A pairs and judge scores: auto = where the provider "
                          "honours one; the tag parsers stay the fallback (env STRUCTURED_OUTPUT, default off)")
    gen.add_argument("--dedup-threshold", type=_fraction,
                     help="drop a question this similar (word-bigram Jaccard, 0-1) to an earlier one across chunks "
                          "and generators; 1 = equal text only, 0 = off (env DEDUP_THRESHOLD, default 0.9)")


def _stage_cap(text: str) -> tuple[str, int]:
    # GenerationOptions checks the same; here it fails at parse time, next to the flag.
    from ktools.generate.options import STAGE_KEYS

    stage, _, number = text.partition("=")
    if stage.strip() not in STAGE_KEYS or not number.strip().isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"expected STAGE=N with STAGE one of {', '.join(sorted(STAGE_KEYS))} "
                                         f"and N >= 1, got {text!r}")
    return stage.strip(), int(number)


def _stage_thinking(text: str) -> tuple[str, str]:
    from ktools.generate.options import STAGE_KEYS, THINKING_VALUES

    stage, _, mode = (part.strip().lower() for part in text.partition("="))
    if stage not in STAGE_KEYS or mode not in THINKING_VALUES:
        raise argparse.ArgumentTypeError(f"expected STAGE=MODE with STAGE one of {', '.join(sorted(STAGE_KEYS))} "
                                         f"and MODE one of {', '.join(THINKING_VALUES)}, got {text!r}")
    return stage, mode


def _fraction(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


def _price(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _settings_overrides(args: argparse.Namespace) -> dict:
    """Flags that set plain ktools settings (None: not given, the environment's value stays)."""
    thinking = dict(args.stage_thinking) if args.stage_thinking else None
    return {"token_budget": args.token_budget, "teacher_price_input": args.price_input,
            "teacher_price_output": args.price_output, "max_cost": args.max_cost, "teacher_rpm": args.rpm,
            "teacher_tpm": args.tpm, "stage_thinking": thinking, "structured_output": args.structured_output,
            "dedup_threshold": args.dedup_threshold}


def _cli_values(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in (
        "chunks_dir", "qa_dir", "provider", "model", "api_key", "base_url", "ollama_base_url", "temperature",
        "max_tokens", "questions_per_chunk", "summaries", "max_concurrency", "top_k", "top_p",
        "repeat_penalty", "num_predict", "stop")}


def _print_summary(summary: dict) -> None:
    print(f"{summary['status']}: {summary['documents_done']}/{summary['total_files']} documents done, "
          f"{summary['total_qa_pairs']} Q&A pairs; chunks {summary['chunks_completed']} done, "
          f"{summary['chunks_failed']} failed, {summary['chunks_pending']} pending "
          f"(success rate {summary['success_rate']:.0%}); requests sent {summary['requests_sent']}, "
          f"cached {summary['requests'].get('cached', 0)}; tokens {summary['tokens']}; "
          + (f"cost {summary['requests']['cost']:.4f}; " if "cost" in summary["requests"] else "") +
          f"{summary['wall_seconds']:.1f}s ({summary['seconds_per_chunk'] or 0:.2f}s per chunk)")
    if summary.get("endpoints"):
        from ktools.llm.endpoints import format_endpoint_row

        print("teacher endpoints:")
        for row in summary["endpoints"]:
            print(f"  {format_endpoint_row(row)}")
    for doc in summary["documents"]:
        print(f"  {doc['qa_file']}: {doc['status']}, {doc['qa_pairs']} pairs, chunks "
              f"{doc['chunks_completed']}/{doc['chunks']} done, {doc['chunks_failed']} failed")
    print(f"summary: {summary['qa_directory']}/qa_generation_summary.json")
    if summary["chunks_failed"] or summary["bad_input_files"]:
        print(f"failures: {summary['failures_log']} (retry failed chunks with --retry-failed)", file=sys.stderr)
    for bad in summary["bad_input_files"]:
        print(f"  bad input {bad['file']}: {bad['reason']}", file=sys.stderr)
    if summary.get("backup_dir"):
        print(f"earlier outputs moved to {summary['backup_dir']}")
    if summary.get("resume_hint"):
        print(summary["resume_hint"], file=sys.stderr)


def _print_dry_run(summary: dict) -> None:
    est = summary.get("estimate") or {}
    money = f", cost {est['cost']:.4f}" if "cost" in est else ""
    print(f"dry run over {summary['total_chunks']} chunks: estimated {est.get('requests', '?')} requests, "
          f"{est.get('tokens', '?')} tokens{money} for the full run")
    for name, g in (est.get("generators") or {}).items():
        print(f"  {name}: {g['requests_per_chunk']} requests and {g['tokens_per_chunk']} tokens per chunk")
    for name, rows in (summary.get("samples") or {}).items():
        for row in rows[:SAMPLES_SHOWN]:
            print(f"  [{name}] Q: {row.get('question')}\n      A: {row.get('response')}")


def run(args: argparse.Namespace) -> int:
    import logging

    from ktools.compat.training_data_generator.chunk_files import ChunkFileError
    from ktools.compat.training_data_generator.generator import QAGenerator, TDGError
    from ktools.compat.training_data_generator.qa_files import QAInputError
    from ktools.config import ConfigError
    from ktools.generate import GenerationInterrupted
    from ktools.io import JsonlError
    from ktools.prompts import PromptError

    log = logging.getLogger("ktools.generate")
    if not args.verbose:  # one line per HTTP request drowns the progress and the summary
        for name in ("httpx", "httpx2", "httpcore", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        # --seed wins; else --chunks-dir or GENERATOR_PROCESS_DIR; else step 02's seed file.
        seed = args.seed
        if seed is None and not (args.chunks_dir or _env_chunks_dir()):
            from ktools.config import load_settings
            from ktools.paths import OutputPaths

            seed = str(OutputPaths.from_settings(load_settings()).seed_data)
        generator = QAGenerator(
            **_cli_values(args), seed=seed, generators=args.generators,
            use_batch_processing=args.batch_processing, qa_system_message=args.qa_system_message,
            qa_extra_instructions=args.qa_extra_instructions,
            qa_prompt_template_file=args.qa_prompt_template_file, prompts_dir=args.prompts_dir,
            judges={"auto": None, "on": True, "off": False}[args.judges], show_progress=not args.no_progress,
            stage_max_tokens=dict(args.stage_max_tokens or ()), settings_overrides=_settings_overrides(args),
        )
        rows = {row["setting"]: row for row in generator.config.describe()}
        log.info("teacher: provider %s, model %s, base URL %s (provider from %s)", rows["provider"]["value"],
                 rows["model"]["value"], rows["base_url"]["value"], rows["provider"]["from"])
        for row in rows.values():
            log.debug("setting %s = %s (%s)", row["setting"], row["value"], row["from"])
        summary = generator.generate_qa_for_all_documents(resume=args.resume, retry_failed=args.retry_failed,
                                                          dry_run=args.dry_run)
    except GenerationInterrupted as exc:
        hint = exc.report.resume_hint if exc.report else ""
        print(f"\ninterrupted; answered requests are stored. {hint or 'Re-run the same command to resume.'}",
              file=sys.stderr)
        return 130
    except (ConfigError, TDGError, ChunkFileError, QAInputError, JsonlError, PromptError, FileNotFoundError,
            ValueError) as exc:
        print(f"ktools generate: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        if summary["status"] != "dry_run":  # every dry-run chunk failed: there is nothing to estimate from
            print(f"ktools generate: dry run {summary['status']}: {summary.get('status_reason')}", file=sys.stderr)
            return 1
        _print_dry_run(summary)
        if summary.get("failures"):
            print(f"warning: {len(summary['failures'])} dry-run chunk(s) failed: {summary.get('status_reason')}",
                  file=sys.stderr)
        return 0
    _print_summary(summary)
    if summary["status"] != "complete" or summary["chunks_failed"] or summary["bad_input_files"]:
        reason = summary.get("status_reason") or f"{len(summary['bad_input_files'])} input file(s) unusable"
        print(f"ktools generate: {summary['status']}: {reason}", file=sys.stderr)
        return 1
    return 0


def _env_chunks_dir() -> str | None:
    from ktools.compat.training_data_generator.settings import load_tdg_settings

    return load_tdg_settings().process_dir
