"""Turning a teacher's thinking on, off or down, per stage, the way its server understands.

- `chat_template_kwargs`: vLLM and SGLang (Qwen3, DeepSeek-R1 distills and other templates
  with an `enable_thinking` switch) and the embedded server: `{"enable_thinking": bool}`.
  An effort ("low", ...) there means thinking on: templates have no finer knob.
- `reasoning_effort`: OpenAI-style APIs (o-series, gpt-5, gpt-oss on most servers, Gemini's
  OpenAI layer, Ollama's /v1): "on" = medium, "off" = low (the lowest every model accepts;
  say "minimal" where the model has it).
- `none`: send nothing (Anthropic's compatibility layer has no such field).

Nothing is sent for a stage that has no setting, so a model that does not think never
sees a field it might reject.
"""

from __future__ import annotations

from typing import Any

BY_PROVIDER = {
    "vllm": "chat_template_kwargs",
    "local": "chat_template_kwargs",
    "openai": "reasoning_effort",
    "gemini": "reasoning_effort",
    "ollama": "reasoning_effort",
    "anthropic": "none",
}


def control_for(provider: str | None, configured: str | None) -> str:
    """The knob style: the configured one, else the provider's (chat_template_kwargs when unknown)."""
    if configured:
        return configured
    return BY_PROVIDER.get((provider or "").lower(), "chat_template_kwargs")


def thinking_extra(setting: str | None, control: str) -> dict[str, Any]:
    """The request fields (extra body) for one stage's thinking setting."""
    if not setting or control == "none":
        return {}
    if control == "reasoning_effort":
        return {"reasoning_effort": {"on": "medium", "off": "low"}.get(setting, setting)}
    return {"chat_template_kwargs": {"enable_thinking": setting != "off"}}
