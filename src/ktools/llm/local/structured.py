"""`response_format` for the embedded teacher: OpenAI's shapes -> a GBNF grammar for llama.cpp.

The grammar constrains sampling token by token (llama.cpp's grammar sampler masks every
token that cannot continue a valid document), so a small model that would otherwise
wander off still returns JSON matching the schema. The schema -> GBNF conversion is the
one shipped with the prebuilt llama.cpp bindings (`llama_cpp_py_sync.constraints`); it
supports the structural subset of JSON Schema (objects with properties and required,
arrays, enums, const, strings, numbers, booleans, null, anyOf) and rejects the rest
with a message rather than silently constraining less.
"""

from __future__ import annotations

from typing import Any

from ktools.llm.local.protocol import RequestError


def grammar_for(response_format: dict[str, Any] | None) -> str | None:
    """None for plain text; a GBNF grammar for json_object / json_schema; RequestError if unsupported."""
    if not response_format or response_format.get("type") == "text":
        return None
    from llama_cpp_py_sync.constraints import response_format_to_grammar

    try:
        return response_format_to_grammar(response_format)
    except (ValueError, TypeError) as exc:
        raise RequestError(f"response_format: {exc}", param="response_format",
                           code="unsupported_response_format") from None
