"""Provider presets: where each teacher lives and what it supports.

Every provider is reached through its OpenAI-compatible endpoint, so the only
differences are the default base URL, whether (and under which environment
variable) a key is needed, and whether `n` samples per request are honoured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ktools.config import (
    EMBEDDED_MODEL_NAME,
    LOCAL_TEACHER_BASE_URL,
    PROVIDER_ALIASES,
    PROVIDER_KEY_VARIABLES,
    ConfigError,
    provider_api_key,
)


@dataclass(frozen=True)
class ProviderPreset:
    name: str
    base_url: str
    requires_key: bool
    # Read (in this order) when TEACHER_MODEL_API_KEY is empty.
    key_env_fallbacks: tuple[str, ...] = ()
    # False: the provider returns one choice whatever `n` asks, so the client sends
    # n single requests up front instead of discovering it per call.
    supports_n: bool = True
    default_model: str = ""
    # Sent as the key when none is needed (the openai package insists on one).
    placeholder_key: str = "not-needed"

    def api_key_from_env(self, environ: Mapping[str, str] | None = None) -> str:
        return provider_api_key(self.name, environ)


PRESETS: dict[str, ProviderPreset] = {
    "openai": ProviderPreset("openai", "https://api.openai.com/v1", True, PROVIDER_KEY_VARIABLES["openai"]),
    # Anthropic's OpenAI SDK compatibility layer; it ignores `n`.
    "anthropic": ProviderPreset("anthropic", "https://api.anthropic.com/v1/", True, PROVIDER_KEY_VARIABLES["anthropic"],
                                supports_n=False),
    "gemini": ProviderPreset("gemini", "https://generativelanguage.googleapis.com/v1beta/openai/", True,
                             PROVIDER_KEY_VARIABLES["gemini"]),
    # Ollama's /v1 endpoint ignores `n` and needs no key.
    "ollama": ProviderPreset("ollama", "http://localhost:11434/v1", False, (), supports_n=False,
                             placeholder_key="ollama"),
    "vllm": ProviderPreset("vllm", "http://localhost:8000/v1", False, PROVIDER_KEY_VARIABLES["vllm"],
                           placeholder_key="EMPTY"),
    # The embedded teacher (ktools.llm.local.teacher) on 127.0.0.1.
    "local": ProviderPreset("local", LOCAL_TEACHER_BASE_URL, False, (), default_model=EMBEDDED_MODEL_NAME),
}


def get_preset(provider: str) -> ProviderPreset:
    name = PROVIDER_ALIASES.get(provider.strip().lower(), provider.strip().lower())
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"TEACHER_PROVIDER={provider!r} is not a known provider: expected one of {', '.join(PRESETS)}"
        ) from None
