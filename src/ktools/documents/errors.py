"""Errors for bad documents: each names the source, where in it (page/line) and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class DocumentError(Exception):
    """A source that cannot be converted/chunked/seeded, with location and a hint."""

    def __init__(self, source: str, problem: str, hint: str = "", *, page: int | None = None,
                 line: int | None = None, field: str | None = None):
        self.source = str(source)
        self.problem = problem
        self.hint = hint
        self.page = page
        self.line = line
        self.field = field
        super().__init__(str(self))

    @property
    def location(self) -> str:
        parts = [self.source]
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        text = f"{self.location}: {self.problem}"
        return f"{text}. Hint: {self.hint}" if self.hint else text

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "page": self.page, "line": self.line, "field": self.field,
                "problem": self.problem, "hint": self.hint}


class SeedValidationError(ValueError):
    """The seed dataset has bad records; `problems` lists every (record, field, problem)."""

    def __init__(self, problems: list[SeedProblem]):
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s) in the seed data:\n{shown}{more}")


@dataclass(frozen=True)
class SeedProblem:
    record: int  # 1-based line in seed_data.jsonl
    chunk_id: str
    field: str
    problem: str

    def __str__(self) -> str:
        return f"record {self.record} (chunk_id {self.chunk_id!r}), field {self.field!r}: {self.problem}"


def format_errors(errors: list[DocumentError]) -> str:
    """The end-of-run list of failed sources, one per line."""
    if not errors:
        return "no errors"
    return f"{len(errors)} source(s) failed:\n" + "\n".join(f"  - {e}" for e in errors)
