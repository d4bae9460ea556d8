"""Exports of generated Q&A in the layouts people already use.

- `qa_files`: the Training Data Generator's per-document `{document}_qa.json` and the
  combined `training_data.json` (built from its own files or from ktools' step-03
  `gen.jsonl`, grouped by source document).
- `alpaca`: Alpaca JSONL, the `{"text": ...}` form and the instruction/input/output form.
- `messages`: chat `messages` JSONL.
- `qna_yaml`: an InstructLab-style `qna.yaml` for human review.
- `inputs`: reads any of the above inputs (file or folder) into per-document Q&A.
"""

from ktools.export.alpaca import ALPACA_TEMPLATE, alpaca_fields_record, alpaca_text, alpaca_text_record
from ktools.export.inputs import CombineResult, LoadedQA, combine_qa_dir, load_qa_input
from ktools.export.messages import messages_record
from ktools.export.qa_files import (
    QAInputError,
    build_qa_document,
    combine_qa_documents,
    qa_file_name,
    read_qa_file,
    validate_qa_document,
    write_qa_file,
)
from ktools.export.qna_yaml import dump_qna_yaml, qna_yaml_document
from ktools.export.step03 import qa_documents_from_gen_rows

__all__ = [
    "ALPACA_TEMPLATE",
    "CombineResult",
    "LoadedQA",
    "QAInputError",
    "alpaca_fields_record",
    "alpaca_text",
    "alpaca_text_record",
    "build_qa_document",
    "combine_qa_dir",
    "combine_qa_documents",
    "dump_qna_yaml",
    "load_qa_input",
    "messages_record",
    "qa_documents_from_gen_rows",
    "qa_file_name",
    "qna_yaml_document",
    "read_qa_file",
    "validate_qa_document",
    "write_qa_file",
]
