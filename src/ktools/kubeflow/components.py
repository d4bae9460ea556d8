"""The four Kubeflow components (steps 02-05) as KFP lightweight Python components.

KFP ships each function's *source* to the container (or, locally, to a subprocess), so
the functions must be self-contained: they import ktools inside and hand everything to
`ktools.kubeflow.steps`, where the work happens. Parameter names and defaults are the
step notebooks' (lower-cased); 0 / "" / False (a negative temperature) mean "the value
from .env or the default", the notebooks' None (see `ktools.kubeflow.definition`).
`params = dict(locals())` must stay the first statement: it captures the parameters and
nothing else.

The parameters that are settings (teacher endpoint, cut sizes, …) are written out here too,
because KFP ships the source: they must be those declared for the step in `ktools.config`, with
the types and defaults `ktools.kubeflow.parameters` gives them (tests/unit/test_pipeline_compile.py
fails otherwise).

The image is chosen when the pipeline is built (`make_components(image)`), and holds
ktools and its dependencies (kfp too), so nothing is pip-installed when a pod starts.
"""

# No `from __future__ import annotations`: KFP reads the real annotation types.

from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output


def data_processing(
    step_02: Output[Artifact],
    sources: list,
    converter_backend: str = "auto",
    chunk_max_tokens: int = 768,
    chunk_overlap_tokens: int = 64,
    chunk_min_tokens: int = 128,
    tokenizer_model_name: str = "",
    icl_mode: str = "auto",
    icl_file: str = "",
    icl_domain: str = "",
    icl_outline: str = "",
    icl_document: str = "",
    icl_queries: list = [],  # noqa: B006 - KFP needs a literal default
    teacher_provider: str = "",
    teacher_base_url: str = "",
    teacher_model_name: str = "",
):
    """Step 02: convert the sources, chunk by tokens, build the seed dataset."""
    params = dict(locals())
    from ktools.kubeflow.steps import run_data_processing

    params.pop("step_02")
    step_02.metadata.update(run_data_processing(step_02.path, **params))


def knowledge_generation(
    step_02: Input[Artifact],
    step_03: Output[Artifact],
    generators: str = "all",
    number_of_summaries: int = 0,
    questions_per_chunk: int = 3,
    max_concurrency: int = 0,
    seed_data_subsample: int = 0,
    enable_reasoning: bool = False,
    customisation_prompt: str = "",
    temperature: float = -1.0,
    max_tokens: int = 0,
    judges: str = "auto",
    token_budget: int = 0,
    max_cost: float = 0.0,
    allow_partial: bool = False,
    teacher_provider: str = "",
    teacher_base_url: str = "",
    teacher_model_name: str = "",
    response_store_dir: str = "",
):
    """Step 03: the four generators over the seed chunks, with the teacher."""
    params = dict(locals())
    from ktools.kubeflow.steps import run_knowledge_generation

    params.pop("step_02")
    params.pop("step_03")
    step_03.metadata.update(run_knowledge_generation(step_02.path, step_03.path, **params))


def knowledge_mixing(
    step_02: Input[Artifact],
    step_03: Input[Artifact],
    step_04: Output[Artifact],
    cut_sizes: str = "",
    qa_per_doc: int = 0,
    save_gpt_oss_format: bool = False,
    save_alpaca: bool = False,
    max_seq_len: int = 0,
    eval_share: float = 0.1,
    seed: int = 42,
    tokenizer_model_name: str = "",
    components: str = "all",
    replay_share: float = 0.1,
    replay_self_prompts: int = 0,
    corpus_exam: bool = True,
    exam_share: float = 0.12,
    drop_invented: bool = True,
    teacher_provider: str = "",
    teacher_base_url: str = "",
    teacher_model_name: str = "",
):
    """Step 04: eval split, knowledge components and corpus exam (from step 02's chunks; a real
    teacher rephrases its questions), training mixes per cut size, token counts."""
    params = dict(locals())
    from ktools.kubeflow.steps import run_knowledge_mixing

    params.pop("step_02")
    params.pop("step_03")
    params.pop("step_04")
    step_04.metadata.update(run_knowledge_mixing(step_03.path, step_04.path, step_02_in=step_02.path, **params))


def model_training(
    step_04: Input[Artifact],
    step_05: Output[Artifact],
    model: Output[Model],
    student_model_name: str = "",
    cut_sizes: str = "",
    cut_size: int = 0,
    method: str = "full",
    backend: str = "auto",
    strategy: str = "auto",
    learning_rate: float = 0.0,
    lr_scheduler: str = "cosine",
    epochs: float = 3.0,
    max_steps: int = 0,
    time_budget_minutes: float = 7.0,
    max_seq_len: int = 512,
    tokens_per_batch: int = 2048,
    batching: str = "length",
    max_rows: int = 0,
    seed: int = 42,
    retention_kl: float = 0.0,
    freeze_embeddings: bool = False,
    freeze_lower_layers: int = 0,
    update_fraction: float = 1.0,
    calibrate: bool = True,
):
    """Step 05: fine-tune the student on one training mix; the model is its own artifact."""
    params = dict(locals())
    from ktools.kubeflow.steps import run_model_training

    for name in ("step_04", "step_05", "model"):
        params.pop(name)
    summary = run_model_training(step_04.path, step_05.path, model.path, **params)
    step_05.metadata.update(summary)
    model.metadata.update(summary)


@dataclass(frozen=True)
class Components:
    data_processing: Any
    knowledge_generation: Any
    knowledge_mixing: Any
    model_training: Any


def make_components(image: str) -> Components:
    """The four components, running in `image` (which already has ktools and kfp installed)."""
    def build(func):
        return dsl.component(func, base_image=image, install_kfp_package=False)

    return Components(build(data_processing), build(knowledge_generation), build(knowledge_mixing),
                      build(model_training))
