"""The Kubeflow pipeline: steps 02 → 03 → 04 → 05, each step's directory an artifact of the next.

Pipeline parameters are the step notebooks' parameters, lower-cased, with the same
defaults (04's `MIX_MAX_SEQ_LEN` is `mix_max_seq_len`, 05's `TRAIN_MAX_SEQ_LEN` is
`train_max_seq_len`; their old shared name `MAX_SEQ_LEN` sets both), plus the teacher endpoint.
Those that are settings (the teacher endpoint, `number_of_summaries`, `cut_sizes`, …) are not
listed here: each comes from its declaration in `ktools.config`, which names the steps that
take it (`ktools.kubeflow.parameters`); the pipeline function below lists the others. The
teacher's API key is never a parameter: it comes from a Kubernetes secret, mounted as
`TEACHER_MODEL_API_KEY` into the three components that call the teacher (02 drafts ICL
fields in `icl_mode="teacher"`; 03 generates; 04 rephrases the corpus exam's questions).

Where a notebook parameter is None ("the value from .env or the default"), the
pipeline parameter is 0 for numbers (a negative temperature, since 0.0 is a real one),
"" for text and False for switches that default to off: KFP's local runner cannot
pass None. `time_budget_minutes = 0` means no limit (the notebook's None).
"""

import functools
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from kfp import compiler, dsl, kubernetes
from kfp.dsl import Artifact, Model

from ktools.kubeflow.components import make_components
from ktools.kubeflow.names import (
    API_KEY_ENV,
    DEFAULT_IMAGE,
    DEFAULT_SECRET_KEY,
    DEFAULT_SECRET_NAME,
    PIPELINE_NAME,
    STORE_MOUNT,
)
from ktools.kubeflow.parameters import component_settings, pipeline_settings

# Notebook parameters whose pipeline name is not just the lower-cased notebook name.
# MAX_SEQ_LEN: both steps' old name (now MIX_MAX_SEQ_LEN and TRAIN_MAX_SEQ_LEN), still accepted.
NOTEBOOK_ALIASES: dict[str, tuple[str, ...]] = {"MAX_SEQ_LEN": ("mix_max_seq_len", "train_max_seq_len"),
                                                "COMPONENTS": ("mix_components",)}
# Notebook parameters of steps 02-05 the pipeline has no use for, and why.
NOTEBOOK_ONLY: dict[str, str] = {
    "REFRESH_DRAFTS": "a pipeline run starts without cached ICL drafts",
    "DRY_RUN": "an interactive cost preview before the full run",
    "RUN_FULL": "the pipeline always runs the full generation",
    "RETRY_FAILED": "with response_store_dir a re-run always retries failed chunks; without it nothing failed is kept",
    "MIX_PATH": "the mix comes from the step-04 artifact (choose it with cut_size)",
    "RESUME": "a training pod starts without checkpoints",
    "SAMPLE_QUESTIONS": "answers shown in the notebook only",
    "QA_CHECK_ROWS": "the training-set Q&A check is shown in the notebook only",
    "EXAM_PATH": "a user's exam is a local file; the pipeline's leak check covers the corpus exam it builds",
}


class PipelineOutputs(NamedTuple):
    step_02: Artifact
    step_03: Artifact
    step_04: Artifact
    step_05: Artifact
    model: Model


def with_setting_parameters(body: Callable[..., Any]) -> Callable[..., Any]:
    """`body`, whose own parameters are followed by one per declared pipeline setting
    (`pipeline_settings`, with its type and "unset" default), received in `**settings` by
    pipeline name. KFP reads a pipeline's parameters off its signature and calls it with them
    positionally: hence the explicit `__signature__`, and the bind back to names."""
    own = inspect.signature(body)
    parameters = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    parameters += [inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=s.unset,
                                     annotation=s.type) for s in pipeline_settings()]
    signature = own.replace(parameters=parameters)

    @functools.wraps(body)
    def pipeline(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return body(**bound.arguments)

    pipeline.__signature__ = signature  # type: ignore[attr-defined]
    return pipeline


def build_pipeline(image: str = DEFAULT_IMAGE, secret_name: str = DEFAULT_SECRET_NAME,
                   secret_key: str = DEFAULT_SECRET_KEY, train_gpus: int = 0, store_pvc: str = ""):
    """The pipeline object (compile it, or call it after `kfp.local.init` to run it locally).

    `secret_name=""` mounts no secret (the embedded teacher, or an endpoint without a key).
    `train_gpus` GPUs are requested for the training pod (the image then needs CUDA torch).
    `store_pvc` mounts that PersistentVolumeClaim at STORE_MOUNT in the generation pod, for
    the response store to outlive the pod (pass `response_store_dir` under that mount;
    `compile_pipeline` makes it the default).
    """
    components = make_components(image)

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="ktools knowledge tuning: data processing, knowledge generation, mixing, training")
    @with_setting_parameters
    def ktools_pipeline(
        # 02 Data processing
        sources: list = ["assets/sample/sample_document.md"],  # noqa: B006 - KFP needs literal defaults
        converter_backend: str = "auto",
        chunk_max_tokens: int = 768,
        chunk_overlap_tokens: int = 64,
        chunk_min_tokens: int = 128,
        icl_mode: str = "auto",
        icl_file: str = "02_Data_Processing/sample_document.icl.yaml",
        icl_domain: str = "",
        icl_outline: str = "",
        icl_document: str = "",
        icl_queries: list = [],  # noqa: B006
        # 03 Knowledge generation
        generators: str = "all",
        questions_per_chunk: int = 3,
        judges: str = "auto",
        allow_partial: bool = False,
        response_store_dir: str = "",
        # 04 Knowledge mixing
        save_alpaca: bool = False,
        eval_share: float = 0.1,
        seed: int = 42,
        mix_components: str = "all",
        replay_share: float = 0.1,
        replay_self_prompts: int = 0,
        corpus_exam: bool = True,
        exam_share: float = 0.12,
        drop_invented: bool = True,
        # 05 Model training
        cut_size: int = 0,
        method: str = "full",
        backend: str = "auto",
        strategy: str = "auto",
        learning_rate: float = 0.0,
        lr_scheduler: str = "cosine",
        epochs: float = 3.0,
        max_steps: int = 0,
        time_budget_minutes: float = 7.0,
        train_max_seq_len: int = 512,
        tokens_per_batch: int = 2048,
        batching: str = "length",
        max_rows: int = 0,
        retention_kl: float = 0.0,
        freeze_embeddings: bool = False,
        freeze_lower_layers: int = 0,
        update_fraction: float = 1.0,
        calibrate: bool = True,
        # + the settings' parameters (teacher endpoint, number_of_summaries, cut_sizes, …)
        **settings: Any,
    ) -> PipelineOutputs:
        prepare = components.data_processing(
            sources=sources, converter_backend=converter_backend, chunk_max_tokens=chunk_max_tokens,
            chunk_overlap_tokens=chunk_overlap_tokens, chunk_min_tokens=chunk_min_tokens,
            icl_mode=icl_mode, icl_file=icl_file, icl_domain=icl_domain, icl_outline=icl_outline,
            icl_document=icl_document, icl_queries=icl_queries, **component_settings(2, settings))
        prepare.set_display_name("02 Data processing")
        generate = components.knowledge_generation(
            step_02=prepare.outputs["step_02"], generators=generators, questions_per_chunk=questions_per_chunk,
            judges=judges, allow_partial=allow_partial, response_store_dir=response_store_dir,
            **component_settings(3, settings))
        generate.set_display_name("03 Knowledge generation")
        if store_pvc:
            kubernetes.mount_pvc(generate, pvc_name=store_pvc, mount_path=STORE_MOUNT)
        mix = components.knowledge_mixing(
            step_02=prepare.outputs["step_02"], step_03=generate.outputs["step_03"], save_alpaca=save_alpaca,
            eval_share=eval_share, seed=seed, components=mix_components, replay_share=replay_share,
            replay_self_prompts=replay_self_prompts, corpus_exam=corpus_exam, exam_share=exam_share,
            drop_invented=drop_invented,
            **component_settings(4, settings))
        mix.set_display_name("04 Knowledge mixing")
        training = components.model_training(
            step_04=mix.outputs["step_04"], cut_size=cut_size, method=method, backend=backend, strategy=strategy,
            learning_rate=learning_rate, lr_scheduler=lr_scheduler, epochs=epochs, max_steps=max_steps,
            time_budget_minutes=time_budget_minutes, max_seq_len=train_max_seq_len,
            tokens_per_batch=tokens_per_batch, batching=batching, max_rows=max_rows, seed=seed,
            retention_kl=retention_kl, freeze_embeddings=freeze_embeddings,
            freeze_lower_layers=freeze_lower_layers, update_fraction=update_fraction, calibrate=calibrate,
            **component_settings(5, settings))
        training.set_display_name("05 Model training")
        if train_gpus:
            # With 2+, the component launches torchrun workers across them (as the notebook).
            training.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(train_gpus)
        if secret_name:
            for task in (prepare, generate, mix):
                kubernetes.use_secret_as_env(task, secret_name=secret_name,
                                             secret_key_to_env={secret_key: API_KEY_ENV})
        return PipelineOutputs(step_02=prepare.outputs["step_02"], step_03=generate.outputs["step_03"],
                               step_04=mix.outputs["step_04"], step_05=training.outputs["step_05"],
                               model=training.outputs["model"])

    return ktools_pipeline


def parameter_types(pipeline: Any) -> dict[str, str]:
    """Pipeline parameter name → KFP type name (String, Integer, Float, Boolean, List)."""
    return {name: spec.type for name, spec in pipeline.component_spec.inputs.items()}


def pipeline_arguments(pipeline: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """Notebook-style or pipeline-style parameter values → pipeline arguments of the right types.

    Upper-case names are notebook parameters (as in `ktools run -p` and its profiles) or a
    setting's variable (TEACHER_MODEL_BASE_URL → teacher_base_url): those the pipeline has no
    counterpart for (e.g. DRY_RUN, EXAM_LIMIT) are skipped.
    Lower-case names must be pipeline parameters. None becomes the pipeline's "unset".
    """
    types = parameter_types(pipeline)
    variables = {env: (s.name,) for s in pipeline_settings() for env in (s.env, *s.aliases)}
    arguments: dict[str, Any] = {}
    for name, value in values.items():
        if name.isupper():
            targets = NOTEBOOK_ALIASES.get(name) or variables.get(name) or (name.lower(),)
            targets = tuple(t for t in targets if t in types)
        else:
            if name not in types:
                raise ValueError(f"unknown pipeline parameter {name!r}; known: {', '.join(sorted(types))}")
            targets = (name,)
        for target in targets:
            arguments[target] = _coerce(target, value, types[target])
    return arguments


# The notebooks' None ("the value from .env or the default") as the pipeline says it.
UNSET = {"Integer": 0, "Float": 0.0, "String": "", "Boolean": False, "List": []}
# A setting's own "unset", where it is not its type's: temperature -1 (0.0 is a real temperature).
UNSET_OVERRIDES = {s.name: s.unset for s in pipeline_settings() if s.unset != s.type()}
PYTHON_TYPES = {"Integer": int, "Float": float, "Boolean": bool, "String": str, "List": list}


def _coerce(name: str, value: Any, kfp_type: str) -> Any:
    if value is None:
        return UNSET_OVERRIDES.get(name, UNSET.get(kfp_type))
    if kfp_type == "Float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kfp_type == "String" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # e.g. CUT_SIZES=2, parsed as a number
    if kfp_type == "List" and isinstance(value, str):
        return [value]
    wanted = PYTHON_TYPES.get(kfp_type)
    if wanted is not None and (not isinstance(value, wanted) or (wanted is int and isinstance(value, bool))):
        raise ValueError(f"pipeline parameter {name} expects {kfp_type.lower()}, got {value!r}")
    return value


def compile_pipeline(output: str | Path, *, image: str = DEFAULT_IMAGE, secret_name: str = DEFAULT_SECRET_NAME,
                     secret_key: str = DEFAULT_SECRET_KEY, train_gpus: int = 0, store_pvc: str = "",
                     defaults: Mapping[str, Any] | None = None) -> Path:
    """Write the pipeline YAML (KFP IR) to `output`; `defaults` replace parameter defaults.

    With `store_pvc`, `response_store_dir` defaults to the volume's mount point.
    """
    pipeline = build_pipeline(image=image, secret_name=secret_name, secret_key=secret_key, train_gpus=train_gpus,
                              store_pvc=store_pvc)
    arguments = pipeline_arguments(pipeline, defaults or {})
    if store_pvc:
        arguments.setdefault("response_store_dir", STORE_MOUNT)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, package_path=str(output), pipeline_parameters=arguments or None)
    return output
