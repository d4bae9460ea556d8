"""Eval sets: JSONL rows with `question` and `answer` (+ optional `id`, `section`, `kind`, `key_facts`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ktools.io import iter_jsonl


class EvalSetError(ValueError):
    """An eval-set row cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class EvalItem:
    id: str
    question: str
    answer: str
    section: str | None = None
    kind: str | None = None
    key_facts: tuple[str, ...] = field(default_factory=tuple)
    # Multiple-choice options (the right one is key_facts[0]); empty: built from the set's other facts.
    choices: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["key_facts"] = list(self.key_facts)
        data["choices"] = list(self.choices)
        return data


def parse_item(row: dict[str, Any], where: str, index: int) -> EvalItem:
    for name in ("question", "answer"):
        value = row.get(name)
        if not isinstance(value, str) or not value.strip():
            raise EvalSetError(f"{where}: field {name!r} must be a non-empty string "
                               "(an eval set is JSONL with at least 'question' and 'answer')")
    facts = row.get("key_facts") or []
    if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
        raise EvalSetError(f"{where}: field 'key_facts' must be a list of strings")
    choices = row.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise EvalSetError(f"{where}: field 'choices' must be a list of strings (the options of a "
                           "multiple-choice question, one of them equal to key_facts[0])")
    return EvalItem(id=str(row.get("id") or f"item{index:04d}"), question=row["question"].strip(),
                    answer=row["answer"].strip(), section=row.get("section"), kind=row.get("kind"),
                    key_facts=tuple(f for f in facts if f.strip()), choices=tuple(c for c in choices if c.strip()))


def load_eval_set(path: str | Path, limit: int | None = None) -> list[EvalItem]:
    """The first `limit` items of an eval set (all when None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"eval set {path} not found")
    items: list[EvalItem] = []
    for line_no, row in enumerate(iter_jsonl(path), start=1):
        if limit is not None and len(items) >= limit:
            break
        items.append(parse_item(row, f"{path}, line {line_no}", line_no))
    if not items:
        raise EvalSetError(f"{path}: the eval set is empty")
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise EvalSetError(f"{path}: duplicate ids {dupes}; every 'id' must be unique")
    return items
