"""`response_format` json_schema on the transformers engine: token choices masked by a schema check.

How: `JsonSchemaGuide.state(text)` says whether `text` is a complete document matching
the schema ("complete"), could still become one ("prefix"), or cannot ("invalid"). The
engine draws a row's next token as usual, and if the row's text with that token is
invalid, removes the token and draws again from what is left (so it samples exactly
the model's distribution restricted to valid tokens; greedy rows take the most likely
valid token). A row ends as soon as its text is a complete document. Tokens that add no
text (special tokens) and end-of-sequence before the document is complete are invalid.

The schema subset is what ktools' structured stages send (`ktools.generate.structured`,
OpenAI strict mode): objects whose properties all appear, in the schema's order (no
others), arrays (`minItems`/`maxItems`), strings, integers, numbers, booleans, null,
`enum`/`const` of scalars, `json_object` (any object). Whitespace between tokens is free
(up to `MAX_WHITESPACE` characters in a row). Anything else (`anyOf`, `$ref`, `pattern`,
...) is refused with a clear error rather than half-enforced; the llama.cpp backend
(`--backend llama`) covers full JSON Schema through its grammar sampler.

Cost: a check re-reads the row's text (a few hundred characters), a few times per token
when the model proposes something invalid; it runs only for rows that asked for a schema.
"""

from __future__ import annotations

import json
from typing import Any

MAX_WHITESPACE = 16
_SUPPORTED_KEYS = {"type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
                   "enum", "const", "description", "title", "strict", "$schema"}


class UnsupportedSchema(ValueError):
    pass


class _Incomplete(Exception):
    pass


class _Invalid(Exception):
    pass


class JsonSchemaGuide:
    def __init__(self, schema: dict[str, Any] | None):
        self.schema = schema if schema is not None else {"type": "object", "_any": True}
        _check_supported(self.schema)

    @classmethod
    def from_response_format(cls, response_format: dict[str, Any] | None) -> JsonSchemaGuide | None:
        if not response_format or response_format.get("type") == "text":
            return None
        if response_format.get("type") == "json_object":
            schema = response_format.get("schema")
            return cls(schema if isinstance(schema, dict) else None)
        if response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema")
            if not isinstance(schema, dict):
                raise UnsupportedSchema("json_schema.schema must be an object")
            return cls(schema)
        raise UnsupportedSchema(f"response_format type {response_format.get('type')!r} is not supported")

    def state(self, text: str) -> str:
        """"complete", "prefix" or "invalid" (see the module docstring)."""
        try:
            end = _ws(text, _value(self.schema, text, _ws(text, 0)))
        except _Incomplete:
            return "prefix"
        except _Invalid:
            return "invalid"
        return "complete" if end == len(text) else "invalid"


def _check_supported(schema: Any) -> None:
    if not isinstance(schema, dict):
        raise UnsupportedSchema("a schema must be an object")
    if schema.get("_any"):
        return
    extra = set(schema) - _SUPPORTED_KEYS
    if extra:
        raise UnsupportedSchema(f"schema keywords not supported by the transformers engine: {sorted(extra)}")
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        if not values or any(isinstance(v, dict | list) for v in values):
            raise UnsupportedSchema("enum/const must list scalars")
        return
    kind = schema.get("type")
    if kind == "object":
        for sub in (schema.get("properties") or {}).values():
            _check_supported(sub)
    elif kind == "array":
        _check_supported(schema.get("items") or {"type": "string"})
    elif kind not in ("string", "integer", "number", "boolean", "null"):
        raise UnsupportedSchema(f"schema type {kind!r} is not supported by the transformers engine")


def _ws(text: str, i: int) -> int:
    start = i
    while i < len(text) and text[i] in " \t\n\r":
        i += 1
    if i - start > MAX_WHITESPACE:
        raise _Invalid
    return i


def _literal(text: str, i: int, literal: str) -> int:
    for k, char in enumerate(literal):
        if i + k >= len(text):
            raise _Incomplete
        if text[i + k] != char:
            raise _Invalid
    return i + len(literal)


def _value(schema: dict[str, Any], text: str, i: int) -> int:
    if i >= len(text):
        raise _Incomplete
    if schema.get("_any"):
        return _any_object(text, i)
    if "enum" in schema or "const" in schema:
        return _choice(text, i, [json.dumps(v, ensure_ascii=False) for v in schema.get("enum", [schema.get("const")])])
    kind = schema.get("type")
    if kind == "object":
        return _object(schema, text, i)
    if kind == "array":
        return _array(schema, text, i)
    if kind == "string":
        return _string(text, i)
    if kind in ("integer", "number"):
        return _number(text, i, integer=kind == "integer")
    if kind == "boolean":
        return _choice(text, i, ["true", "false"])
    return _literal(text, i, "null")


def _choice(text: str, i: int, options: list[str]) -> int:
    rest = text[i:]
    if any(o.startswith(rest) and o != rest for o in options):
        raise _Incomplete  # the text ends inside (or could extend to) an option
    matches = [o for o in options if rest.startswith(o)]
    if not matches:
        raise _Invalid
    return i + len(max(matches, key=len))


def _object(schema: dict[str, Any], text: str, i: int) -> int:
    i = _ws(text, _literal(text, i, "{"))
    for n, (key, sub) in enumerate((schema.get("properties") or {}).items()):
        if n:
            i = _ws(text, _literal(text, i, ","))
        i = _ws(text, _literal(text, i, json.dumps(key, ensure_ascii=False)))
        i = _ws(text, _literal(text, i, ":"))
        i = _ws(text, _value(sub, text, i))
    return _literal(text, i, "}")


def _array(schema: dict[str, Any], text: str, i: int) -> int:
    items = schema.get("items") or {"type": "string"}
    low, high = int(schema.get("minItems", 0)), schema.get("maxItems")
    i = _ws(text, _literal(text, i, "["))
    if i >= len(text):
        raise _Incomplete
    count = 0
    if text[i] == "]":
        if low > 0:
            raise _Invalid
        return i + 1
    while True:
        i = _ws(text, _value(items, text, i))
        count += 1
        if high is not None and count > int(high):
            raise _Invalid
        if i >= len(text):
            raise _Incomplete
        if text[i] == ",":
            i = _ws(text, i + 1)
            continue
        if text[i] == "]":
            if count < low:
                raise _Invalid
            return i + 1
        raise _Invalid


_ESCAPES = set('"\\/bfnrt')


def _string(text: str, i: int) -> int:
    i = _literal(text, i, '"')
    while True:
        if i >= len(text):
            raise _Incomplete
        char = text[i]
        if char == '"':
            return i + 1
        if char == "\\":
            if i + 1 >= len(text):
                raise _Incomplete
            escape = text[i + 1]
            if escape == "u":
                digits = text[i + 2 : i + 6]
                if any(c not in "0123456789abcdefABCDEF" for c in digits):
                    raise _Invalid
                if len(digits) < 4:
                    raise _Incomplete
                i += 6
                continue
            if escape not in _ESCAPES:
                raise _Invalid
            i += 2
            continue
        if ord(char) < 0x20:
            raise _Invalid
        i += 1


def _number(text: str, i: int, *, integer: bool) -> int:
    if text[i] == "-":
        i += 1
    digits = i
    while i < len(text) and text[i].isdigit():
        i += 1
    if i == digits:
        if i >= len(text):
            raise _Incomplete
        raise _Invalid
    if text[digits] == "0" and i - digits > 1:
        raise _Invalid
    if not integer and i < len(text) and text[i] == ".":
        i += 1
        fraction = i
        while i < len(text) and text[i].isdigit():
            i += 1
        if i == fraction:
            raise _Incomplete if i >= len(text) else _Invalid
    if i >= len(text):
        raise _Incomplete  # more digits could follow; the enclosing value decides
    return i


def _any_object(text: str, i: int) -> int:
    """Any JSON object (`json_object` without a schema)."""
    return _any_value(text, i, top=True)


def _any_value(text: str, i: int, top: bool = False) -> int:
    if i >= len(text):
        raise _Incomplete
    char = text[i]
    if char == "{":
        i = _ws(text, i + 1)
        if i >= len(text):
            raise _Incomplete
        if text[i] == "}":
            return i + 1
        while True:
            i = _ws(text, _string(text, i))
            i = _ws(text, _literal(text, i, ":"))
            i = _ws(text, _any_value(text, i))
            if i >= len(text):
                raise _Incomplete
            if text[i] == ",":
                i = _ws(text, i + 1)
                continue
            return _literal(text, i, "}")
    if top:
        raise _Invalid
    if char == "[":
        i = _ws(text, i + 1)
        if i >= len(text):
            raise _Incomplete
        if text[i] == "]":
            return i + 1
        while True:
            i = _ws(text, _any_value(text, i))
            if i >= len(text):
                raise _Incomplete
            if text[i] == ",":
                i = _ws(text, i + 1)
                continue
            return _literal(text, i, "]")
    if char == '"':
        return _string(text, i)
    if char == "-" or char.isdigit():
        return _number(text, i, integer=False)
    return _choice(text, i, ["true", "false", "null"])
