"""Plain data types shared by the teacher client, the response cache and the engine.

Kept free of the `openai` package so the cache and the engine can use them
without importing the client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SamplingParams:
    """Everything besides the messages that changes what the teacher returns.

    Part of the cache key: changing any of these re-asks exactly the affected requests.
    `extra` carries provider-specific knobs (top_k, repetition_penalty, ...), sent
    as `extra_body`.
    """

    temperature: float = 0.7
    max_tokens: int = 1024
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    extra: tuple[tuple[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop) if self.stop else None
        d["extra"] = dict(self.extra)
        return d


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Choice:
    """One sample. `reasoning` holds reasoning content where the provider returns it
    separately (vLLM/DeepSeek `reasoning_content`, or a stripped <think> block)."""

    text: str
    finish_reason: str | None = None
    reasoning: str | None = None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass
class ChatResult:
    choices: list[Choice]
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    # How many HTTP requests were sent for this result (n fan-out may need several).
    requests_sent: int = 1


class TeacherError(RuntimeError):
    """A teacher request failed for good (after retries). `status` is the HTTP status if any."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
