"""The teacher: an OpenAI-compatible client (`TeacherClient`), provider presets and shared types.

`TeacherClient` and `run_sync` are imported lazily so that `ktools.llm.types`
(used by the cache and the engine) does not pull in the `openai` package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ktools.llm.types import ChatResult, Choice, SamplingParams, TeacherError, Usage

if TYPE_CHECKING:
    from ktools.llm.client import TeacherClient, run_sync

__all__ = ["ChatResult", "Choice", "SamplingParams", "TeacherClient", "TeacherError", "Usage", "run_sync"]


def __getattr__(name: str) -> Any:
    if name in {"TeacherClient", "run_sync"}:
        from ktools.llm import client

        return getattr(client, name)
    raise AttributeError(f"module 'ktools.llm' has no attribute {name!r}")
