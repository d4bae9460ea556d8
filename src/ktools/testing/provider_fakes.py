"""Responders for `FakeOpenAIServer` that behave like real providers' models.

    thinking(scripted_responder, style="reasoning_content", tokens=(300, 800))

wraps any responder so every answer comes after 300-800 words of reasoning, sent the
way a given server sends it (`THINK_STYLES`):

    reasoning_content  vLLM / SGLang / DeepSeek: `message.reasoning_content`
    reasoning          OpenRouter, Ollama, newer vLLM: `message.reasoning`
    think_tags         `<think>…</think>` at the start of the content (Ollama, llama.cpp, raw vLLM)
    template_opened    Qwen3 / R1 templates open `<think>` in the prompt: content has only `</think>`
    harmony            gpt-oss channels passed through: `<|channel|>analysis<|message|>…` then `final`

Reasoning counts against `max_tokens` (the server's doing), so a small cap cuts the
answer off - or leaves none. The thought text deliberately looks like the answer
formats (numbered items, "Question:", "Score:"), so reasoning that leaked into the
parsers would show up as wrong rows. Lengths are a pure function of the request, so
a re-sent request gets the same answer (exact resume).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ktools.testing.fake_openai import Responder

THINK_STYLES = ("reasoning_content", "reasoning", "think_tags", "template_opened", "harmony")

_THOUGHT = ("Okay, let me think about what is asked. 1. Maybe start with the main rule? "
            "Question: is this the right fact? Answer: not sure yet. Score: 0 would be wrong here. "
            "Let me check the text again and count the points carefully before writing. ")


def _words_for(body: dict[str, Any], index: int, lo: int, hi: int) -> int:
    key = json.dumps(body.get("messages"), sort_keys=True) + f"#{index}"
    h = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16)
    return lo + h % (hi - lo + 1)


def _thought(words: int) -> str:
    base = _THOUGHT.split()
    return " ".join(base[i % len(base)] for i in range(words))


def thinking(responder: Responder, style: str = "reasoning_content", tokens: tuple[int, int] = (300, 800)) -> Responder:
    """`responder`'s answers preceded by `tokens` (min, max) words of reasoning in `style`."""
    if style not in THINK_STYLES:
        raise ValueError(f"unknown thinking style {style!r}; choose from {', '.join(THINK_STYLES)}")
    lo, hi = tokens

    def respond(body: dict[str, Any], index: int) -> dict[str, Any]:
        out = responder(body, index)
        answer = str(out.get("text", "")) if isinstance(out, dict) else str(out)
        thought = _thought(_words_for(body, index, lo, hi))
        if style in ("reasoning_content", "reasoning"):
            return {"text": answer, "reasoning": thought, "reasoning_field": style}
        if style == "think_tags":
            text = f"<think>\n{thought}\n</think>\n\n{answer}"
        elif style == "template_opened":
            text = f"{thought}\n</think>\n\n{answer}"
        else:
            text = (f"<|channel|>analysis<|message|>{thought}<|end|>"
                    f"<|start|>assistant<|channel|>final<|message|>{answer}<|return|>")
        return {"text": text}

    return respond


def json_schema_honoured(responder: Responder) -> Responder:
    """A server that holds the model to `response_format` json_schema (vLLM guided decoding,
    OpenAI structured outputs): `responder`'s tagged answer comes back as JSON of the named
    schema. Requests without a schema get the plain answer. (The same responder without this
    wrapper is a server that ignores the schema.)"""
    from ktools.generate.parsing import parse_judge, parse_list, parse_qa_pairs, parse_questions

    def respond(body: dict[str, Any], index: int) -> Any:
        out = responder(body, index)
        fmt = body.get("response_format") or {}
        if fmt.get("type") != "json_schema":
            return out
        text = str(out.get("text", "")) if isinstance(out, dict) else str(out)
        name = fmt["json_schema"]["name"]
        if name == "questions":
            data: dict[str, Any] = {"questions": parse_questions(text)}
        elif name == "facts":
            data = {"facts": parse_list(text)}
        elif name == "qa_pairs":
            data = {"pairs": [{"question": p["question"], "answer": p["response"]} for p in parse_qa_pairs(text)]}
        elif name == "judge_score":
            scale = max(fmt["json_schema"]["schema"]["properties"]["score"]["enum"])
            score, reason = parse_judge(text, scale)
            data = {"score": round((score or 0.0) * scale), "reason": reason}
        else:
            return out
        return json.dumps(data)

    return respond


# How each provider's endpoint behaves, as far as ktools can tell: server options for
# FakeOpenAIServer, how its thinking models send reasoning (None: not a thinking model),
# and whether it holds answers to a JSON schema. Rate limits are per account, so they are
# an option of the test, not of the profile.
PROVIDER_PROFILES: dict[str, dict[str, Any]] = {
    "vllm-qwen3": {"provider": "vllm", "server": {}, "thinking": "reasoning_content", "schema": True},
    "vllm-r1-raw": {"provider": "vllm", "server": {}, "thinking": "template_opened", "schema": True},
    "openai-gpt-oss": {"provider": "openai", "server": {}, "thinking": "harmony", "schema": True,
                       "model": "openai/gpt-oss-20b"},
    "ollama-qwen3": {"provider": "ollama", "server": {"supports_n": False}, "thinking": "reasoning",
                     "schema": True},
    "anthropic": {"provider": "anthropic", "server": {"supports_n": False}, "thinking": None, "schema": False},
    "gemini": {"provider": "gemini", "server": {}, "thinking": "think_tags", "schema": False},
}


def provider_responder(profile: str, responder: Responder) -> Responder:
    """`responder` as the profile's model would answer through that provider."""
    spec = PROVIDER_PROFILES[profile]
    if spec["schema"]:  # the schema binds the answer; the reasoning before it stays free text
        responder = json_schema_honoured(responder)
    if spec["thinking"]:
        responder = thinking(responder, spec["thinking"])
    return responder
