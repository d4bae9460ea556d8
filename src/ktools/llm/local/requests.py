"""What the HTTP front end hands to a generation engine, and what it gets back.

Kept free of torch and llama.cpp imports so the server and both engines
(`engine.BatchEngine` on transformers, `llama_backend.LlamaEngine` on llama.cpp)
share one request type without the front end loading either library.
"""

from __future__ import annotations

from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any


class EngineStopped(RuntimeError):
    pass


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    completion_tokens: int


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # response_format: a GBNF grammar (llama.cpp) or a jsonschema_guide.JsonSchemaGuide (transformers)
    grammar: Any = None
    future: Future = field(default_factory=Future, repr=False)
    cancelled: bool = False
    results: dict[int, Completion] = field(default_factory=dict, repr=False)  # sample -> completion

    def cancel(self) -> None:
        """The client went away: the engine drops the request at its next step."""
        self.cancelled = True


@dataclass
class GenerationResult:
    completions: list[Completion]
    prompt_tokens: int


def settle(future: Future, *, result: Any = None, exception: BaseException | None = None) -> None:
    """Resolve a future unless the HTTP side cancelled it meanwhile (its client left)."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass
