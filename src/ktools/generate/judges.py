"""Judges: question verification, faithfulness against the RAW chunk, relevancy.

Each judge is one prompt (`ktools/prompts/judge_*.yaml`) answered with a score on the
prompt's `scale` (0..1 or 0..2), normalised to 0..1 and compared with the judge's
threshold from GenerationOptions. A reply with no recognisable score rejects the row
(reason "judge reply unparsable", raw reply kept) rather than letting it through
unchecked. Judges run in parallel for a row; their scores land in the row fields
judge_question / judge_faithfulness / judge_relevancy (null when a judge is off).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ktools.generate.parsing import parse_judge
from ktools.generate.structured import parse_structured_judge


@dataclass(frozen=True)
class JudgeVerdict:
    judge: str
    score: float | None
    passed: bool
    reason: str
    raw: str


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    prompt: str
    threshold: float
    scale: int


async def judge_row(specs: list[JudgeSpec], call: Callable[[JudgeSpec], Awaitable[str]]) -> list[JudgeVerdict]:
    """Run every judge on one row (in parallel); `call(spec)` returns the judge's reply text."""
    replies = await asyncio.gather(*(call(spec) for spec in specs))
    return judge_verdicts(specs, list(replies))


def judge_verdicts(specs: list[JudgeSpec], replies: list[str]) -> list[JudgeVerdict]:
    """Verdicts from the judges' reply texts (in the order of `specs`)."""
    verdicts = []
    for spec, reply in zip(specs, replies, strict=True):
        # A JSON answer (structured output) first; a server that ignored the schema answers in text.
        score, reason = parse_structured_judge(reply, spec.scale) or parse_judge(reply, spec.scale)
        if score is None:
            verdicts.append(JudgeVerdict(spec.name, None, False, "judge reply unparsable", reply))
        else:
            verdicts.append(JudgeVerdict(spec.name, round(score, 4), score >= spec.threshold - 1e-9, reason, reply))
    return verdicts


def judge_fields(verdicts: list[JudgeVerdict], all_judges: tuple[str, ...]) -> dict[str, Any]:
    by_name = {v.judge: v.score for v in verdicts}
    return {f"judge_{name}": by_name.get(name) for name in all_judges}
