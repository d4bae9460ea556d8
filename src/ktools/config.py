"""Settings from the environment and `.env` files: the one place that reads them.

Precedence (highest first): the process environment, the step folder's `.env`,
the repository root's `.env`, then the defaults below. That way a scheduler can
override anything, a step can specialise, and the root `.env` holds what is common.

Every setting is declared once, as a field of `Settings` (`_setting`): its environment
variable (the names users of the reference notebooks already know), the older or other
tools' names still read as aliases, its default, its meaning and a parser that turns a bad
value into a `ConfigError` naming the variable, the value, where it came from and the
expected form, and which steps' Kubeflow components take it as a pipeline parameter
(`ktools.kubeflow.parameters` builds those from here). `ktools status` and the notebooks
show every declared setting; the providers' own key variables (OPENAI_API_KEY, ...) are read
here too (`provider_api_key`), and a KTOOLS_* / TEACHER_* variable no setting reads is
warned about.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

log = logging.getLogger(__name__)

PROVIDERS = ("local", "openai", "anthropic", "gemini", "ollama", "vllm")
# Names people use for the same providers. "embedded" is the unambiguous name of the embedded
# teacher: "local" means it in ktools settings, but Ollama to the Training Data Generator
# (`ktools generate --provider local` with an Ollama URL); "embedded" means it everywhere.
PROVIDER_ALIASES = {"claude": "anthropic", "google": "gemini", "vertex": "gemini", "embedded": "local"}

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
LOCAL_TEACHER_HOST = "127.0.0.1"
LOCAL_TEACHER_PORT = 8765
LOCAL_TEACHER_BASE_URL = f"http://{LOCAL_TEACHER_HOST}:{LOCAL_TEACHER_PORT}/v1"
# How the embedded teacher runs the model: the transformers engine (default: the faster one
# measured here, see 00_Setup/README.md) or llama.cpp on the GGUF (needs `make llama`;
# the one that honours response_format).
TEACHER_BACKENDS = ("transformers", "llama")


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message says which and how to fix it."""


class Secret(str):
    """A string that never shows itself in repr/str formatting of containers or logs."""

    def __repr__(self) -> str:  # pragma: no cover - trivial
        return mask_secret(str.__str__(self))

    def reveal(self) -> str:
        return str.__str__(self)


def mask_secret(value: str | None) -> str:
    if not value:
        return "<unset>"
    if len(value) <= 8:
        return "****"
    return f"{value[:3]}…{value[-2:]} ({len(value)} chars)"


# --- parsers: each returns the typed value or raises ValueError(expected form) ---

def _parse_bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in {"1", "true", "yes", "on", "y"}:
        return True
    if v in {"0", "false", "no", "off", "n", ""}:
        return False
    raise ValueError("true or false (also accepted: 1/0, yes/no, on/off)")


def _parse_int(minimum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("an integer, e.g. 8") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"an integer >= {minimum}")
        return value

    return parse


def _parse_optional_int(raw: str) -> int | None:
    if raw.strip() in {"", "none", "None", "0"}:
        return None
    return _parse_int(1)(raw)


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return value

    return parse


def _parse_optional_float(raw: str) -> float | None:
    """Empty / none / 0: unset; else a number > 0."""
    if raw.strip() in {"", "none", "None"}:
        return None
    value = _parse_float(0.0)(raw)
    return value or None


def parse_stage_map(raw: str) -> dict[str, str]:
    """`STAGE=VALUE,STAGE=VALUE` (e.g. `judges=off,answers=on`) as a dict; stage names are
    checked where they are used (GenerationOptions)."""
    result: dict[str, str] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        stage, sep, value = part.partition("=")
        if not sep or not stage.strip() or not value.strip():
            raise ValueError(f"STAGE=VALUE pairs separated by commas, e.g. judges=1024 (got {part!r})")
        result[stage.strip()] = value.strip()
    return result


def _parse_stage_caps(raw: str) -> dict[str, int]:
    caps = {}
    for stage, value in parse_stage_map(raw).items():
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"STAGE=N pairs with N >= 1, e.g. judges=1024 (got {stage}={value})")
        caps[stage] = int(value)
    return caps


def _parse_float(minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("a number, e.g. 0.7") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ValueError(f"a number between {minimum} and {maximum}")
        return value

    return parse


def _parse_teacher_backend(raw: str) -> str:
    value = raw.strip().lower() or "transformers"
    if value not in TEACHER_BACKENDS:
        raise ValueError(f"one of {', '.join(TEACHER_BACKENDS)}")
    return value


def _parse_cut_sizes(raw: str) -> list[int]:
    parts = [p for p in re.split(r"[,\s]+", raw.strip()) if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError("comma-separated positive integers, e.g. CUT_SIZES=5,50") from None
    if not values or any(v < 1 for v in values):
        raise ValueError("comma-separated positive integers, e.g. CUT_SIZES=5,50")
    return sorted(set(values))


def _parse_provider(raw: str) -> str:
    v = raw.strip().lower()
    v = PROVIDER_ALIASES.get(v, v)
    if v not in PROVIDERS:
        raise ValueError("one of " + ", ".join(PROVIDERS) + " (aliases: embedded = local, claude, google)")
    return v


def _parse_url(raw: str) -> str:
    v = raw.strip().rstrip("/")
    if v and not re.match(r"^https?://[^\s/]+", v):
        raise ValueError("an http(s) URL, e.g. http://localhost:8000/v1")
    return v


_BASE_URLS_FORM = ("an http(s) URL, or several separated by commas (one per replica), each optionally "
                   "ending in #N = that endpoint's concurrency share, e.g. "
                   "http://gpu1:8000/v1,http://gpu2:8000/v1#8")


def parse_base_urls(raw: str) -> list[tuple[str, int | None]]:
    """`URL[#N],URL[#N],...` -> [(URL without trailing slash, concurrency share N or None)].

    Several OpenAI-compatible endpoints serving the same model (e.g. vLLM replicas) are
    spread over by the teacher client (`ktools.llm.endpoints`). Raises ValueError saying
    which entry is wrong and the expected form.
    """
    entries: list[tuple[str, int | None]] = []
    parts = [p.strip() for p in raw.split(",")]
    for position, part in enumerate(parts, 1):
        if not part:
            if len(parts) > 1:
                raise ValueError(f"{_BASE_URLS_FORM} (entry {position} is empty)")
            continue
        url, sep, share = part.partition("#")
        url = url.strip().rstrip("/")
        if not re.match(r"^https?://[^\s/]+", url) or re.search(r"\s", url):
            raise ValueError(f"{_BASE_URLS_FORM} (entry {position} {part!r} is not an http(s) URL)")
        cap: int | None = None
        if sep:
            try:
                cap = int(share.strip())
            except ValueError:
                cap = 0
            if cap < 1:
                raise ValueError(f"{_BASE_URLS_FORM} (entry {position} {part!r}: #N must be an integer >= 1)")
        if any(url == seen for seen, _ in entries):
            raise ValueError(f"{_BASE_URLS_FORM} (entry {position} {url!r} is listed twice)")
        entries.append((url, cap))
    return entries


def _parse_base_url_list(raw: str) -> str:
    """The normalised text of `parse_base_urls` (one URL stays exactly as `_parse_url` made it)."""
    return ",".join(url if cap is None else f"{url}#{cap}" for url, cap in parse_base_urls(raw))


def _parse_str(raw: str) -> str:
    return raw.strip()


def _looks_like_path(value: str) -> bool:
    """A model reference meant as a folder (`/x`, `~/x`, `./x`, `../x`), not a hub name (`org/name`)."""
    return value.startswith(("/", "~", "./", "../")) or value in (".", "..")


def _parse_model_ref(raw: str) -> str:
    value = raw.strip()
    if value and _looks_like_path(value) and not Path(value).expanduser().exists():
        raise ValueError(f"an existing model folder or a Hugging Face model name ({value} does not exist)")
    return value


def _parse_folder(raw: str) -> str:
    value = raw.strip()
    if value and Path(value).expanduser().exists() and not Path(value).expanduser().is_dir():
        raise ValueError(f"a folder ({value} is a file); point it at a folder, or unset it for the default")
    return value


def _parse_secret(raw: str) -> Secret:
    return Secret(raw.strip())


def _setting(env: str, parse: Callable[[str], Any], default: Any, help: str, *, aliases: tuple[str, ...] = (),
             secret: bool = False, kubeflow: tuple[int, ...] = (), kubeflow_name: str = "") -> Any:
    """A setting, declared once, as a `Settings` field: its environment variable, parser, default
    and meaning, plus `aliases` (an older name, another tool's) still read when `env` is set in no
    layer. `_FIELDS`, `load_settings`, `as_table` (`ktools status`, the notebooks) and the
    `.env.example` test all read these declarations; a secret is never shown.

    `kubeflow`: the steps whose Kubeflow component takes this setting as a pipeline parameter
    (named after the field, or `kubeflow_name`); `ktools.kubeflow.parameters` builds those
    parameters from here. A secret never is one: a parameter's value shows in the KFP UI and in
    every compiled pipeline file, so keys reach the pods from a Kubernetes secret instead."""
    if secret and kubeflow:
        raise ValueError(f"{env} is a secret and cannot be a pipeline parameter")
    meta = {"env": env, "parse": parse, "help": help, "aliases": tuple(aliases), "secret": secret,
            "kubeflow": tuple(kubeflow), "kubeflow_name": kubeflow_name}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: copy.deepcopy(default), repr=not secret, metadata=meta)
    return field(default=default, repr=not secret, metadata=meta)


@dataclass(frozen=True)
class Settings:
    teacher_provider: str = _setting("TEACHER_PROVIDER", _parse_provider, "",
        "openai, anthropic, gemini, ollama, vllm or embedded (= local, the embedded teacher); default: local "
        "unless a base URL is set", kubeflow=(2, 3, 4))
    teacher_model_name: str = _setting("TEACHER_MODEL_NAME", _parse_str, "",
        "model the teacher endpoint serves", kubeflow=(2, 3, 4))
    teacher_base_url: str = _setting("TEACHER_MODEL_BASE_URL", _parse_base_url_list, "",
        "OpenAI-compatible base URL (…/v1); several (replicas): comma-separated, URL#N = its concurrency share",
        kubeflow=(2, 3, 4))
    teacher_api_key: Secret = _setting("TEACHER_MODEL_API_KEY", _parse_secret, Secret(""),
        "API key (never shown)", secret=True)
    pdf_password: Secret = _setting("PDF_PASSWORD", _parse_secret, Secret(""),
        "password that opens encrypted PDFs in step 02 (never shown)", secret=True)
    # STUDENT_MODEL, TOKENIZER_MODEL, OUTPUT_DATA_FOLDER: the reference tools' names.
    student_model_name: str = _setting("STUDENT_MODEL_NAME", _parse_model_ref, EMBEDDED_MODEL_NAME,
        "student to fine-tune: the embedded SmolLM2, a transformers name or a local path", aliases=("STUDENT_MODEL",),
        kubeflow=(5,))
    tokenizer_model_name: str = _setting("TOKENIZER_MODEL_NAME", _parse_model_ref, "",
        "tokenizer for chunking and token counts; default: the student's", aliases=("TOKENIZER_MODEL",),
        kubeflow=(2, 4))
    cut_sizes: list[int] = _setting("CUT_SIZES", _parse_cut_sizes, [5, 50], "training-mix cut sizes",
        kubeflow=(4, 5))
    qa_per_doc: int = _setting("QA_PER_DOC", _parse_int(1), 3, "Q&A pairs kept per summary in a mix",
        kubeflow=(4,))
    save_gpt_oss_format: bool = _setting("SAVE_GPT_OSS_FORMAT", _parse_bool, False,
        "also write GPT-OSS format", kubeflow=(4,))
    number_of_summaries: int = _setting("NUMBER_OF_SUMMARIES", _parse_int(1), 5, "summaries per chunk (n)",
        kubeflow=(3,))
    max_concurrency: int = _setting("MAX_CONCURRENCY", _parse_int(1), 16, "requests in flight, whole run",
        kubeflow=(3,))
    enable_reasoning: bool = _setting("ENABLE_REASONING", _parse_bool, False, "ask the teacher for reasoning",
        kubeflow=(3,))
    seed_data_subsample: int | None = _setting("SEED_DATA_SUBSAMPLE", _parse_optional_int, None,
        "use only the first N seed chunks (empty: all)", kubeflow=(3,))
    customisation_prompt: str = _setting("CUSTOMISATION_PROMPT", _parse_str, "",
        "extra instructions for every prompt", kubeflow=(3,))
    # Step 05's MAX_SEQ_LEN (a notebook parameter) truncates training examples instead; one name, two meanings.
    max_seq_len: int | None = _setting("MIX_MAX_SEQ_LEN", _parse_optional_int, None,
        "step 04: drop mix rows longer than this many tokens (MAX_SEQ_LEN, its old name, is still read)",
        aliases=("MAX_SEQ_LEN",), kubeflow=(4,), kubeflow_name="mix_max_seq_len")
    request_timeout: float = _setting("TEACHER_REQUEST_TIMEOUT", _parse_float(0.1, 86400), 300.0,
        "seconds per teacher request (a timed-out request is retried once: at most ~2x this per call)")
    max_retries: int = _setting("TEACHER_MAX_RETRIES", _parse_int(0), 6, "retries per teacher request")
    endpoint_failures: int = _setting("TEACHER_ENDPOINT_FAILURES", _parse_int(1), 3,
        "several base URLs: consecutive failures that take an endpoint out for a cool-down")
    endpoint_cooldown: float = _setting("TEACHER_ENDPOINT_COOLDOWN", _parse_float(0.0, 86400), 5.0,
        "several base URLs: first cool-down in seconds (doubles each time it fails again)")
    endpoint_max_cooldown: float = _setting("TEACHER_ENDPOINT_MAX_COOLDOWN", _parse_float(0.0, 86400), 300.0,
        "several base URLs: longest cool-down in seconds")
    temperature: float = _setting("TEACHER_TEMPERATURE", _parse_float(0.0, 2.0), 0.7,
        "teacher sampling temperature", kubeflow=(3,))
    max_tokens: int = _setting("TEACHER_MAX_TOKENS", _parse_int(1), 1024, "max tokens per teacher completion",
        kubeflow=(3,))
    teacher_idle_timeout: float = _setting("LOCAL_TEACHER_IDLE_TIMEOUT", _parse_float(0.0, 7 * 86400), 600.0,
        "seconds without requests after which a background embedded teacher exits (0: never)")
    teacher_backend: str = _setting("LOCAL_TEACHER_BACKEND", _parse_teacher_backend, "transformers",
        "embedded teacher engine: transformers, or llama (llama.cpp; needs `make llama`)")
    stage_max_tokens: dict[str, int] = _setting("STAGE_MAX_TOKENS", _parse_stage_caps, {},
        "per-stage caps, e.g. judges=1024,answers=2048 (stages: summaries, questions, answers, facts, "
        "qa_pairs, judges)")
    stage_thinking: dict[str, str] = _setting("STAGE_THINKING", parse_stage_map, {},
        "thinking per stage: on, off or an effort (minimal/low/medium/high), e.g. judges=off")
    thinking_control: str = _setting("THINKING_CONTROL", _parse_str, "",
        "how thinking is switched: chat_template_kwargs, reasoning_effort or none (default: by provider)")
    token_budget: int | None = _setting("TOKEN_BUDGET", _parse_optional_int, None,
        "stop generation cleanly after this many tokens sent (empty: no limit)", kubeflow=(3,))
    teacher_price_input: float = _setting("TEACHER_PRICE_INPUT", _parse_float(0.0), 0.0,
        "price per million input (prompt) tokens, for cost estimates and MAX_COST")
    teacher_price_output: float = _setting("TEACHER_PRICE_OUTPUT", _parse_float(0.0), 0.0,
        "price per million output (completion) tokens")
    max_cost: float | None = _setting("MAX_COST", _parse_optional_float, None,
        "stop generation cleanly (resumable) once this much money is spent (needs the prices)", kubeflow=(3,))
    teacher_rpm: int | None = _setting("TEACHER_RPM", _parse_optional_int, None,
        "requests per minute at most (empty: no limit)")
    teacher_tpm: int | None = _setting("TEACHER_TPM", _parse_optional_int, None,
        "tokens per minute at most (empty: no limit)")
    structured_output: str = _setting("STRUCTURED_OUTPUT", _parse_choice("auto", "on", "off"), "off",
        "JSON schema for questions, facts, Q&A pairs and judge scores: auto (where the provider has it), on, off")
    dedup_threshold: float = _setting("DEDUP_THRESHOLD", _parse_float(0.0, 1.0), 0.9,
        "a question this similar (word-bigram Jaccard) to an earlier one is dropped in step 03; "
        "1 = equal text only, 0 = off")
    output_dir: str = _setting("KTOOLS_OUTPUT_DIR", _parse_folder, "",
        "where outputs go (default: <repo>/output)", aliases=("OUTPUT_DATA_FOLDER",))
    local_teacher_api_key: Secret = _setting("LOCAL_TEACHER_API_KEY", _parse_secret, Secret(""),
        "embedded teacher: the key its server requires on /v1 and the client sends (never shown; "
        "empty: no key, fine on 127.0.0.1)", secret=True)
    cache_dir: str = _setting("KTOOLS_CACHE_DIR", _parse_folder, "",
        "converted models cache (default: ~/.cache/ktools)")
    event_loop: str = _setting("KTOOLS_EVENT_LOOP", _parse_choice("auto", "uvloop", "asyncio"), "auto",
        "event loop of ktools' own async work: auto (uvloop when installed), uvloop or asyncio")
    torch_threads: int | None = _setting("KTOOLS_TORCH_THREADS", _parse_optional_int, None,
        "torch CPU threads for training and the embedded teacher (empty: 1 on a busy small CPU, else torch's)")
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        items = []
        for f in dataclasses.fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = mask_secret(value)
            items.append(f"{f.name}={value!r}")
        return "Settings(" + ", ".join(items) + ")"

    __str__ = __repr__

    @property
    def uses_embedded_teacher(self) -> bool:
        return self.teacher_provider == "local"

    @property
    def effective_tokenizer(self) -> str:
        return self.tokenizer_model_name or self.student_model_name

    def as_table(self) -> list[dict[str, str]]:
        """Rows for display (notebooks, `ktools status`), the key masked."""
        rows = []
        for f in _FIELDS:
            value = getattr(self, f.attr)
            shown = mask_secret(value) if f.attr in SECRET_FIELDS else value
            rows.append({"variable": f.env, "value": str(shown),
                         "from": self.sources.get(f.env, "default"), "meaning": f.help})
        return rows

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Declaration:
    """A declared setting, read off its `Settings` field (see `_setting`)."""

    attr: str
    env: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    aliases: tuple[str, ...] = ()
    type: Any = str  # the field's annotation, resolved (e.g. int | None)
    secret: bool = False
    kubeflow: tuple[int, ...] = ()
    kubeflow_name: str = ""


def _declared(f: dataclasses.Field, hints: Mapping[str, Any]) -> Declaration:
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
    meta = f.metadata
    return Declaration(f.name, meta["env"], meta["parse"], default, meta["help"], meta["aliases"], hints[f.name],
                       meta["secret"], meta["kubeflow"], meta["kubeflow_name"])


_FIELDS: tuple[Declaration, ...] = tuple(_declared(f, typing.get_type_hints(Settings))
                                         for f in dataclasses.fields(Settings) if "env" in f.metadata)
ENV_NAMES = {f.attr: f.env for f in _FIELDS}
SECRET_FIELDS = frozenset(f.name for f in dataclasses.fields(Settings) if f.metadata.get("secret"))


def find_repo_root(start: Path | None = None) -> Path:
    """The directory holding pyproject.toml of ktools (or the cwd if none found)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "src" / "ktools").is_dir():
            return candidate
    # Installed as a package outside a checkout: fall back to the working directory.
    return here


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


Layers = list[tuple[str, dict[str, str]]]


def settings_layers(step_dir: str | Path | None = None, environ: Mapping[str, str] | None = None,
                    repo_root: str | Path | None = None) -> Layers:
    """(origin, values) from lowest to highest precedence: root .env, step .env, environment."""
    root = Path(repo_root) if repo_root else find_repo_root()
    layers: Layers = [(str(root / ".env"), _read_dotenv(root / ".env"))]
    if step_dir is not None:
        step_path = Path(step_dir)
        if not step_path.is_absolute():
            step_path = root / step_path
        layers.append((str(step_path / ".env"), _read_dotenv(step_path / ".env")))
    layers.append(("environment", dict(os.environ if environ is None else environ)))
    return layers


def layered_value(layers: Layers, name: str) -> tuple[str | None, str | None]:
    """The raw value of `name` from the highest layer that sets it, and that layer's origin."""
    raw, origin = None, None
    for origin_name, layer in layers:  # later layers win
        if name in layer:
            raw, origin = layer[name], origin_name
    return raw, origin


def invalid_setting(name: str, raw: str, origin: str | None, exc: ValueError, *, secret: bool = False,
                    fallback: str = "") -> ConfigError:
    """The error for a value that does not parse: the variable, where it came from, how to fix it."""
    shown = mask_secret(raw) if secret else raw
    return ConfigError(
        f"{name}={shown!r} (from {origin}) is invalid: expected {exc}. "
        f"Fix it in {origin if origin != 'environment' else 'your environment'} or unset it{fallback}."
    )


def _field_value(f: Declaration, layers: Layers) -> tuple[Any, str | None]:
    """A field's parsed value from the highest layer that sets it (and that layer), or its default."""
    name = f.env
    raw, origin = layered_value(layers, name)
    for alias in f.aliases:
        if raw is not None:
            break
        name = alias
        raw, origin = layered_value(layers, alias)
    if raw is None or (raw.strip() == "" and f.attr not in SECRET_FIELDS):
        return f.default, None
    if name != f.env:
        origin = f"{origin}, as {name}"  # `ktools status` says which name set it
    try:
        return f.parse(raw), origin or "default"
    except ValueError as exc:
        raise invalid_setting(name, raw, origin, exc, secret=f.attr in SECRET_FIELDS,
                              fallback=f" to use the default ({f.default!r})") from None


def declared_settings() -> tuple[Declaration, ...]:
    """Every declared setting, in declaration order (for what is built from them elsewhere, e.g.
    the Kubeflow pipeline's parameters)."""
    return _FIELDS


def setting(attr: str, step_dir: str | Path | None = None, environ: Mapping[str, str] | None = None,
            repo_root: str | Path | None = None) -> Any:
    """One setting, read like `load_settings` reads it (same layers, parser and errors) but
    without validating the others: for low-level code with no Settings at hand."""
    f = next((f for f in _FIELDS if f.attr == attr), None)
    if f is None:
        raise ConfigError(f"unknown setting {attr!r}; known: {', '.join(sorted(ENV_NAMES))}")
    return _field_value(f, settings_layers(step_dir, environ, repo_root))[0]


# The providers' own API-key variables, read (in this order) when TEACHER_MODEL_API_KEY is empty.
PROVIDER_KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "vllm": ("VLLM_API_KEY",),
}
# KTOOLS_* variables ktools sets itself for its own processes (not settings).
INTERNAL_VARIABLES = frozenset({"KTOOLS_TRAIN_STRATEGY"})
WATCHED_PREFIXES = ("KTOOLS_", "TEACHER_")
_warned_unknown: set[str] = set()


def provider_api_key(provider: str, environ: Mapping[str, str] | None = None, step_dir: str | Path | None = None,
                     repo_root: str | Path | None = None) -> str:
    """The provider's own key variable (OPENAI_API_KEY, ...), from the same layers as every setting."""
    layers = settings_layers(step_dir, environ, repo_root)
    for name in PROVIDER_KEY_VARIABLES.get(provider, ()):
        raw, _origin = layered_value(layers, name)
        if raw and raw.strip():
            register_secret(raw.strip())
            return raw.strip()
    return ""


def known_variables() -> frozenset[str]:
    """Every variable name ktools reads as a setting (its aliases included)."""
    names = {f.env for f in _FIELDS} | {a for f in _FIELDS for a in f.aliases}
    names |= {n for group in PROVIDER_KEY_VARIABLES.values() for n in group}
    return frozenset(names | INTERNAL_VARIABLES)


def warn_unknown_variables(layers: Layers) -> list[str]:
    """Log (once per name) KTOOLS_* / TEACHER_* variables no setting reads: a typo, or a name
    from another version, would otherwise be ignored in silence. Returns the unknown names."""
    known = known_variables()
    unknown = sorted({name for _origin, layer in layers for name in layer
                      if name.startswith(WATCHED_PREFIXES) and name not in known})
    for name in unknown:
        if name not in _warned_unknown:
            _warned_unknown.add(name)
            origin = next(o for o, layer in reversed(layers) if name in layer)
            log.warning("%s (from %s) is not a ktools setting and is ignored; check its spelling "
                        "(`ktools status` lists the settings)", name, origin)
    return unknown


def env_example(names: list[str] | None = None) -> str:
    """`.env.example` text for settings (all by default), from their declarations: the meaning
    as a comment, then the variable commented out at its default."""
    blocks = []
    for f in _FIELDS:
        if names is not None and f.env not in names:
            continue
        default = f.default
        if isinstance(default, list):
            default = ",".join(str(v) for v in default)
        elif isinstance(default, dict):
            default = ",".join(f"{k}={v}" for k, v in default.items())
        elif default is None or isinstance(default, Secret):
            default = ""
        blocks.append(f"# {f.help}\n# {f.env}={default}")
    return "\n".join(blocks) + "\n"


def load_settings(
    step_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    repo_root: str | Path | None = None,
    **overrides: Any,
) -> Settings:
    """Read settings. `overrides` (attribute names) win over everything, e.g. from notebook parameters."""
    layers = settings_layers(step_dir, environ, repo_root)
    warn_unknown_variables(layers)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in _FIELDS:
        values[f.attr], origin = _field_value(f, layers)
        if origin is not None:
            sources[f.env] = origin

    for name, value in overrides.items():
        if name not in ENV_NAMES:
            raise ConfigError(f"unknown setting {name!r}; known: {', '.join(sorted(ENV_NAMES))}")
        if value is None:
            continue
        if isinstance(value, str) and name not in SECRET_FIELDS:
            field_def = next(f for f in _FIELDS if f.attr == name)
            try:
                value = field_def.parse(value)
            except ValueError as exc:
                raise ConfigError(f"parameter {name}={value!r} is invalid: expected {exc}") from None
        values[name] = Secret(value) if name in SECRET_FIELDS else value
        sources[ENV_NAMES[name]] = "parameter"

    if not values["teacher_provider"]:
        values["teacher_provider"] = "local" if not values["teacher_base_url"] else "openai"
    settings = Settings(**values, sources=sources)
    register_secret(settings.teacher_api_key)
    register_secret(settings.pdf_password)
    register_secret(settings.local_teacher_api_key)
    log.debug("settings loaded: %r", settings)
    return settings


# --- keep secrets out of every log line, whichever library logs it ---

_SECRETS: set[str] = set()
_base_record_factory = logging.getLogRecordFactory()


class _RedactingLogRecord(logging.LogRecord):
    def getMessage(self) -> str:  # noqa: N802 - logging's name
        message = super().getMessage()
        for secret in _SECRETS:
            if secret in message:
                message = message.replace(secret, mask_secret(secret))
        return message


def register_secret(value: str | None) -> None:
    """Make every later log record mask `value` (API keys, the PDF password; called by load_settings)."""
    if value and len(value) >= 4:
        _SECRETS.add(str.__str__(value))


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_record_factory(*args, **kwargs)
    if _SECRETS and not isinstance(record, _RedactingLogRecord):
        record.__class__ = _RedactingLogRecord
    return record


logging.setLogRecordFactory(_redacting_factory)
