"""The Training Data Generator's settings (GENERATOR_* / OLLAMA_* variables) mapped onto ktools.

People arrive with a `.env` written for the standalone Training Data Generator. These
variables are read with the same layering as `ktools.config` (root `.env` < step folder
`.env` < process environment) and the command line wins over all of them:

    CLI flag  >  environment  >  step .env  >  root .env  >  defaults

The result is expressed as overrides for `ktools.config.load_settings`, so a GENERATOR_*
value beats the matching TEACHER_* one for `ktools generate`, and everything else
(timeouts, retries, output dir) keeps coming from the usual ktools settings.

| Training Data Generator          | ktools                                                  |
|----------------------------------|---------------------------------------------------------|
| GENERATOR_PROVIDER / --provider  | teacher_provider (see `map_provider` for `local`)        |
| GENERATOR_MODEL / --model        | teacher_model_name                                      |
| GENERATOR_TEMPERATURE            | temperature                                             |
| GENERATOR_MAX_TOKENS             | max_tokens (OLLAMA_NUM_PREDICT wins for local models)   |
| GENERATOR_QUESTIONS_PER_CHUNK    | questions per chunk (default 3, as in the reference)    |
| GENERATOR_RESUME                 | resume (default: on)                                    |
| GENERATOR_PROCESS_DIR            | --chunks-dir                                            |
| GENERATOR_OUTPUT_DIR             | --qa-dir                                                |
| GENERATOR_OUTPUT_FILE            | `ktools combine --output-file`                          |
| GENERATOR_BATCH_PROCESSING       | true: concurrent (MAX_CONCURRENCY); a number: that many  |
|                                  | requests in flight; false: no effect (ktools always      |
|                                  | pipelines; use --max-concurrency 1 for one at a time)    |
| GENERATOR_API_KEY, OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY / GOOGLE_API_KEY | teacher_api_key |
| OLLAMA_BASE_URL                  | with provider local/ollama: the Ollama server (…/v1 added) |
| OLLAMA_TOP_K / TOP_P / REPEAT_PENALTY / NUM_PREDICT | sampling options                     |

Provider names: `claude` = `anthropic`; in the Training Data Generator `local` means
Ollama, while in ktools `local` is the embedded teacher. So `local` with an Ollama URL
(`--ollama-base-url` or OLLAMA_BASE_URL) runs against Ollama, and `local` without one
runs the embedded SmolLM2 teacher.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.config import (
    LOCAL_TEACHER_BASE_URL,
    PROVIDER_ALIASES,
    PROVIDER_KEY_VARIABLES,
    PROVIDERS,
    ConfigError,
    Layers,
    Secret,
    Settings,
    _parse_base_url_list,
    _parse_bool,
    _parse_float,
    _parse_int,
    _parse_secret,
    _parse_str,
    invalid_setting,
    layered_value,
    load_settings,
    mask_secret,
    register_secret,
    settings_layers,
)
from ktools.paths import STEP_FOLDERS

STEP_DIR = STEP_FOLDERS[3]
DEFAULT_QUESTIONS_PER_CHUNK = 3
DEFAULT_OLLAMA_BASE_URL = "http://localhost:11434/v1"
# Provider-specific key variables the reference tool's LLM layer reads (declared in ktools.config).
PROVIDER_KEY_ENV = {p: PROVIDER_KEY_VARIABLES[p] for p in ("openai", "anthropic", "gemini")}


def _parse_batch(raw: str) -> bool | int:
    try:
        return _parse_bool(raw)
    except ValueError:
        pass
    try:
        return _parse_int(1)(raw)
    except ValueError:
        raise ValueError("true, false or a number of concurrent requests, e.g. 16") from None


@dataclass(frozen=True)
class _Var:
    attr: str
    env: str
    parse: Callable[[str], Any]


_VARS: tuple[_Var, ...] = (
    _Var("provider", "GENERATOR_PROVIDER", _parse_str),
    _Var("model", "GENERATOR_MODEL", _parse_str),
    _Var("base_url", "GENERATOR_BASE_URL", _parse_base_url_list),
    _Var("api_key", "GENERATOR_API_KEY", _parse_secret),
    _Var("temperature", "GENERATOR_TEMPERATURE", _parse_float(0.0, 2.0)),
    _Var("max_tokens", "GENERATOR_MAX_TOKENS", _parse_int(1)),
    _Var("questions_per_chunk", "GENERATOR_QUESTIONS_PER_CHUNK", _parse_int(1)),
    _Var("resume", "GENERATOR_RESUME", _parse_bool),
    _Var("process_dir", "GENERATOR_PROCESS_DIR", _parse_str),
    _Var("output_dir", "GENERATOR_OUTPUT_DIR", _parse_str),
    _Var("output_file", "GENERATOR_OUTPUT_FILE", _parse_str),
    _Var("batch_processing", "GENERATOR_BATCH_PROCESSING", _parse_batch),
    _Var("ollama_base_url", "OLLAMA_BASE_URL", _parse_base_url_list),
    _Var("top_k", "OLLAMA_TOP_K", _parse_int(1)),
    _Var("top_p", "OLLAMA_TOP_P", _parse_float(0.0, 1.0)),
    _Var("repeat_penalty", "OLLAMA_REPEAT_PENALTY", _parse_float(0.0, 10.0)),
    _Var("num_predict", "OLLAMA_NUM_PREDICT", _parse_int(1)),
)
ENV_NAMES = {v.attr: v.env for v in _VARS}


@dataclass(frozen=True)
class TDGSettings:
    """GENERATOR_* / OLLAMA_* values found in the environment or `.env` (None: not set)."""

    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: Secret | None = field(default=None, repr=False)
    temperature: float | None = None
    max_tokens: int | None = None
    questions_per_chunk: int | None = None
    resume: bool | None = None
    process_dir: str | None = None
    output_dir: str | None = None
    output_file: str | None = None
    batch_processing: bool | int | None = None
    ollama_base_url: str | None = None
    top_k: int | None = None
    top_p: float | None = None
    repeat_penalty: float | None = None
    num_predict: int | None = None
    provider_keys: dict[str, Secret] = field(default_factory=dict, repr=False)
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


def _lookup(layers: Layers, name: str) -> tuple[str | None, str | None]:
    """As ktools.config's layering, but a blank value counts as unset (the reference tool's rule)."""
    raw, origin = layered_value(layers, name)
    if raw is not None and raw.strip() == "":
        return None, None
    return raw, origin


def load_tdg_settings(step_dir: str | Path | None = STEP_DIR, environ: Mapping[str, str] | None = None,
                      repo_root: str | Path | None = None) -> TDGSettings:
    layers = settings_layers(step_dir, environ, repo_root)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for var in _VARS:
        raw, origin = _lookup(layers, var.env)
        if raw is None:
            continue
        try:
            values[var.attr] = var.parse(raw)
        except ValueError as exc:
            raise invalid_setting(var.env, raw, origin, exc, secret=var.attr == "api_key") from None
        sources[var.env] = origin or "default"
    keys: dict[str, Secret] = {}
    for provider, names in PROVIDER_KEY_ENV.items():
        for name in names:
            raw, origin = _lookup(layers, name)
            if raw is not None:
                keys[provider] = Secret(raw.strip())
                sources[name] = origin or "default"
                break
    for secret in [values.get("api_key"), *keys.values()]:
        register_secret(secret)
    return TDGSettings(**values, provider_keys=keys, sources=sources)


def normalize_ollama_url(url: str) -> str:
    """Ollama's OpenAI-compatible API lives under /v1; the reference tool's URLs omit it.

    Several comma-separated URLs (replicas, each optionally `#N`) are normalised one by one."""
    if "," in url or "#" in url:
        parts = [p.strip().partition("#") for p in url.split(",")]
        return ",".join(normalize_ollama_url(u) + sep + share for u, sep, share in parts)
    url = url.strip().rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def map_provider(name: str | None, *, base_url: str | None = None,
                 ollama_base_url: str | None = None) -> tuple[str | None, str | None]:
    """(ktools provider, base URL) for a Training Data Generator provider name.

    `local` + an Ollama URL (or any base URL other than the embedded teacher's, as the
    reference tool's `base_url` is Ollama's) -> ollama at that URL; `local` without one ->
    the embedded teacher; `ollama` without any URL -> http://localhost:11434/v1; `claude` -> anthropic.
    None stays None (ktools settings decide).
    """
    if name is None or not name.strip():
        return None, base_url or None
    key = name.strip().lower()
    if key == "embedded":  # ktools' unambiguous name: the embedded teacher, whatever URL is around
        return "local", base_url or None
    key = PROVIDER_ALIASES.get(key, key)
    if key == "local":
        # The reference tool's `local` is Ollama, and its QAGenerator(base_url=...) is the Ollama URL.
        url = ollama_base_url or base_url
        if url and url.rstrip("/") != LOCAL_TEACHER_BASE_URL:
            return "ollama", normalize_ollama_url(url)
        return "local", url or None
    if key == "ollama":
        url = base_url or ollama_base_url
        return "ollama", normalize_ollama_url(url) if url else DEFAULT_OLLAMA_BASE_URL
    if key not in PROVIDERS:
        raise ConfigError(f"provider {name!r} is unknown: use one of openai, claude (anthropic), gemini, "
                          "local (Ollama with --ollama-base-url, else the embedded teacher), ollama, vllm")
    return key, base_url or None


@dataclass(frozen=True)
class GenerateConfig:
    """Everything `ktools generate` / `QAGenerator` needs, resolved with its precedence."""

    settings: Settings  # teacher fields, temperature, max_tokens, concurrency, summaries, prompt
    questions_per_chunk: int
    resume: bool
    chunks_dir: Path | None
    qa_dir: Path | None
    output_file: Path | None
    top_p: float | None
    top_k: int | None
    repeat_penalty: float | None
    stop: tuple[str, ...] | None
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def sampling_extra(self) -> tuple[tuple[str, Any], ...]:
        """Provider knobs sent in the request body: Ollama spells it repeat_penalty, vLLM repetition_penalty."""
        extra: list[tuple[str, Any]] = []
        if self.top_k is not None:
            extra.append(("top_k", self.top_k))
        if self.repeat_penalty is not None:
            name = "repeat_penalty" if self.settings.teacher_provider == "ollama" else "repetition_penalty"
            extra.append((name, self.repeat_penalty))
        return tuple(extra)

    def describe(self) -> list[dict[str, str]]:
        """Rows for display: setting, value (key masked), where it came from."""
        s = self.settings
        rows = [
            ("provider", s.teacher_provider), ("model", s.teacher_model_name or "(provider default)"),
            ("base_url", s.teacher_base_url or "(provider default)"),
            ("api_key", mask_secret(s.teacher_api_key)), ("temperature", s.temperature),
            ("max_tokens", s.max_tokens), ("questions_per_chunk", self.questions_per_chunk),
            ("summaries", s.number_of_summaries), ("max_concurrency", s.max_concurrency),
            ("resume", self.resume), ("chunks_dir", self.chunks_dir), ("qa_dir", self.qa_dir),
            ("top_p", self.top_p), ("top_k", self.top_k), ("repeat_penalty", self.repeat_penalty),
            ("stop", list(self.stop) if self.stop else None),
        ]
        return [{"setting": k, "value": str(v), "from": self.sources.get(k, "default")} for k, v in rows]


def _pick(name: str, cli: Mapping[str, Any], tdg: TDGSettings, tdg_attr: str | None,
          sources: dict[str, str]) -> Any:
    value = cli.get(name)
    if value is not None:
        sources[name] = "command line"
        return value
    if tdg_attr is not None:
        value = getattr(tdg, tdg_attr)
        if value is not None:
            env = ENV_NAMES[tdg_attr]
            sources[name] = f"{env} ({tdg.sources.get(env, 'environment')})"
            return value
    return None


def resolve_generate_config(cli: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None,
                            repo_root: str | Path | None = None,
                            step_dir: str | Path | None = STEP_DIR) -> GenerateConfig:
    """Combine command-line values (None = not given), GENERATOR_*/OLLAMA_* and ktools settings.

    `cli` keys: provider, model, base_url, api_key, ollama_base_url, temperature, max_tokens,
    questions_per_chunk, summaries, max_concurrency, batch_processing, resume, chunks_dir,
    qa_dir, output_file, top_k, top_p, repeat_penalty, num_predict, stop, extra_instructions.
    """
    cli = dict(cli or {})
    tdg = load_tdg_settings(step_dir=step_dir, environ=environ, repo_root=repo_root)
    sources: dict[str, str] = {}
    provider_name = _pick("provider", cli, tdg, "provider", sources)
    ollama_url = _pick("ollama_base_url", cli, tdg, "ollama_base_url", sources)
    base_url = _pick("base_url", cli, tdg, "base_url", sources)
    provider, url = map_provider(provider_name, base_url=base_url, ollama_base_url=ollama_url)
    if provider is not None and url and not base_url:
        sources["base_url"] = sources.get("ollama_base_url", "default")

    api_key = _pick("api_key", cli, tdg, "api_key", sources)
    if api_key is None and provider in tdg.provider_keys:
        api_key = tdg.provider_keys[provider]
        sources["api_key"] = next(n for n in PROVIDER_KEY_ENV[provider] if n in tdg.sources)
    register_secret(api_key)

    max_tokens = _pick("max_tokens", cli, tdg, "max_tokens", sources)
    num_predict = _pick("num_predict", cli, tdg, "num_predict", sources)
    if num_predict is not None and (provider in (None, "local", "ollama") or cli.get("num_predict") is not None):
        # Ollama's own name for the completion limit; it is what bounds a local model's answer.
        max_tokens = num_predict
        sources["max_tokens"] = sources["num_predict"]

    concurrency = cli.get("max_concurrency")
    if concurrency is not None:
        sources["max_concurrency"] = "command line"
    else:
        batch = cli.get("batch_processing")
        origin = "command line (--batch-processing)"
        if batch is None and tdg.batch_processing is not None:
            env = "GENERATOR_BATCH_PROCESSING"
            batch, origin = tdg.batch_processing, f"{env} ({tdg.sources.get(env)})"
        if isinstance(batch, int) and not isinstance(batch, bool):
            concurrency = batch
            sources["max_concurrency"] = origin

    overrides = {
        "teacher_provider": provider,
        "teacher_model_name": _pick("model", cli, tdg, "model", sources),
        "teacher_base_url": url,
        "teacher_api_key": api_key,
        "temperature": _pick("temperature", cli, tdg, "temperature", sources),
        "max_tokens": max_tokens,
        "max_concurrency": concurrency,
        "number_of_summaries": _pick("summaries", cli, tdg, None, sources),
        "customisation_prompt": _pick("extra_instructions", cli, tdg, None, sources),
    }
    settings = load_settings(step_dir=step_dir, environ=environ, repo_root=repo_root,
                             **{k: v for k, v in overrides.items() if v is not None})
    for attr, env in (("temperature", "TEACHER_TEMPERATURE"), ("max_tokens", "TEACHER_MAX_TOKENS"),
                      ("max_concurrency", "MAX_CONCURRENCY"), ("summaries", "NUMBER_OF_SUMMARIES"),
                      ("provider", "TEACHER_PROVIDER"), ("model", "TEACHER_MODEL_NAME"),
                      ("base_url", "TEACHER_MODEL_BASE_URL"), ("api_key", "TEACHER_MODEL_API_KEY")):
        if attr not in sources and env in settings.sources:
            sources[attr] = f"{env} ({settings.sources[env]})"

    questions = _pick("questions_per_chunk", cli, tdg, "questions_per_chunk", sources)
    resume = _pick("resume", cli, tdg, "resume", sources)
    chunks_dir = _pick("chunks_dir", cli, tdg, "process_dir", sources)
    qa_dir = _pick("qa_dir", cli, tdg, "output_dir", sources)
    output_file = _pick("output_file", cli, tdg, "output_file", sources)
    stop = cli.get("stop")
    return GenerateConfig(
        settings=settings,
        questions_per_chunk=int(questions) if questions is not None else DEFAULT_QUESTIONS_PER_CHUNK,
        resume=True if resume is None else bool(resume),
        chunks_dir=Path(chunks_dir).expanduser() if chunks_dir else None,
        qa_dir=Path(qa_dir).expanduser() if qa_dir else None,
        output_file=Path(output_file).expanduser() if output_file else None,
        top_p=_pick("top_p", cli, tdg, "top_p", sources),
        top_k=_pick("top_k", cli, tdg, "top_k", sources),
        repeat_penalty=_pick("repeat_penalty", cli, tdg, "repeat_penalty", sources),
        stop=tuple(stop) if stop else None,
        sources=sources,
    )


def replace(config: GenerateConfig, **changes: Any) -> GenerateConfig:
    return dataclasses.replace(config, **changes)
