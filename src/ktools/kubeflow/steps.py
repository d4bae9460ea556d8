"""What each Kubeflow component runs: the step notebooks' own calls, one step per function.

A component receives the directories of earlier steps (its input artifacts) and must
return its own step directory (its output artifact). Each function here therefore:

1. makes a scratch output root and copies the input artifacts into it as
   `step_NN/` (copies, not links: input artifacts may be read-only mounts);
2. loads settings exactly as the notebook does (repository `.env`, the step folder's
   `.env`, the environment — where the teacher's API key arrives from a Kubernetes
   secret — then the parameters), with `output_dir` pointing at the scratch root; the
   parameters that are settings (`**setting_parameters`: the teacher endpoint, cut sizes,
   …) are the ones declared for the step in `ktools.config` (`ktools.kubeflow.parameters`);
3. calls the same `ktools` functions as the notebook, with the same parameters;
4. copies `step_NN/` of the scratch root into the output artifact's path.

No `kfp` import here: these run (and are tested) without the SDK, and the component
functions in `ktools.kubeflow.components` stay a few lines each.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ktools.config import Settings, find_repo_root, load_settings
from ktools.kubeflow.parameters import setting_overrides
from ktools.paths import STEP_FOLDERS, OutputPaths

log = logging.getLogger(__name__)

# Left out of the step-05 artifact: optimizer state of every checkpoint (GBs) that a
# finished run no longer needs; the final model is its own artifact.
TRAINING_ARTIFACT_IGNORE = ("checkpoints",)


class PipelineStepError(RuntimeError):
    """A step finished but its result is not usable by the next one (the message says why)."""


def repo_root() -> Path:
    """The ktools checkout: the working directory's, else the one ktools is installed from.

    Relative SOURCES and ICL_FILE resolve against it, as in the notebooks. In the
    container image it is /opt/ktools (the Containerfile copies the checkout there).
    """
    root = find_repo_root()
    if (root / "src" / "ktools").is_dir():
        return root
    import ktools

    return find_repo_root(Path(ktools.__file__).resolve().parent)


def configure_logging() -> None:
    """INFO logs to the component's log (kfp's executor sets up nothing for us)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            datefmt="%H:%M:%S")
    # One line per HTTP request would drown the step's own messages.
    for name in ("httpx", "httpcore", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def scratch_root(inputs: Mapping[int, str | Path]) -> Iterator[Path]:
    """A fresh output root holding copies of the input step directories; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="ktools-kfp-"))
    try:
        for number, source in inputs.items():
            source = Path(source)
            if not source.is_dir():
                raise FileNotFoundError(f"input artifact for step {number:02d} is not a directory: {source}; "
                                        f"the previous component wrote nothing there")
            shutil.copytree(source, root / f"step_{number:02d}")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def publish(directory: Path, artifact_path: str | Path, ignore: Sequence[str] = (),
            root: Path | None = None) -> Path:
    """Copy a step directory into an output artifact's path (created; merged if it exists).

    With `root` (the scratch output root), paths under it in the step's JSON reports are
    rewritten relative to it ("step_03/report.json"): the scratch folder is gone once
    the pod ends, and the artifact is laid out like `output/` wherever it is downloaded.
    """
    if not directory.is_dir():
        raise PipelineStepError(f"{directory} was not written; the step produced no output")
    target = Path(artifact_path)
    shutil.copytree(directory, target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(*ignore) if ignore else None)
    if root is not None:
        for report in target.rglob("*.json"):
            relativize_paths(report, root)
    return target


REPORT_SIZE_LIMIT = 50 * 2**20  # larger JSON files are data (tokenizers, weights indexes), not reports


def relativize_paths(report: Path, root: Path) -> bool:
    """Rewrite strings naming `root` or a path under it as relative paths; True if the file changed."""
    from ktools.io import write_json

    if report.stat().st_size > REPORT_SIZE_LIMIT:
        return False
    prefix = str(root).rstrip("/") + "/"
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    changed = False

    def fix(value: Any) -> Any:
        nonlocal changed
        if isinstance(value, str) and (value == prefix[:-1] or value.startswith(prefix)):
            changed = True
            return value[len(prefix):] or "."
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    data = fix(data)
    if changed:
        write_json(report, data)
    return changed


def copy_store(source: Path, target: Path) -> Path:
    """A consistent copy of an SQLite response store (its WAL included), via SQLite's backup API."""
    import sqlite3

    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, \
            contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


def _unset(value: Any) -> Any:
    """Pipeline sentinels → None ("the value from .env or the default", the notebooks' None).

    KFP's local runner cannot pass None, so the pipeline says 0 (numbers), "" (text) or
    False (switches that default to off) instead.
    """
    return None if value in (None, 0, "", False) else value


def _since(started: float) -> float:
    return round(time.monotonic() - started, 1)


def _settings(step: int, root: Path, repo: Path, setting_parameters: Mapping[str, Any]) -> Settings:
    """The step's settings as its notebook loads them, its setting parameters on top ("unset" ones
    keep the value from .env / the environment, the notebooks' behaviour)."""
    return load_settings(step_dir=repo / STEP_FOLDERS[step], repo_root=repo, output_dir=str(root),
                         **setting_overrides(step, setting_parameters))


def run_data_processing(
    step_02_out: str | Path, *, sources: Sequence[str], converter_backend: str = "auto",
    chunk_max_tokens: int = 768, chunk_overlap_tokens: int = 64, chunk_min_tokens: int = 128,
    icl_mode: str = "given", icl_file: str = "",
    icl_domain: str = "", icl_outline: str = "", icl_document: str = "", icl_queries: Sequence[str] = (),
    **setting_parameters: Any,
) -> dict[str, Any]:
    """Step 02 as 02_Data_Processing runs it: convert, chunk, seed → the `step_02/` directory.

    `setting_parameters`: step 02's settings (tokenizer, teacher endpoint; `pipeline_settings(2)`)."""
    from ktools.documents import step
    from ktools.documents.errors import format_errors

    configure_logging()
    started = time.monotonic()
    repo = repo_root()
    with scratch_root({}) as root:
        settings = _settings(2, root, repo, setting_parameters)
        resolved = step.resolve_sources(list(sources), repo)
        icl_path = step.resolve_sources([icl_file], repo)[0] if icl_file else None
        given = step.given_from_parameters(icl_domain, icl_outline, icl_document, list(icl_queries))
        conversion = step.convert_step(resolved, settings, backend=converter_backend, progress=False)
        for document in conversion.documents:
            for warning in document.warnings:
                log.warning("%s: %s", document.output, warning)
        if conversion.errors:
            # As in the notebook: a bad source is reported and the others go on.
            log.error("some sources failed to convert:\n%s", format_errors(conversion.errors))
        chunked = step.chunk_step(settings, max_tokens=chunk_max_tokens, overlap_tokens=chunk_overlap_tokens,
                                  min_tokens=chunk_min_tokens)
        for warning in chunked.warnings:
            log.warning("chunking: %s", warning)
        seeded = step.seed_step(settings, mode=icl_mode, given=given, icl_file=icl_path, progress=False)
        publish(OutputPaths.from_settings(settings).step(2), step_02_out, root=root)
    summary = {"documents": len(conversion.documents), "failed_sources": len(conversion.errors),
               "chunks": len(chunked.rows), "seed_rows": len(seeded.rows), "seconds": _since(started)}
    log.info("step 02 done: %s", summary)
    return summary


def run_knowledge_generation(
    step_02_in: str | Path, step_03_out: str | Path, *, generators: str = "all", questions_per_chunk: int = 3,
    judges: str = "auto", allow_partial: bool = False, response_store_dir: str = "", **setting_parameters: Any,
) -> dict[str, Any]:
    """Step 03 as 03_Knowledge_Generation runs it (the full run; no dry run) → `step_03/`.

    `setting_parameters`: step 03's settings (teacher endpoint, number_of_summaries, temperature,
    token_budget, max_cost, …; `pipeline_settings(3)`).

    Fails when chunks failed or the run stopped early for any reason but the token
    budget the caller set: the next step must not train on a silently partial dataset.
    The response store (`responses.sqlite`) is part of the artifact.

    `response_store_dir`: a directory that outlives the pod (a mounted volume). The
    response store lives there while the step runs, each answer stored as it arrives,
    so a failed, killed or re-submitted run resends only the requests never answered
    (and retries the chunks that failed); a copy goes into the artifact at the end.
    Without it the store lives in the pod's scratch space and a failure loses it.
    """
    from ktools.generate.step import generation_options, generation_step

    if judges not in ("auto", "on", "off"):
        raise ValueError(f"judges must be 'auto', 'on' or 'off', got {judges!r}")
    configure_logging()
    started = time.monotonic()
    repo = repo_root()
    with scratch_root({2: step_02_in}) as root:
        # TOKEN_BUDGET and MAX_COST reach the options through the settings, as in the notebook.
        settings = _settings(3, root, repo, setting_parameters)
        paths = OutputPaths.from_settings(settings)
        store = Path(response_store_dir) / paths.response_cache.name if response_store_dir else None
        options = generation_options(
            settings, generators=generators, questions_per_chunk=questions_per_chunk, judges=judges,
            # A kept store means this may be a re-run after failed chunks: that is what it is for.
            retry_failed=store is not None)
        if store is not None:
            store.parent.mkdir(parents=True, exist_ok=True)
            log.info("response store %s (%s)", store, "resuming" if store.is_file() else "new")
        # As the notebook's Generate cell; starts the embedded teacher if no endpoint is set.
        report = generation_step(settings, options, paths=paths, cache_path=store)
        log.info("%s", report.summary())
        # A budget or cost cap is a stop the user asked for; anything else short of complete fails the
        # step, unless allow_partial (as notebook 03's ALLOW_PARTIAL) accepts a partial run, loudly.
        accepted = {"complete", "budget_reached", "cost_limit_reached"} | ({"partial"} if allow_partial else set())
        if report.status == "partial" and allow_partial:
            log.warning("generation is partial and allow_partial is set: going on with %d rows (%s)", report.rows,
                        report.status_reason)
        if (report.failures and not allow_partial) or report.status not in accepted:
            reasons = "; ".join(f"{f.get('generator', '?')} chunk {f.get('chunk_id', '?')}: "
                                f"{f.get('error') or f.get('reason') or '?'}" for f in report.failures[:5])
            reasons = reasons or report.status_reason
            resume = (f" The {report.requests.get('sent', 0)} answers received are kept in {store}: the next run "
                      "with the same response_store_dir resends only the rest." if store is not None else
                      " Set response_store_dir to a mounted volume to keep the answers of a failed run.")
            raise PipelineStepError(
                f"generation ended with status {report.status!r} and {len(report.failures)} failed chunk(s)"
                + (f" ({reasons})" if reasons else "")
                + ". Check the teacher endpoint, model and secret, then run the pipeline again." + resume)
        if store is not None:
            copy_store(store, paths.response_cache)
        publish(paths.step(3), step_03_out, root=root)
    summary = {"status": report.status, "rows": report.rows, "chunks": report.chunks,
               "requests_sent": report.requests.get("sent", 0), "seconds": _since(started)}
    summary.update({f"rows_{name}": g.get("rows", 0) for name, g in report.generators.items()})
    return summary


def run_knowledge_mixing(
    step_03_in: str | Path, step_04_out: str | Path, *, save_alpaca: bool = False, eval_share: float = 0.1,
    seed: int = 42, step_02_in: str | Path | None = None, components: str = "all", replay_share: float = 0.1,
    corpus_exam: bool = True, exam_share: float = 0.12, drop_invented: bool = True, replay_self_prompts: int = 0,
    **setting_parameters: Any,
) -> dict[str, Any]:
    """Step 04 as 04_Knowledge_Mixing runs it → `step_04/` (training mixes, eval set, corpus exam, stats).

    Step 02's artifact (`step_02_in`) gives the knowledge components and the corpus exam their
    chunks; without it step 03's rows are mixed alone (the report says so).
    `setting_parameters`: step 04's settings (cut_sizes, qa_per_doc, max_seq_len, …; `pipeline_settings(4)`)."""
    from ktools.mixing import MixOptions, mixing_step

    configure_logging()
    started = time.monotonic()
    repo = repo_root()
    inputs = {3: step_03_in, **({2: step_02_in} if step_02_in else {})}
    with scratch_root(inputs) as root:
        settings = _settings(4, root, repo, setting_parameters)
        options = MixOptions.from_settings(settings, save_alpaca=save_alpaca, eval_share=eval_share, seed=seed,
                                           components=components, replay_share=replay_share,
                                           corpus_exam=corpus_exam, exam_share=exam_share,
                                           drop_invented=drop_invented, replay_self_prompts=replay_self_prompts)
        paths = OutputPaths.from_settings(settings)
        # As the notebook: a real teacher (the pipeline's teacher parameters, its key from the secret)
        # rephrases the corpus exam.
        report = mixing_step(settings, options, paths, progress=False)
        for note in report.notes:
            log.info("mixing: %s", note)
        publish(paths.step(4), step_04_out, root=root)
    return {"cuts": ",".join(str(c) for c in report.cuts), "seconds": _since(started)}


def run_model_training(
    step_04_in: str | Path, step_05_out: str | Path, model_out: str | Path, *, cut_size: int | None = None,
    method: str = "full", backend: str = "auto", strategy: str = "auto",
    learning_rate: float | None = None, lr_scheduler: str = "cosine", epochs: float = 3.0,
    max_steps: int | None = None, time_budget_minutes: float | None = 7.0, max_seq_len: int = 512, tokens_per_batch: int = 2048,
    batching: str = "length", max_rows: int | None = None, seed: int = 42, retention_kl: float = 0.0,
    calibrate: bool = True, freeze_embeddings: bool = False, freeze_lower_layers: int = 0,
    update_fraction: float = 1.0, **setting_parameters: Any,
) -> dict[str, Any]:
    """Step 05 as 05_Model_Training runs it → `step_05/` (report, loss curve) and the model directory.

    On a node with 2+ GPUs (and an image with CUDA torch) it trains through torchrun
    workers, DDP or FSDP (`strategy`), like the notebook.

    `setting_parameters`: step 05's settings (student_model_name, cut_sizes; `pipeline_settings(5)`).
    `cut_sizes` is the mixing step's: with no `cut_size`, the smallest of those cuts is
    trained (the notebook takes it from the same CUT_SIZES setting). `max_seq_len` is the
    training one (the pipeline's `train_max_seq_len`), not a setting.
    """
    from ktools.train import TrainConfig
    from ktools.train.launch import run_training

    configure_logging()
    started = time.monotonic()
    repo = repo_root()
    with scratch_root({4: step_04_in}) as root:
        settings = _settings(5, root, repo, setting_parameters)
        config = TrainConfig.from_settings(
            settings, cut=_unset(cut_size), method=method, backend=backend, learning_rate=_unset(learning_rate),
            lr_scheduler=lr_scheduler, epochs=epochs, max_steps=_unset(max_steps), max_seq_len=max_seq_len, tokens_per_batch=tokens_per_batch,
            batching=batching, max_rows=_unset(max_rows), seed=seed, retention_kl=retention_kl,
            freeze_embeddings=freeze_embeddings, freeze_lower_layers=freeze_lower_layers,
            update_fraction=update_fraction)
        # The notebook's TIME_BUDGET_MINUTES = None (no limit) is 0 here; from_settings skips None values.
        config = config.replace(time_budget_minutes=_unset(time_budget_minutes))
        if not calibrate:  # the notebook's CALIBRATE = False
            config = config.replace(calibration_path="")
        if not Path(config.mix_path).is_file():
            raise PipelineStepError(f"training mix {Path(config.mix_path).name} is not in the step-04 artifact; "
                                    f"set cut_size to one of the mixing step's cut sizes")
        # As the notebook: in this process on a CPU or one GPU, torchrun workers on a node with 2+.
        result = run_training(config, strategy, progress=False)
        publish(Path(config.report_dir), step_05_out, ignore=TRAINING_ARTIFACT_IGNORE, root=root)
        publish(Path(result.model_dir), model_out, root=root)
    return {"model": Path(result.model_dir).name, "steps": result.steps, "final_loss": result.final_loss,
            "train_seconds": round(result.train_seconds, 1), "seconds": _since(started)}

