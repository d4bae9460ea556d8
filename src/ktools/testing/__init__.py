"""Test helpers shipped with ktools (usable by users' own tests too).

`FakeOpenAIServer`: a scripted OpenAI-compatible server on 127.0.0.1 with
adjustable latency and injected faults, for testing and benchmarking code that
talks to a teacher without a real model (see `ktools.testing.fake_openai`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ktools.testing.fake_openai import FakeOpenAIServer, default_responder

__all__ = ["FakeOpenAIServer", "default_responder"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m ktools.testing.fake_openai` does not import the module twice.
    if name in __all__:
        from ktools.testing import fake_openai

        return getattr(fake_openai, name)
    raise AttributeError(f"module 'ktools.testing' has no attribute {name!r}")
