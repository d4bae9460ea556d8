"""`response_format` for the embedded teacher: OpenAI's shapes -> a GBNF grammar for llama.cpp.

The grammar constrains sampling token by token (llama.cpp's grammar sampler masks every
token that cannot continue a valid document), so a small model that would otherwise
wander off still returns JSON matching the schema. The schema -> GBNF conversion is
llama.cpp's own json-schema-to-grammar, as shipped in llama-cpp-python
(`llama_cpp.llama_grammar`): properties, required, arrays with min/maxItems, enum,
const, anyOf/oneOf, string formats and lengths, $ref/$defs.
"""

from __future__ import annotations

import json
from typing import Any

from ktools.llm.local.protocol import RequestError


def grammar_for(response_format: dict[str, Any] | None) -> str | None:
    """None for plain text; a GBNF grammar for json_object / json_schema; RequestError if unsupported."""
    if not response_format or response_format.get("type") == "text":
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if response_format.get("type") == "json_object":
        schema = response_format.get("schema")  # llama.cpp server's extension: json_object with a schema
        if not isinstance(schema, dict):
            return JSON_GBNF  # any JSON object
    else:
        schema = response_format["json_schema"]["schema"]
    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter reports bad schemas with asserts, KeyErrors and ValueErrors
        raise RequestError(f"response_format: the schema cannot be turned into a grammar: {exc}",
                           param="response_format", code="unsupported_response_format") from None
