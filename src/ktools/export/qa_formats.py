"""Convert per-document Q&A to training formats (the engine of `ktools convert`).

| format          | file per document              | record                                     |
|-----------------|--------------------------------|--------------------------------------------|
| `alpaca`        | `{document}_trainingdata.jsonl`| `{"text": "Below is an instruction ..."}`  |
| `alpaca-fields` | `{document}_alpaca.jsonl`      | `{"instruction", "input", "output"}`       |
| `messages`      | `{document}_messages.jsonl`    | `{"messages": [...], "metadata": {...}}`   |
| `qna-yaml`      | `{document}_qna.yaml`          | InstructLab-style qna.yaml for review      |

`output_file` names the file for a single document; with several documents the JSONL
formats write them all into that one file (a qna.yaml describes one document, so
`qna-yaml` refuses).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.compat.training_data_generator.qa_files import QA_FILE_SUFFIX, QAInputError, document_stem
from ktools.compat.training_data_generator.qa_inputs import load_qa_input
from ktools.export.alpaca import alpaca_fields_record, alpaca_text_record
from ktools.export.messages import messages_record
from ktools.export.qna_yaml import dump_qna_yaml, qna_yaml_document
from ktools.io import write_atomic, write_jsonl

log = logging.getLogger(__name__)

FORMATS = ("alpaca", "alpaca-fields", "messages", "qna-yaml")
FILE_SUFFIX = {
    "alpaca": "_trainingdata.jsonl",
    "alpaca-fields": "_alpaca.jsonl",
    "messages": "_messages.jsonl",
    "qna-yaml": "_qna.yaml",
}


@dataclass
class ConvertOptions:
    system_message: str | None = None  # messages: optional system turn
    with_context: bool = False  # alpaca-fields: put the chunk into `input`
    created_by: str = "ktools"  # qna-yaml
    domain: str | None = None
    document_outline: str | None = None


@dataclass
class ConvertResult:
    written: list[tuple[Path, int]] = field(default_factory=list)  # (file, records)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)

    @property
    def records(self) -> int:
        return sum(n for _, n in self.written)


def output_stem(qa_name: str) -> str:
    if qa_name.endswith(QA_FILE_SUFFIX):
        return qa_name[: -len(QA_FILE_SUFFIX)]
    return document_stem(qa_name)


def _record_maker(fmt: str, options: ConvertOptions) -> Callable[[dict[str, Any]], dict[str, Any]]:
    if fmt == "alpaca":
        return alpaca_text_record
    if fmt == "alpaca-fields":
        return lambda pair: alpaca_fields_record(pair, with_context=options.with_context)
    if fmt == "messages":
        return lambda pair: messages_record(pair, system_message=options.system_message)
    raise ValueError(fmt)


def _resolve(output_dir: Path, output_file: str | Path) -> Path:
    candidate = Path(output_file)
    return candidate if candidate.is_absolute() or candidate.parent != Path(".") else output_dir / candidate


def convert_qa(input_path: str | Path, output_dir: str | Path, fmt: str = "alpaca", *,
               output_file: str | Path | None = None, options: ConvertOptions | None = None,
               include_incomplete: bool = True) -> ConvertResult:
    if fmt not in FORMATS:
        raise QAInputError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    options = options or ConvertOptions()
    loaded = load_qa_input(input_path, include_incomplete=include_incomplete)
    result = ConvertResult(errors=list(loaded.errors))
    output_dir = Path(output_dir)
    documents = [(name, doc) for name, doc in loaded.documents if doc.get("training_pairs")]
    for name, doc in loaded.documents:
        if not doc.get("training_pairs"):
            log.warning("%s has no Q&A pairs; nothing to convert", name)

    if fmt == "qna-yaml":
        if output_file is not None and len(documents) > 1:
            raise QAInputError(
                f"{input_path}: {len(documents)} documents found, but a qna.yaml describes one document. "
                "Drop --output-file to write one `{document}_qna.yaml` per document.")
        for name, doc in documents:
            target = _resolve(output_dir, output_file) if output_file else \
                output_dir / f"{output_stem(name)}{FILE_SUFFIX[fmt]}"
            data = qna_yaml_document(doc, created_by=options.created_by, domain=options.domain,
                                     document_outline=options.document_outline)
            write_atomic(target, dump_qna_yaml(data))
            result.written.append((target, sum(len(e["questions_and_answers"]) for e in data["seed_examples"])))
        return result

    make = _record_maker(fmt, options)
    if output_file is not None:
        records = [make(pair) for _, doc in documents for pair in doc["training_pairs"]]
        if documents:
            target = write_jsonl(_resolve(output_dir, output_file), records)
            result.written.append((target, len(records)))
        return result
    for name, doc in documents:
        target = output_dir / f"{output_stem(name)}{FILE_SUFFIX[fmt]}"
        records = [make(pair) for pair in doc["training_pairs"]]
        write_jsonl(target, records)
        result.written.append((target, len(records)))
    return result
