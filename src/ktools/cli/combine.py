"""`ktools combine`: per-document Q&A files (or step-03 output) -> one `training_data.json`.

    ktools combine --qa-dir data/qa_results --output-file data/results/training_data.json
    ktools combine --qa-dir output/step_03            # ktools' own gen.jsonl, grouped by source

Defaults: --qa-dir from GENERATOR_OUTPUT_DIR, else output/step_03; --output-file from
GENERATOR_OUTPUT_FILE, else `<qa-dir>/training_data.json`. Files that are not complete
(status other than "completed": partial, failed, empty, in_progress, interrupted) or not
valid are skipped and listed; exit status 1 then. A step-03 folder whose report.json is
not "complete", or inputs holding 0 pairs, are refused (exit 2, nothing written).
`--allow-partial` takes what there is instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n", 2)[2]
    parser.add_argument("--qa-dir", help="folder of *_qa.json files, or a step-03 output folder "
                        "(env GENERATOR_OUTPUT_DIR; default output/step_03)")
    parser.add_argument("--output-file", help="combined JSON to write (env GENERATOR_OUTPUT_FILE; "
                        "default <qa-dir>/training_data.json)")
    parser.add_argument("--allow-partial", "--include-incomplete", dest="allow_partial", action="store_true",
                        help="also take documents whose generation did not complete (partial, failed, empty, "
                             "interrupted) and write an empty result rather than refuse")


def run(args: argparse.Namespace) -> int:
    from ktools.compat.training_data_generator.qa_files import COMBINED_FILE_NAME, QAInputError
    from ktools.compat.training_data_generator.qa_inputs import combine_qa_dir
    from ktools.compat.training_data_generator.settings import load_tdg_settings
    from ktools.config import ConfigError, load_settings
    from ktools.paths import OutputPaths

    try:
        tdg = load_tdg_settings()
        qa_dir = Path(args.qa_dir or tdg.output_dir or OutputPaths.from_settings(load_settings()).step(3))
        if qa_dir.is_file() and not (args.output_file or tdg.output_file):
            raise QAInputError(f"--qa-dir {qa_dir} is a file, so there is no folder to write "
                               f"{COMBINED_FILE_NAME} into; pass a folder, or --output-file")
        output = Path(args.output_file or tdg.output_file or qa_dir / COMBINED_FILE_NAME)
        result = combine_qa_dir(qa_dir, output, include_incomplete=args.allow_partial)
    except (QAInputError, ConfigError) as exc:
        print(f"ktools combine: {exc}", file=sys.stderr)
        return 2
    meta = result.combined["metadata"]
    print(f"wrote {result.output_file}: {meta['total_qa_pairs']} Q&A pairs from {meta['num_documents']} "
          f"documents")
    for doc in result.combined["documents"]:
        print(f"  {doc['source_file']}: {doc['qa_pairs_count']} pairs")
    if result.errors:
        print(f"{len(result.errors)} input(s) skipped:", file=sys.stderr)
        for path, reason in result.errors:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0
