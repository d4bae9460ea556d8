"""Prompt templates as data: one YAML file per LLM step, Jinja2 text inside.

A prompt file has:

    name: document_qa            # must match the file name
    description: what this step asks for
    system: |                    # optional system message (Jinja2)
      ...
    user: |                      # the user message (Jinja2)
      ...
    # any other keys (e.g. `scale` for judges) are kept in `Prompt.meta`

`load_prompt(name, override_dir)` looks for `<override_dir>/<name>.yaml` (or `.yml`)
first, then the built-in file next to this module, so a user can change any prompt
by copying it into a folder of their own. `load_prompt_file(path, base=name)` reads a
single file: YAML as above, or plain text used as the user message of `base`
(the `--qa-prompt-template-file` habit of the Training Data Generator).

Templates are compiled once per process; undefined variables render as empty
strings so a seed without ICL fields still works (templates test them with `if`).

Template files are user input: they render in Jinja2's sandbox, so a template can read
the variables it is given but not reach Python internals (`__init__`, `__globals__`,
`os.system`). Such a reference is refused when the file loads, naming the file and line,
and the sandbox refuses whatever a static check cannot see at render time.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
import jinja2.sandbox
import jinja2.utils
import yaml
from jinja2.runtime import new_context

PROMPTS_DIR = Path(__file__).resolve().parent


class _StrictSandbox(jinja2.sandbox.SandboxedEnvironment):
    """The sandbox, failing loudly: its default answer to an unsafe attribute is an
    Undefined, which our ChainableUndefined would render as an empty string."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise jinja2.sandbox.SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is not allowed")


_ENV = _StrictSandbox(
    undefined=jinja2.ChainableUndefined,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


# Template globals, passed as plain variables: jinja's own render merges the
# environment's globals (a ChainMap) into every context, which cost more than the
# rest of a render here (the engine renders one prompt per teacher call).
_GLOBALS = {"range": range, "dict": dict, "namespace": jinja2.utils.Namespace}


def _render(template: jinja2.Template, variables: dict[str, Any]) -> str:
    context = new_context(_ENV, template.name, template.blocks, {**_GLOBALS, **variables}, shared=True)
    try:
        return _ENV.concat(template.root_render_func(context))  # type: ignore[attr-defined]
    except Exception:
        _ENV.handle_exception()
        raise


class PromptError(ValueError):
    """A prompt file is missing or malformed; the message names the file and the fix."""


_SANDBOX_HINT = ("prompt templates run sandboxed: use only the variables a prompt is given "
                 "(e.g. {{ document }}) and Jinja2 filters, not Python internals")


def _reach_for_internals(source: str) -> tuple[str, int] | None:
    """(name, line) of the first `x._private` / `x['__dunder__']` in a template, else None."""
    for node in _ENV.parse(source).find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem)):
        if isinstance(node, jinja2.nodes.Getattr):
            name = node.attr
        elif isinstance(node.arg, jinja2.nodes.Const) and isinstance(node.arg.value, str):
            name = node.arg.value
        else:
            continue
        if name.startswith("_"):
            return name, node.lineno
    return None


def check_template(text: str, where: str, part: str = "user") -> None:
    """Raise PromptError naming `where` if the Jinja2 `text` reaches for Python internals
    (for callers that copy a user's template elsewhere before loading it)."""
    try:
        found = _reach_for_internals(text)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{where}: Jinja2 syntax error at line {exc.lineno}: {exc.message}") from None
    if found:
        raise PromptError(f"{where}: the {part} template reaches for {found[0]!r} at line {found[1]}, "
                          f"which is not allowed; {_SANDBOX_HINT}")


@dataclass(frozen=True)
class Prompt:
    name: str
    user: str
    system: str = ""
    description: str = ""
    path: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @functools.cached_property
    def _compiled(self) -> tuple[jinja2.Template | None, jinja2.Template]:
        where = self.path or self.name
        try:
            for part, text in (("system", self.system), ("user", self.user)):
                if text.strip():
                    check_template(text, where, part)
            system = _ENV.from_string(self.system) if self.system.strip() else None
            user = _ENV.from_string(self.user)
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"{where}: Jinja2 syntax error at line {exc.lineno}: {exc.message}") from None
        return system, user

    def _render_named(self, template: jinja2.Template, variables: dict[str, Any]) -> str:
        try:
            return _render(template, variables)
        except jinja2.sandbox.SecurityError as exc:
            raise PromptError(f"{self.path or self.name}: {exc}; {_SANDBOX_HINT}") from None

    @functools.cached_property
    def _static_system(self) -> str | None:
        """The system message when its template has no Jinja syntax (the same for every call:
        rendered once), else None. Most prompts' system messages are plain text."""
        system_t = self._compiled[0]
        if system_t is None or any(mark in self.system for mark in ("{{", "{%", "{#")):
            return None
        return self._render_named(system_t, {}).strip()

    def render(self, system_override: str | None = None, **variables: Any) -> list[dict[str, str]]:
        """Chat messages for these variables. `system_override` replaces the system message."""
        system_t, user_t = self._compiled
        messages = []
        if system_override is not None:
            system_text = system_override.strip()
        elif self._static_system is not None:
            system_text = self._static_system
        else:
            system_text = self._render_named(system_t, variables).strip() if system_t is not None else ""
        if system_text:
            messages.append({"role": "system", "content": system_text})
        messages.append({"role": "user", "content": self._render_named(user_t, variables).strip()})
        return messages

    @property
    def fingerprint(self) -> str:
        blob = json.dumps([self.system, self.user], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_user(self, user: str, path: str = "") -> Prompt:
        return Prompt(name=self.name, user=user, system=self.system, description=self.description,
                      path=path or self.path, meta=dict(self.meta))


def _parse_prompt_file(path: Path, expected_name: str | None) -> Prompt:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: not valid YAML ({exc}). Check indentation of the `user:` block.") from None
    if not isinstance(data, dict):
        raise PromptError(f"{path}: expected a mapping with keys name, system, user")
    user = data.get("user")
    if not isinstance(user, str) or not user.strip():
        raise PromptError(f"{path}: missing field 'user' (the Jinja2 text of the user message)")
    name = str(data.get("name") or expected_name or path.stem)
    if expected_name and name != expected_name:
        raise PromptError(f"{path}: field name={name!r} does not match the file name {expected_name!r}")
    meta = {k: v for k, v in data.items() if k not in {"name", "user", "system", "description"}}
    prompt = Prompt(name=name, user=user, system=str(data.get("system") or ""),
                    description=str(data.get("description") or ""), path=str(path), meta=meta)
    prompt._compiled  # noqa: B018 - fail early on syntax errors, naming the file
    return prompt


@functools.lru_cache(maxsize=256)
def _load_cached(path_str: str, mtime_ns: int, expected_name: str | None) -> Prompt:
    return _parse_prompt_file(Path(path_str), expected_name)


def _load(path: Path, expected_name: str | None) -> Prompt:
    return _load_cached(str(path), path.stat().st_mtime_ns, expected_name)


def available_prompts() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml"))


def load_prompt(name: str, override_dir: str | Path | None = None) -> Prompt:
    """The prompt `name`, from `override_dir` if it holds `<name>.yaml`, else the built-in one."""
    if override_dir:
        folder = Path(override_dir).expanduser()
        if not folder.is_dir():
            raise PromptError(f"prompt override folder {folder} does not exist")
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return _load(candidate, name)
    builtin = PROMPTS_DIR / f"{name}.yaml"
    if not builtin.is_file():
        raise PromptError(f"no prompt named {name!r}; built-in prompts: {', '.join(available_prompts())}")
    return _load(builtin, name)


def load_prompt_file(path: str | Path, base: str) -> Prompt:
    """A single prompt file standing in for prompt `base`: YAML, or plain text = the user message."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PromptError(f"prompt template file {path} does not exist")
    if path.suffix.lower() in {".yaml", ".yml"}:
        prompt = _load(path, None)
        return Prompt(name=base, user=prompt.user, system=prompt.system or load_prompt(base).system,
                      description=prompt.description, path=str(path), meta=prompt.meta)
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise PromptError(f"prompt template file {path} is empty")
    prompt = load_prompt(base).with_user(text, str(path))
    prompt._compiled  # noqa: B018
    return prompt
