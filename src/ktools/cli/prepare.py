"""`ktools prepare` (convert + chunk + seed), `ktools convert-docs`, `ktools chunk`, `ktools seed`.

Same options as the step-02 notebook's parameters. Exit code 0 when everything
worked, 1 when some source failed (the others are still processed; the failures
are listed at the end), 2 for unusable options.
"""

from __future__ import annotations

import argparse
import sys

from ktools.documents.limits import ConversionLimits
from ktools.documents.step import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MIN_TOKENS,
    DEFAULT_OVERLAP_TOKENS,
    ICL_MODES,
)

DEFAULT_LIMITS = ConversionLimits()


def _add_convert(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="files (.md .txt .html .pdf .docx), folders (recursive) or http(s) URLs")
    parser.add_argument("--backend", choices=("auto", "docling"), default="auto",
                        help="converter backend (docling: optional, HTML/DOCX only)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds a URL download may wait for data (connect / each read)")
    parser.add_argument("--password", default=None, metavar="PW",
                        help="password that opens encrypted PDFs (default: PDF_PASSWORD from the environment/.env)")
    parser.add_argument("--download-deadline", type=float, default=DEFAULT_LIMITS.download_deadline,
                        help="seconds a whole URL download may take (default %(default)s)")
    parser.add_argument("--max-download-mb", type=float, default=DEFAULT_LIMITS.download_max_bytes / 2**20,
                        help="largest URL download in MB (default %(default)s)")
    parser.add_argument("--max-expanded-mb", type=float, default=DEFAULT_LIMITS.archive_max_bytes / 2**20,
                        help="largest expanded size of a .docx package in MB (default %(default)s)")
    parser.add_argument("--file-time-limit", type=float, default=DEFAULT_LIMITS.file_seconds,
                        help="seconds to convert one file, 0 = no limit (default %(default)s)")


def _limits(args: argparse.Namespace) -> ConversionLimits:
    return ConversionLimits(download_deadline=args.download_deadline,
                            download_max_bytes=int(args.max_download_mb * 2**20),
                            archive_max_bytes=int(args.max_expanded_mb * 2**20),
                            file_seconds=args.file_time_limit)


def _add_chunk(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="tokens per chunk at most")
    parser.add_argument("--overlap-tokens", type=int, default=DEFAULT_OVERLAP_TOKENS,
                        help="tokens shared by consecutive chunks")
    parser.add_argument("--min-tokens", type=int, default=DEFAULT_MIN_TOKENS,
                        help="no tail chunk with fewer new tokens than this")
    parser.add_argument("--tokenizer", default=None,
                        help="tokenizer name/path (default: TOKENIZER_MODEL_NAME or the student's)")


def _add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--icl-mode", choices=ICL_MODES, default="auto",
                        help="auto (default): yours where complete, else drafted; given: ICL fields from you; "
                             "teacher: drafted by the teacher (cached)")
    parser.add_argument("--icl-file", default=None,
                        help="YAML {source: {domain, document_outline, icl_document, icl_queries}}")
    parser.add_argument("--domain", default=None)
    parser.add_argument("--outline", dest="document_outline", default=None)
    parser.add_argument("--icl-document", default=None, help="excerpt text, or @FILE to read it from a file")
    parser.add_argument("--icl-query", action="append", default=None, help="give three times")
    parser.add_argument("--refresh", action="store_true", help="re-ask the teacher even if drafts are cached")


def register_command(name: str, parser: argparse.ArgumentParser) -> None:
    if name in ("prepare", "convert-docs"):
        _add_convert(parser)
    if name in ("prepare", "chunk"):
        _add_chunk(parser)
    if name in ("prepare", "seed"):
        _add_seed(parser)


def _given(args: argparse.Namespace) -> dict[str, object]:
    given: dict[str, object] = {}
    for key in ("domain", "document_outline"):
        if getattr(args, key, None):
            given[key] = getattr(args, key)
    if args.icl_document:
        text = args.icl_document
        if text.startswith("@"):
            from pathlib import Path

            text = Path(text[1:]).read_text(encoding="utf-8")
        given["icl_document"] = text
    if args.icl_query:
        if len(args.icl_query) != 3:
            raise SystemExit(f"--icl-query must be given exactly three times (got {len(args.icl_query)})")
        given["icl_queries"] = args.icl_query
    return given


def run_command(name: str, args: argparse.Namespace) -> int:
    from ktools.config import ConfigError, load_settings
    from ktools.documents.errors import DocumentError, SeedValidationError, format_errors
    from ktools.documents.step import chunk_step, convert_step, seed_step

    status = 0
    try:
        overrides = {"tokenizer_model_name": args.tokenizer} if getattr(args, "tokenizer", None) else {}
        settings = load_settings(step_dir="02_Data_Processing", **overrides)
        if name in ("prepare", "convert-docs"):
            if args.password:
                from ktools.config import register_secret

                register_secret(args.password)
            result = convert_step(args.sources, settings, backend=args.backend, timeout=args.timeout,
                                  pdf_password=args.password, limits=_limits(args))
            print(f"converted {len(result.documents)} document(s) → {result.out_dir}")
            for doc in result.documents:
                print(f"  {doc.output}: {doc.converter}, {doc.characters} chars"
                      + (f", {doc.pages} pages" if doc.pages else ""))
                for warning in doc.warnings:
                    print(f"    warning: {warning}")
                if doc.unmapped_glyph_pages:
                    print(f"    lost text (unmapped glyphs) on page(s): {', '.join(map(str, doc.unmapped_glyph_pages))}")
            if result.errors:
                print(format_errors(result.errors), file=sys.stderr)
                status = 1
            if not result.documents:
                return 1
        if name in ("prepare", "chunk"):
            chunked = chunk_step(settings, max_tokens=args.max_tokens, overlap_tokens=args.overlap_tokens,
                                 min_tokens=args.min_tokens)
            print(f"{len(chunked.rows)} chunk(s) → {chunked.path}")
            for warning in chunked.warnings:
                print(f"  warning: {warning}")
        if name in ("prepare", "seed"):
            seeded = seed_step(settings, mode=args.icl_mode, given=_given(args), icl_file=args.icl_file,
                               refresh=args.refresh, progress=False)
            print(f"{len(seeded.rows)} seed row(s) → {seeded.path}")
            for source, icl in seeded.icl.items():
                origins = ", ".join(f"{k}={v}" for k, v in icl.origin.items())
                print(f"  {source}: {origins}")
                for note in icl.notes:
                    print(f"    note: {note}")
            if seeded.teacher_failures:
                print(f"ktools {name}: the teacher failed while drafting ICL fields for "
                      f"{len(seeded.teacher_failures)} document(s) ({', '.join(seeded.teacher_failures)}); "
                      "fallback values were used and not cached - fix the teacher and run again",
                      file=sys.stderr)
                status = 1
    except (DocumentError, SeedValidationError, ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"ktools {name}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) and not isinstance(exc, SeedValidationError) else 1
    return status
