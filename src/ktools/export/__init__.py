"""Exports of generated Q&A in the layouts trainers and reviewers use (`ktools convert`).

- `alpaca`: Alpaca JSONL, the `{"text": ...}` form and the instruction/input/output form.
- `messages`: chat `messages` JSONL.
- `qna_yaml`: an InstructLab-style `qna.yaml` for human review.
- `convert`: any Q&A input (per-document `{document}_qa.json`, `training_data.json`, step-03
  `gen.jsonl`) to one of those.

The per-document Q&A files themselves (`{document}_qa.json`, `training_data.json`, reading
them back) belong to the Training Data Generator layer, `ktools.compat.training_data_generator`;
their functions are re-exported here, where earlier versions defined them.
"""

from ktools.compat.training_data_generator.qa_documents import qa_documents_from_gen_rows
from ktools.compat.training_data_generator.qa_files import (
    QAInputError,
    build_qa_document,
    combine_qa_documents,
    qa_file_name,
    read_qa_file,
    validate_qa_document,
    write_qa_file,
)
from ktools.compat.training_data_generator.qa_inputs import (
    CombineResult,
    LoadedQA,
    combine_qa_dir,
    load_qa_input,
)
from ktools.export.alpaca import ALPACA_TEMPLATE, alpaca_fields_record, alpaca_text, alpaca_text_record
from ktools.export.messages import messages_record
from ktools.export.qna_yaml import dump_qna_yaml, qna_yaml_document

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
