"""A scripted teacher for tests and benchmarks: well-formed replies to ktools' own prompts.

`scripted_responder(body, index)` has the `FakeOpenAIServer` responder signature
(`python -m ktools.testing.fake_openai --responder ktools.generate.scripted:scripted_responder`).
Replies are a pure function of the request and the sample index, so a request sent
twice (after a crash) gets the same answer - which is what lets the resume test
compare an interrupted run byte for byte with an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# Replies state no number or code their document lacks (step 04 drops rows that do, as
# invented facts), so tags are letters and counts are words.
_ORDINALS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _tag(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:6].translate(str.maketrans("0123456789", "ghijklmnop"))


def _ordinal(k: int) -> str:
    return _ORDINALS[k] if k < len(_ORDINALS) else "another"


def _number(pattern: str, text: str, default: int) -> int:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else default


def _section(text: str, label: str) -> str:
    m = re.search(rf"{label}:\n(.*?)(?:\n\n|$)", text, re.S)
    return m.group(1).strip() if m else ""


def _document_words(user: str) -> list[str]:
    """Content words of the prompt's document (or fact), so replies are grounded in it."""
    from ktools.generate.parsing import content_words

    source = _section(user, "Document") or _section(user, "Fact") or user
    m = re.search(r"Fact: (.*)", user)
    if m and not _section(user, "Document"):
        source = m.group(1)
    return sorted(content_words(source)) or ["it"]


def reply_for(user: str, index: int = 0) -> str:
    """The scripted reply to a user message of one of ktools' prompts."""
    tag = _tag(user)
    if user.rstrip().endswith(("Extractive summary:", "Detailed summary:")):
        words = _section(user, "Document").split()[:30]
        return f"Summary {_ordinal(index)} [{tag}]: " + " ".join(words)
    if "different questions about the text" in user:
        n = _number(r"Write (\d+) different questions", user, 3)
        from ktools.generate.parsing import content_words

        words = sorted(content_words(_section(user, "Text"))) or ["it"]
        return "\n".join(f"{k + 1}. What does point {_ordinal(k)} of summary {tag} state about {words[k % len(words)]}?"
                         for k in range(n))
    if user.startswith("Answer the question using only the text"):
        return f"Point {tag} states what the text says about it."
    if user.startswith("List the key facts"):
        words = _document_words(user)
        return "\n".join(f"{k + 1}. Fact {_ordinal(k)} of chunk {tag} concerns {words[k % len(words)]}."
                         for k in range(4))
    if "question and answer pairs" in user:
        n = _number(r"Write (\d+) question and answer pairs", user, 2)
        words = _document_words(user)
        return "\n".join(f"Question: What is item {_ordinal(k)} of {tag}?\n"
                         f"Answer: Item {_ordinal(k)} of {tag} concerns {words[k % len(words)]}." for k in range(n))
    if 'Reply with "Score: 2"' in user:
        return "Score: 2\nReason: the answer addresses the question."
    if 'Reply with "Score: 1"' in user:
        return "Score: 1\nReason: supported by the document."
    return f"Unscripted reply {_ordinal(index)} [{tag}]."


def scripted_responder(body: dict[str, Any], index: int) -> str:
    messages = body.get("messages") or [{}]
    return reply_for(str(messages[-1].get("content", "")), index)


class ScriptedClient:
    """An in-process stand-in for TeacherClient (no HTTP): `achat` answers with `reply(user, index)`.

    `fail(user) -> str | None` makes a request fail with TeacherError(message);
    `fewer` caps the choices returned per request (a provider ignoring n);
    `requests` records (messages, params, n) of every call.
    """

    def __init__(self, model: str = "scripted-model", *, max_concurrency: int = 8, reply=None,
                 fail=None, fewer: int | None = None, latency: float = 0.0):
        self.model = model
        self.max_concurrency = max_concurrency
        self.reply = reply or reply_for
        self.fail = fail
        self.fewer = fewer
        self.latency = latency
        self.requests: list[tuple[list[dict[str, str]], Any, int]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def achat(self, messages, params=None, n: int = 1):
        import asyncio

        from ktools.llm.types import ChatResult, Choice, TeacherError, Usage

        self.requests.append((messages, params, n))
        user = str(messages[-1]["content"])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        if self.fail is not None:
            error = self.fail(user)
            if error:
                raise TeacherError(error, status=500)
        count = min(n, self.fewer) if self.fewer else n
        choices = []
        for i in range(count):
            out = self.reply(user, i)
            if isinstance(out, dict):
                choices.append(Choice(out.get("text", ""), out.get("finish_reason", "stop"), out.get("reasoning")))
            else:
                choices.append(Choice(out, "stop"))
        return ChatResult(choices=choices, model=self.model,
                          usage=Usage(len(user.split()), sum(len(c.text.split()) for c in choices)))

    async def aclose(self) -> None:
        return None
