"""Run the Kubeflow pipeline on this machine with KFP's local SubprocessRunner.

The same pipeline definition a cluster runs, executed by KFP's local orchestrator:
each component runs as a subprocess of the current Python environment (no container,
no venv), its artifacts under `<output>/kfp_local/<run>/`. Afterwards the step
artifacts are linked into the usual layout (`output/step_02` … `step_05`,
`output/fine_tuned_model/<model>`) so step 06 and `ktools status` find them as if the
notebooks had run.

The API key, if the teacher needs one, comes from the environment or `.env` as
everywhere else on a single machine (no Kubernetes secret here).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.config import load_settings
from ktools.kubeflow.definition import build_pipeline, pipeline_arguments
from ktools.kubeflow.names import DEFAULT_IMAGE
from ktools.paths import OutputPaths

log = logging.getLogger(__name__)

STEP_OUTPUTS = {"step_02": 2, "step_03": 3, "step_04": 4, "step_05": 5}


@dataclass
class LocalRun:
    arguments: dict[str, Any]
    seconds: float
    artifacts: dict[str, Path]                       # pipeline output name -> artifact directory
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    collected: dict[str, Path] = field(default_factory=dict)  # output name -> path in the output layout


def layout_targets(paths: OutputPaths, model_name: str) -> dict[str, Path]:
    """Where each pipeline output lands in the notebooks' layout."""
    targets = {name: paths.step(n) for name, n in STEP_OUTPUTS.items()}
    targets["model"] = paths.fine_tuned_model(model_name)
    return targets


def _link_or_copy(src: str, dst: str) -> str:
    # Hard links: the model is hundreds of MB and the artifact copy stays where KFP put it.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def collect_outputs(artifacts: Mapping[str, Path], targets: Mapping[str, Path]) -> dict[str, Path]:
    """Put each artifact directory at its place in the output layout (replacing what is there)."""
    collected = {}
    for name, source in artifacts.items():
        target = targets.get(name)
        if target is None:
            continue
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target, copy_function=_link_or_copy)
        collected[name] = target
    return collected


def occupied_targets(targets: Mapping[str, Path]) -> list[Path]:
    return [t for t in targets.values() if t.is_dir() and any(t.iterdir())]


def run_local(values: Mapping[str, Any] | None = None, *, output_dir: str | Path | None = None,
              pipeline_root: str | Path | None = None, collect: bool = True, replace: bool = False) -> LocalRun:
    """Run the pipeline locally; `values` are pipeline or notebook parameters (see `pipeline_arguments`).

    `collect` links the results into the output layout; existing step directories there
    are only replaced with `replace=True` (a step_03 may hold hours of teacher answers).
    """
    import kfp.local

    settings = load_settings(output_dir=str(output_dir) if output_dir else None)
    paths = OutputPaths.from_settings(settings)
    pipeline = build_pipeline(image=DEFAULT_IMAGE, secret_name="")
    arguments = pipeline_arguments(pipeline, values or {})
    student = arguments.get("student_model_name") or settings.student_model_name
    targets = layout_targets(paths, student)
    if collect and not replace and (busy := occupied_targets(targets)):
        raise FileExistsError("the pipeline's results would replace " + ", ".join(str(p) for p in busy)
                              + "; move them away, choose another output directory, or pass replace=True "
                              "(`--replace`)")
    root = Path(pipeline_root) if pipeline_root else paths.root / "kfp_local"
    root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   raise_on_error=True)
    started = time.monotonic()
    with warnings.catch_warnings():
        # The runner warns about any image without "python" in its name: the image is
        # not used locally at all (components run in this environment).
        warnings.filterwarnings("ignore", message=".*base image.*", category=RuntimeWarning)
        task = pipeline(**arguments)
    seconds = time.monotonic() - started
    artifacts = {name: Path(artifact.path) for name, artifact in task.outputs.items()}
    metadata = {name: dict(artifact.metadata) for name, artifact in task.outputs.items()}
    run = LocalRun(arguments=arguments, seconds=seconds, artifacts=artifacts, metadata=metadata)
    if collect:
        run.collected = collect_outputs(artifacts, targets)
    log.info("pipeline finished locally in %.0f s", seconds)
    return run
