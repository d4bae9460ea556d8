"""`ktools convert`: Q&A (file or folder) -> Alpaca / messages JSONL or a review qna.yaml.

    ktools convert data/qa_results --output-dir data/training                  # Alpaca text
    ktools convert "data/qa_results/Policy_qa.json" --output-dir data/training --output-file p.jsonl
    ktools convert output/step_03 --output-dir out --format messages
    ktools convert data/qa_results --output-dir review --format qna-yaml

INPUT may be `*_qa.json` files or a folder of them, a combined training_data.json, or
ktools step-03 output (a gen.jsonl or the step_03 folder). One bad input file is listed
and skipped; the others are converted (exit status 1 then).
"""

from __future__ import annotations

import argparse
import sys


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n", 2)[2]
    from ktools.export.qa_formats import FORMATS

    parser.add_argument("input", help="Q&A file or folder (*_qa.json, training_data.json, step-03 output)")
    parser.add_argument("--output-dir", default=".", help="folder for the converted files (default: .)")
    parser.add_argument("--output-file", help="file name for a single document (with several documents, "
                        "JSONL formats write them all into this one file)")
    parser.add_argument("--format", choices=FORMATS, default="alpaca",
                        help="alpaca: {document}_trainingdata.jsonl with {'text'} records (default); "
                             "alpaca-fields: instruction/input/output; messages: chat JSONL; "
                             "qna-yaml: InstructLab-style qna.yaml for review")
    parser.add_argument("--system-message", help="messages: add this system turn to every record")
    parser.add_argument("--with-context", action="store_true",
                        help="alpaca-fields: put the source chunk into 'input' (default: empty input)")
    parser.add_argument("--created-by", default="ktools", help="qna-yaml: created_by (default: ktools)")
    parser.add_argument("--domain", help="qna-yaml: domain (default: from the generation rows)")
    parser.add_argument("--document-outline", help="qna-yaml: document_outline (default: from the rows)")
    parser.add_argument("--skip-incomplete", action="store_true",
                        help="skip Q&A files whose generation did not finish (default: convert them)")


def run(args: argparse.Namespace) -> int:
    from ktools.compat.training_data_generator.qa_files import QAInputError
    from ktools.export.qa_formats import ConvertOptions, convert_qa

    options = ConvertOptions(system_message=args.system_message, with_context=args.with_context,
                             created_by=args.created_by, domain=args.domain,
                             document_outline=args.document_outline)
    try:
        result = convert_qa(args.input, args.output_dir, args.format, output_file=args.output_file,
                            options=options, include_incomplete=not args.skip_incomplete)
    except QAInputError as exc:
        print(f"ktools convert: {exc}", file=sys.stderr)
        return 2
    for path, count in result.written:
        print(f"wrote {path} ({count} records)")
    if not result.written:
        print("ktools convert: nothing written (no Q&A pairs found)", file=sys.stderr)
    if result.errors:
        print(f"{len(result.errors)} input(s) skipped:", file=sys.stderr)
        for path, reason in result.errors:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0 if result.written else 1
