"""Load step 03's generated datasets (`output/step_03/<generator>/gen.jsonl`).

Any subset may be present: a missing generator is reported, not fatal; none at all
is a `MixingInputError` telling the user to run step 03. Every row is checked for
the fields mixing needs; a bad row raises an error naming file, line and field.
Optional fields get defaults (`raw_document` = `document`, `item_id` derived from
the document text, …) so older step-03 files still mix.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.io import JsonlError, iter_jsonl
from ktools.paths import GENERATORS, OutputPaths

log = logging.getLogger(__name__)

SUMMARY_GENERATORS = ("extractive_summary", "detailed_summary")
# Which generators train with their document in the user turn.
WITH_DOCUMENT = {"extractive_summary": True, "detailed_summary": True,
                 "key_facts_to_qa": False, "document_based_qa": True}
REQUIRED_FIELDS = ("question", "response", "document", "chunk_id")


class MixingInputError(ValueError):
    """Step 03 output is missing or unusable; the message says what to do."""


@dataclass
class GeneratedData:
    datasets: dict[str, list[dict[str, Any]]]
    files: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for generator in GENERATORS:
            data = self.datasets.get(generator)
            status = "missing" if generator in self.missing else ("empty" if generator in self.empty else "ok")
            rows.append({"generator": generator, "status": status, "rows": len(data or []),
                         "chunks": len({r["chunk_id"] for r in data or []}),
                         "items": len({r["item_id"] for r in data or []}),
                         "file": self.files.get(generator, "")})
        return rows


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def normalise_row(row: dict[str, Any], generator: str, path: Path, line: int) -> dict[str, Any]:
    for name in REQUIRED_FIELDS:
        if name not in row or row[name] is None:
            raise MixingInputError(
                f"{path}, record {line}: missing field {name!r}. Step 03 rows need "
                f"{', '.join(REQUIRED_FIELDS)}; re-run step 03 or fix that record.")
        if not isinstance(row[name], str):
            raise MixingInputError(
                f"{path}, record {line}: field {name!r} must be a string, got {type(row[name]).__name__}.")
    out = dict(row)
    out["generator"] = generator
    out.setdefault("raw_document", row["document"])
    out["raw_document"] = out["raw_document"] or row["document"]
    out["document_outline"] = row.get("document_outline") or ""
    out["source"] = row.get("source") or ""
    out["domain"] = row.get("domain") or ""
    out["reasoning"] = row.get("reasoning") or None
    out["truncated"] = bool(row.get("truncated", False))
    if not row.get("item_id"):
        # Older files: the summary / fact list text identifies the item well enough.
        basis = row.get("key_fact") or row["document"]
        out["item_id"] = f"{row['chunk_id']}/{generator}/{_short_hash(basis)}"
    out["item_id"] = str(out["item_id"])
    out["chunk_id"] = str(out["chunk_id"])
    return out


def load_generated(paths: OutputPaths, generators: tuple[str, ...] = GENERATORS) -> GeneratedData:
    datasets: dict[str, list[dict[str, Any]]] = {}
    data = GeneratedData(datasets)
    for generator in generators:
        path = paths.generated(generator)
        if not path.is_file():
            data.missing.append(generator)
            log.warning("step 03 output for %s not found at %s; mixing without it", generator, path)
            continue
        data.files[generator] = str(path)
        try:
            rows = [normalise_row(r, generator, path, i + 1) for i, r in enumerate(iter_jsonl(path))]
        except JsonlError as exc:
            raise MixingInputError(str(exc)) from None
        if not rows:
            data.empty.append(generator)
            log.warning("%s is empty; mixing without %s", path, generator)
            continue
        datasets[generator] = rows
    if not datasets:
        raise MixingInputError(
            f"No generated data found under {paths.step(3)} (looked for "
            f"{', '.join(g + '/gen.jsonl' for g in generators)}). Run step 03 "
            "(03_Knowledge_Generation notebook or `ktools generate`) first.")
    return data
