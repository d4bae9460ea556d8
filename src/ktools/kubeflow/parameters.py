"""The settings a pipeline run takes as parameters, built from their declarations in `ktools.config`.

A setting declared with `kubeflow=(steps…)` is one pipeline parameter, named after its
`Settings` field (or its `kubeflow_name`: `mix_max_seq_len`), handed to those steps'
components under the field's name, and from there to `load_settings` as an override. So a
setting added to a step's declaration reaches the pipeline without a second list to keep.

Its pipeline type is what KFP can pass: a list or mapping travels as its environment text
(`cut_sizes` "5,50", parsed by the setting's own parser in the pod). Its default is "unset"
("the value from .env or the declared default", the notebooks' None), which KFP's local runner
cannot pass as None: the zero of the type, or -1 where zero is a real value of the setting
(a temperature of 0.0). Secrets are never declared so (`_setting` refuses): a parameter's
value shows in the KFP UI and in the compiled file; the key comes from a Kubernetes secret.

No kfp import: the step functions use this in the pods, and it is tested without the SDK.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ktools.config import Declaration, declared_settings


@dataclass(frozen=True)
class PipelineSetting:
    name: str                # the pipeline parameter
    attr: str                # the Settings field: the components' parameter and the override's name
    type: type               # str, int, float or bool: what KFP passes
    unset: Any               # the parameter's default, meaning "from .env or the declared default"
    steps: tuple[int, ...]   # the steps whose component takes it
    env: str                 # the environment variable (also accepted as a name by `pipeline_arguments`)
    aliases: tuple[str, ...] = ()

    def override(self, value: Any) -> Any:
        """The `load_settings` override for a value a component received (None: keep .env / the default)."""
        if value is None or value == self.unset:
            return None
        if self.type in (int, float) and self.unset < 0 and value < 0:
            return None  # any negative number says "unset" where the sentinel is -1
        return value


def _pipeline_type(declaration: Declaration) -> type:
    hint = declaration.type
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [t for t in typing.get_args(hint) if t is not type(None)]  # Optional[X] -> X
    if typing.get_origin(hint) in (list, dict):
        return str  # the environment text, e.g. CUT_SIZES "5,50"
    if hint in (str, int, float, bool):
        return hint
    raise TypeError(f"{declaration.env}: a {declaration.type} setting cannot be a pipeline parameter")


def _unset(declaration: Declaration, kind: type) -> Any:
    if kind is bool and declaration.default:
        # False would be "unset", so the switch could never be turned off from the pipeline.
        raise ValueError(f"{declaration.env} defaults to on and cannot be a pipeline parameter")
    if kind in (int, float):
        try:
            real = declaration.parse("0") is not None
        except ValueError:
            real = False
        if real:
            return kind(-1)
    return kind()


def _from_declaration(declaration: Declaration) -> PipelineSetting:
    kind = _pipeline_type(declaration)
    return PipelineSetting(declaration.kubeflow_name or declaration.attr, declaration.attr, kind,
                           _unset(declaration, kind), declaration.kubeflow, declaration.env, declaration.aliases)


def pipeline_settings(step: int | None = None) -> tuple[PipelineSetting, ...]:
    """The declared settings that are pipeline parameters (those of one step's component with `step`)."""
    return tuple(_from_declaration(d) for d in declared_settings()
                 if d.kubeflow and (step is None or step in d.kubeflow))


def component_settings(step: int, values: Mapping[str, Any]) -> dict[str, Any]:
    """A step's setting arguments for its component, from the pipeline's values (keyed by pipeline name)."""
    return {s.attr: values[s.name] for s in pipeline_settings(step)}


def setting_overrides(step: int, values: Mapping[str, Any]) -> dict[str, Any]:
    """`load_settings` overrides from the setting arguments a step's component received (by field name)."""
    known = {s.attr: s for s in pipeline_settings(step)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TypeError(f"step {step:02d} takes no setting parameter {', '.join(unknown)}; "
                        f"its settings: {', '.join(known)}")
    return {attr: known[attr].override(value) for attr, value in values.items()}
