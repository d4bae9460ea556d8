"""The OpenAI chat-completions wire format: request validation and response bodies.

Pure functions over dicts (no model, no sockets) so the whole contract is unit-tested
fast. Choices made where OpenAI's API leaves room, documented in 00_Setup/README.md:

- `model`: any name is accepted and the embedded model answers; responses carry the
  served id ("SmolLM2-135M-Instruct"). Clients configured with another name keep working.
- `max_tokens` / `max_completion_tokens`: default 512; when prompt + max_tokens exceed
  the context window, generation stops at the window with finish_reason "length"
  (only a prompt that does not fit at all is a 400).
- `stream: true`, `logprobs: true` and tools are rejected with a 400 (not implemented).
- `response_format`: `{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema",
  "json_schema": {"name": ..., "schema": {...}}}`; the llama.cpp backend enforces it with a
  grammar (`structured.py`), the transformers backend answers 400 (it cannot constrain).
- Unknown fields are ignored, as OpenAI-compatible servers commonly do.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_TOKENS = 512
MAX_N = 64
MAX_STOP_STRINGS = 16
ROLES = ("system", "user", "assistant", "tool", "developer")


class RequestError(Exception):
    """A client error; rendered as OpenAI's error object with this HTTP status."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None, type_: str = "invalid_request_error"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type_

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type_=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, str]]
    model: str
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int | None
    response_format: dict[str, Any] | None = None  # None or a validated json_object / json_schema


def parse_chat_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if body.get("stream"):
        raise RequestError("streaming is not supported by the embedded teacher; send stream=false",
                           param="stream", code="unsupported_parameter")
    if body.get("logprobs"):
        raise RequestError("logprobs are not supported by the embedded teacher", param="logprobs",
                           code="unsupported_parameter")
    if body.get("tools") or body.get("functions"):
        raise RequestError("tools/functions are not supported by the embedded teacher", param="tools",
                           code="unsupported_parameter")
    messages = _messages(body.get("messages"))
    model = body.get("model", "")
    if model is not None and not isinstance(model, str):
        raise RequestError("'model' must be a string", param="model")
    n = _int(body, "n", 1, minimum=1, maximum=MAX_N)
    temperature = _number(body, "temperature", 1.0, minimum=0.0, maximum=2.0)
    top_p = _number(body, "top_p", 1.0, minimum=0.0, maximum=1.0)
    if top_p == 0.0:
        raise RequestError("'top_p' must be greater than 0 and at most 1", param="top_p")
    if body.get("max_completion_tokens") is not None:
        max_tokens = _int(body, "max_completion_tokens", DEFAULT_MAX_TOKENS, minimum=1)
    else:
        max_tokens = _int(body, "max_tokens", DEFAULT_MAX_TOKENS, minimum=1)
    seed = _int(body, "seed", None)
    return ChatRequest(messages, model or "", n, temperature, top_p, max_tokens, _stop(body.get("stop")), seed,
                       _response_format(body.get("response_format")))


def _response_format(value: Any) -> dict[str, Any] | None:
    """None for plain text; the object itself for json_object / json_schema (shape checked here)."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in ("text", "json_object", "json_schema"):
        raise RequestError("'response_format' must be an object with type 'text', 'json_object' or "
                           "'json_schema'", param="response_format")
    if value["type"] == "text":
        return None
    if value["type"] == "json_schema":
        wrapper = value.get("json_schema")
        if not isinstance(wrapper, dict) or not isinstance(wrapper.get("schema"), dict):
            raise RequestError("'response_format.json_schema.schema' must be a JSON Schema object",
                               param="response_format.json_schema")
    return value


def _messages(value: Any) -> list[dict[str, str]]:
    if value is None:
        raise RequestError("'messages' is required: a list of {\"role\": ..., \"content\": ...} objects",
                           param="messages")
    if not isinstance(value, list) or not value:
        raise RequestError("'messages' must be a non-empty list of message objects", param="messages")
    messages = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestError(f"{where} must be an object with 'role' and 'content'", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise RequestError(f"{where}.role must be one of {', '.join(ROLES)} (got {role!r})",
                               param=f"{where}.role")
        messages.append({"role": "system" if role == "developer" else role,
                         "content": _content(message.get("content"), f"{where}.content")})
    return messages


def _content(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for j, part in enumerate(value):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise RequestError(f"{where}[{j}] must be a text part {{\"type\": \"text\", \"text\": ...}}; "
                                   "the embedded teacher reads text only", param=where)
        return "".join(parts)
    raise RequestError(f"{where} must be a string or a list of text parts", param=where)


def _int(body: dict, name: str, default: int | None, *, minimum: int | None = None,
         maximum: int | None = None) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RequestError(f"'{name}' must be an integer (got {value!r})", param=name)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise RequestError(f"'{name}' must be {bounds} (got {value})", param=name)
    return value


def _number(body: dict, name: str, default: float, *, minimum: float, maximum: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"'{name}' must be a number (got {value!r})", param=name)
    if not minimum <= value <= maximum:
        raise RequestError(f"'{name}' must be between {minimum} and {maximum} (got {value})", param=name)
    return float(value)


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise RequestError("'stop' must be a string or a list of strings", param="stop")
    if len(value) > MAX_STOP_STRINGS:
        raise RequestError(f"'stop' may hold at most {MAX_STOP_STRINGS} strings", param="stop")
    return tuple(s for s in value if s)


def context_error(prompt_tokens: int, context_window: int) -> RequestError:
    return RequestError(
        f"the prompt is {prompt_tokens} tokens but the embedded model's context window is "
        f"{context_window} tokens (prompt plus at least one generated token); shorten the messages",
        param="messages", code="context_length_exceeded")


def completion_body(model: str, choices: list[tuple[str, str]], prompt_tokens: int,
                    completion_tokens: int) -> dict[str, Any]:
    """choices: (text, finish_reason) per sample, in order."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reason,
             "logprobs": None}
            for i, (text, reason) in enumerate(choices)
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def models_body(model: str, created: int) -> dict[str, Any]:
    return {"object": "list",
            "data": [{"id": model, "object": "model", "created": created, "owned_by": "ktools"}]}
