"""Structured output: a JSON schema for the list-shaped stages and the judges, where the server
can hold the model to it; the tag/list parsers stay the fallback.

Stages with a schema: questions (`{"questions": [str]}`), facts (`{"facts": [str]}`), Q&A
pairs (`{"pairs": [{"question", "answer"}]}`) and judge scores (`{"score": int, "reason": str}`).
Free-text stages (summaries, answers) have none: a schema would only wrap the text.

Sent as OpenAI's `response_format: {"type": "json_schema", ...}`, which OpenAI (structured
outputs), vLLM (guided decoding), Gemini's OpenAI layer and Ollama's /v1 (mapped to its
`format`) understand. Capability per provider (`CAPABILITY`); STRUCTURED_OUTPUT = auto
(use it where the provider has it), on (send it whatever the provider), off (default:
nothing changes in the requests, so stored answers of earlier runs keep replaying).

Whatever comes back is parsed as JSON of that shape first; a server that ignored the
schema (or a model that broke out of it) answers in the prompt's own format, which the
usual parsers read - so turning it on never loses rows. Parse failures per stage are in
the yield report (`unparsable`), and `structured` counts the answers read as JSON.
"""

from __future__ import annotations

import json
from typing import Any

# Provider -> does its OpenAI-compatible endpoint honour response_format json_schema?
CAPABILITY: dict[str, bool] = {
    "openai": True,     # structured outputs
    "vllm": True,       # guided decoding (outlines / xgrammar)
    "gemini": True,     # OpenAI compatibility layer
    "ollama": True,     # /v1 maps response_format to Ollama's `format`
    "anthropic": False,  # the compatibility layer ignores response_format
    # The embedded teacher masks tokens by the schema (llm/local/jsonschema_guide.py), but a 135M
    # model often runs out of max_tokens inside a long string, so `auto` leaves it off; `on` sends it.
    "local": False,
}
MODES = ("auto", "on", "off")

_STRINGS = {"type": "array", "items": {"type": "string"}}
SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    # parser name -> (schema name, schema)
    "questions": ("questions", {"type": "object", "properties": {"questions": _STRINGS},
                                "required": ["questions"], "additionalProperties": False}),
    "list": ("facts", {"type": "object", "properties": {"facts": _STRINGS},
                       "required": ["facts"], "additionalProperties": False}),
    "qa_pairs": ("qa_pairs", {"type": "object", "properties": {"pairs": {"type": "array", "items": {
        "type": "object", "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
        "required": ["question", "answer"], "additionalProperties": False}}},
        "required": ["pairs"], "additionalProperties": False}),
}


def judge_schema(scale: int) -> tuple[str, dict[str, Any]]:
    return ("judge_score", {"type": "object", "properties": {
        "score": {"type": "integer", "enum": list(range(scale + 1))}, "reason": {"type": "string"}},
        "required": ["score", "reason"], "additionalProperties": False})


def enabled(mode: str | None, provider: str | None) -> bool:
    if mode == "on":
        return True
    if mode == "auto":
        return CAPABILITY.get((provider or "").lower(), False)
    return False


def response_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The extra request fields asking for `schema`."""
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": name, "schema": schema, "strict": True}}}


def _json_object(text: str) -> dict[str, Any] | None:
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    if not body.startswith("{"):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _texts(values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def parse_structured(parser: str, text: str) -> list[Any] | None:
    """The items of a schema-shaped JSON answer for `parser`, or None (not that JSON: use the fallback)."""
    data = _json_object(text)
    if data is None:
        return None
    if parser == "questions" and "questions" in data:
        return _texts(data["questions"])
    if parser == "list" and "facts" in data:
        return _texts(data["facts"])
    if parser == "qa_pairs" and "pairs" in data and isinstance(data["pairs"], list):
        pairs = []
        for pair in data["pairs"]:
            if isinstance(pair, dict):
                q, a = str(pair.get("question") or "").strip(), str(pair.get("answer") or "").strip()
                if q and a:
                    pairs.append({"question": q, "response": a})
        return pairs
    return None


def parse_structured_judge(text: str, scale: int) -> tuple[float, str] | None:
    """(score 0..1, reason) from a judge's JSON answer, or None (use parse_judge)."""
    data = _json_object(text)
    if data is None or not isinstance(data.get("score"), (int, float)) or isinstance(data.get("score"), bool):
        return None
    score = float(data["score"])
    if not 0 <= score <= scale or scale <= 0:
        return None
    return score / scale, str(data.get("reason") or "").strip()[:500]
