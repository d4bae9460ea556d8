"""Chat `messages` records (one JSON object per line), loadable with `datasets.load_dataset("json")`.

Metadata values keep one type per key across rows (strings or null, chunk_index an int
or null) so Arrow can infer a single schema for the whole file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ktools.training_rows import chat_messages


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def messages_record(pair: Mapping[str, Any], *, system_message: str | None = None,
                    with_metadata: bool = True) -> dict[str, Any]:
    answer = pair.get("answer", pair.get("response"))
    messages = chat_messages(str(pair["question"]).strip(), str(answer).strip(), system=system_message)
    record: dict[str, Any] = {"messages": messages}
    if with_metadata:
        index = pair.get("chunk_index")
        record["metadata"] = {
            "source_file": _str_or_none(pair.get("source_file")),
            "file_name": _str_or_none(pair.get("file_name")),
            "chunk_id": _str_or_none(pair.get("chunk_id")),
            "chunk_index": index if isinstance(index, int) else None,
            "generator": _str_or_none(pair.get("generator")),
        }
    return record
