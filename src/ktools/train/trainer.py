"""Supervised fine-tuning of the student with the transformers `Trainer`.

Why `Trainer` and not TRL's `SFTTrainer`: TRL installs here, but its assistant-only
loss needs `{% generation %}` markers in the chat template, which SmolLM2's template
lacks; our own collation (ktools.train.data) masks by rendering prefixes and works
with any template, and packing with restarting position ids is native to transformers.
One dependency fewer, and the labels are tested exactly.

Flow: mix → tokens/labels → batches → model (full or LoRA) → step plan (fits the time
budget, measured on this machine) → Trainer with checkpoints → merged model saved
atomically with tokenizer and chat template → loss curve + train_report.json.
"""

from __future__ import annotations

import logging
import math
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ktools.io import read_json, replace_dir_atomic, write_json
from ktools.train.batching import BatchDataset, collate, make_batches, unwrap_single
from ktools.train.budget import StepBudgetCallback
from ktools.train.callbacks import LossProgressCallback, TimeLimitCallback
from ktools.train.config import TrainConfig
from ktools.train.data import load_mix, tokenize_mix
from ktools.train.result import TrainResult
from ktools.train.schedule import scheduler_arguments

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"


def detect_backends() -> dict[str, Any]:
    """Which training backends can run here (training_hub's OSFT needs its package and a GPU)."""
    import importlib.util

    import torch

    has_hub = importlib.util.find_spec("training_hub") is not None
    gpu = torch.cuda.is_available()
    return {"sft": True, "osft": has_hub and gpu, "training_hub_installed": has_hub, "gpu": gpu,
            "device": "cuda" if gpu else "cpu"}


def choose_backend(requested: str) -> str:
    available = detect_backends()
    if requested == "osft" and not available["osft"]:
        raise RuntimeError("backend 'osft' needs the training_hub package and a GPU "
                           f"(installed: {available['training_hub_installed']}, GPU: {available['gpu']}); "
                           "use backend='sft' (or 'auto')")
    if requested == "auto":
        return "osft" if available["osft"] else "sft"
    return requested


def measure_seconds_per_token(model: Any, batch: dict[str, Any], probe_tokens: int = 512, bf16: bool = False,
                              repeats: int = 3) -> float:
    """Forward+backward time per token on this machine (a warm-up, then the median of `repeats`
    timed slices of the longest row of `batch`, so padded batches are not undercounted).

    Why the median: one timed pass on a 2-core CPU varied from 4.6 to 7.6 s a step for the
    same batch (three probes in a row, session 10), and one high probe planned run nu2's
    30 minutes as 186 steps that took 21. Gradients are cleared afterwards, so the model is
    unchanged.
    """
    import torch

    mask = batch.get("attention_mask")
    lengths = mask.sum(dim=1) if mask is not None else torch.full((batch["input_ids"].shape[0],),
                                                                   batch["input_ids"].shape[1])
    row = int(lengths.argmax())
    n = max(16, min(probe_tokens, int(lengths[row])))

    def run(tokens: int) -> float:
        sliced = {k: v[row: row + 1, :tokens].to(model.device) for k, v in batch.items() if k != "attention_mask"}
        start = time.perf_counter()
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(**sliced, use_cache=False)
        out.loss.backward()
        return time.perf_counter() - start

    model.train()
    run(min(64, n))  # warm-up (allocations, kernels)
    elapsed = statistics.median(run(n) for _ in range(max(1, repeats)))
    model.zero_grad(set_to_none=True)
    return elapsed / n


# A forward pass without gradients costs about a third of forward+backward.
BASE_FORWARD_COST = 1 / 3


def retention_cost_factor(examples: Sequence[Any]) -> float:
    """How much longer an epoch takes with retention KL: the frozen base model's forward pass
    on the replay rows' tokens, at ~1/3 of the student's forward+backward per token."""
    total = sum(len(e) for e in examples)
    replay = sum(len(e) for e in examples if getattr(e, "distill", False))
    return 1.0 + BASE_FORWARD_COST * replay / total if total else 1.0


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX tiles or AVX512-BF16).

    There, bf16 autocast (fp32 master weights, bf16 matrix products) trained SmolLM2-135M
    1.3-1.9x faster than fp32 (tokens/s of forward+backward+step, one thread, three
    alternating pairs on a Xeon with AMX); elsewhere bf16 is emulated and slower."""
    import torch

    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # an older torch without the probes
        return False


def _load_model(config: TrainConfig, device: str | None = None) -> Any:
    import torch

    from ktools.models import load_causal_lm

    device = device or config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_causal_lm(config.model_name, device=device, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:  # a GGUF loaded directly
        model.hf_quantizer.remove_quantization_config(model)
    model.config.use_cache = False
    if config.freeze_embeddings and config.method == "full":
        from ktools.train.freeze import freeze_embeddings

        frozen = freeze_embeddings(model)
        log.info("embeddings frozen: %s (%.1fM parameters)", ", ".join(frozen.names), frozen.parameters / 1e6)
    if config.freeze_lower_layers and config.method == "full":
        from ktools.train.freeze import freeze_lower_layers

        frozen = freeze_lower_layers(model, config.freeze_lower_layers)
        log.info("frozen: %s (%.1fM parameters)", ", ".join(frozen.names), frozen.parameters / 1e6)
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    return model


def _plan(config: TrainConfig, checkpoints: Path, steps_per_epoch: int, avg_batch_tokens: float,
          seconds_per_token: float | None, fingerprint: str | None = None) -> dict[str, Any]:
    """The step count and save interval; reused unchanged when resuming the same run."""
    plan_path = checkpoints / PLAN_FILE
    fingerprint = fingerprint or config.fingerprint()
    if config.resume and plan_path.is_file():
        plan = read_json(plan_path)
        if plan.get("fingerprint") == fingerprint:
            return plan
        log.warning("checkpoints in %s belong to another run (different data or parameters); starting afresh",
                    checkpoints)
    if checkpoints.exists():
        shutil.rmtree(checkpoints)
    if config.max_steps:
        steps = config.max_steps
    else:
        steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    seconds_per_step = (seconds_per_token or 0.0) * avg_batch_tokens
    if config.time_budget_minutes and seconds_per_step > 0 and not config.max_steps:
        affordable = int(config.time_budget_minutes * 60 / seconds_per_step)
        if affordable < steps:
            log.warning("the time budget of %.1f min affords %d of %d planned steps (%.2f s/step measured); "
                        "training %d steps (%.2f epochs)", config.time_budget_minutes, affordable, steps,
                        seconds_per_step, max(1, affordable), max(1, affordable) / steps_per_epoch)
            steps = max(1, affordable)
    save_steps = steps
    if config.save_steps:
        save_steps = min(steps, config.save_steps)
    elif seconds_per_step > 0:
        save_steps = max(1, min(steps, int(config.save_every_minutes * 60 / seconds_per_step)))
    plan = {"fingerprint": fingerprint, "max_steps": steps, "save_steps": save_steps,
            "seconds_per_step_estimate": seconds_per_step}
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_json(plan_path, plan)
    return plan


def _last_checkpoint(checkpoints: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not checkpoints.is_dir():
        return None
    return get_last_checkpoint(str(checkpoints))


def save_final_model(model: Any, tokenizer: Any, target: Path, state_dict: dict[str, Any] | None = None) -> Path:
    """Weights (LoRA merged), tokenizer and chat template, written to a temp dir then swapped
    in as a whole (`io.replace_dir_atomic`): an interrupted save leaves the previous model.

    `state_dict`: the full weights gathered from FSDP shards (None: the model's own).
    """
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.config.use_cache = True
    if tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id

    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)
        tokenizer.save_pretrained(folder)

    return replace_dir_atomic(Path(target), write)


def plot_loss_curve(losses: Sequence[tuple[int, float]], path: Path, title: str = "training loss") -> Path | None:
    if not losses:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps, values = zip(*losses, strict=True)
    ax.plot(steps, values, marker="." if len(steps) < 60 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def train(config: TrainConfig, *, progress: bool = True, extra_callbacks: Sequence[Any] = (),
          strategy: str = "single") -> TrainResult:
    """Fine-tune `config.model_name` on `config.mix_path`; see the module docstring.

    `strategy` "ddp"/"fsdp": this process is one of torchrun's workers (ktools.train.worker);
    rank 0 plans, reports and saves, all ranks train. "single": the one process does it all.
    """
    if not config.mix_path:
        raise ValueError("TrainConfig.mix_path is empty; use TrainConfig.from_settings(settings) or pass a mix")
    backend = choose_backend(config.backend)
    if backend == "osft" and config.retention_kl > 0:
        raise ValueError("retention_kl needs the sft backend (training_hub's OSFT has no place for an extra loss); "
                         "use backend='sft' or retention_kl=0")
    if backend == "osft":
        from ktools.train.osft import train_osft

        return train_osft(config)

    from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments

    from ktools.models import load_tokenizer
    from ktools.train.distributed import DistContext, trainer_arguments
    from ktools.train.result import report_dir as report_dir_of

    dist = DistContext.from_env(strategy)
    checkpoints = Path(config.checkpoints_dir or "checkpoints")
    report_dir = report_dir_of(config)
    output_dir = Path(config.output_dir or report_dir / "model")

    tokenizer = load_tokenizer(config.model_name)
    retain = config.retention_kl > 0
    rows = load_mix(config.mix_path, limit=config.max_rows, replay=retain)
    examples = tokenize_mix(tokenizer, rows, config.max_seq_len)
    batches = make_batches(examples, config.batching, config.tokens_per_batch, config.seed)
    dataset = BatchDataset(examples, batches, tokenizer.pad_token_id, distill=retain)
    if retain:
        log.info("retention KL (λ = %g) on %d replay examples", config.retention_kl,
                 sum(e.distill for e in examples))
    tokens_per_epoch = sum(len(e) for e in examples)
    # Each worker trains one batch per step: an epoch takes 1/world_size as many steps.
    steps_per_epoch = math.ceil(len(batches) / dist.world_size)
    log.info("%d rows → %d examples, %d tokens (%d with loss) in %d %s batches of ≤ %d tokens",
             len(rows), len(examples), tokens_per_epoch, sum(e.n_loss_tokens for e in examples), len(batches),
             config.batching, config.tokens_per_batch)

    import torch

    from ktools.train.threads import FollowTheMachine, choose_torch_threads, thread_governor

    cuda = torch.cuda.is_available()
    dist.init(cuda)
    if dist.strategy == "fsdp" and not cuda:
        log.warning("FSDP shards across CUDA GPUs; on CPU workers accelerate trains data parallel (DDP)")
    most_threads = torch.get_num_threads()
    threads = choose_torch_threads()
    torch.manual_seed(config.seed)
    model = _load_model(config, device=dist.model_device(cuda))
    if config.precision == "auto":
        on_gpu = model.device.type == "cuda" or (dist.strategy == "fsdp" and cuda)  # FSDP moves it there
        use_bf16 = torch.cuda.is_bf16_supported() if on_gpu else cpu_has_native_bf16()
    else:
        use_bf16 = config.precision == "bf16"
    seconds_per_token = None
    plan_path = checkpoints / PLAN_FILE
    # Another world size or strategy splits the data differently: its checkpoints are not resumed.
    fingerprint = config.fingerprint() + (f"-{dist.strategy}x{dist.world_size}" if dist.enabled else "")
    resume_possible = (config.resume and plan_path.is_file()
                       and read_json(plan_path).get("fingerprint") == fingerprint)
    # The speed probe needs the model where it trains (FSDP's is on the CPU until sharded).
    probe_here = dist.is_main and dist.strategy != "fsdp"
    if config.time_budget_minutes and not config.max_steps and not resume_possible and probe_here:
        biggest = max(range(len(batches)), key=dataset.tokens)
        probe = collate([examples[i] for i in batches[biggest].indices], batches[biggest].packed,
                        tokenizer.pad_token_id)
        seconds_per_token = measure_seconds_per_token(model, probe, bf16=use_bf16)
        log.info("measured %.1f tokens/s (forward+backward) on this machine", 1 / seconds_per_token)
        if retain:
            seconds_per_token *= retention_cost_factor(examples)
    if dist.is_main:
        plan = _plan(config, checkpoints, steps_per_epoch, tokens_per_epoch / len(batches), seconds_per_token,
                     fingerprint)
    dist.barrier()  # workers read the plan rank 0 wrote (and see its checkpoint clean-up)
    if not dist.is_main:
        plan = read_json(plan_path)
    resume_from = _last_checkpoint(checkpoints) if config.resume else None

    # With a time budget the steps re-plan themselves from their own times (train.budget): the
    # Trainer is built for every step of the epochs asked for and stops where the budget ends.
    step_cap = max(math.ceil(config.epochs * steps_per_epoch), plan["max_steps"])
    fit_budget = bool(config.time_budget_minutes) and not config.max_steps and not dist.enabled
    trainer_steps = step_cap if fit_budget else plan["max_steps"]  # what the Trainer and its schedule are built for
    layer_classes = getattr(model, "_no_split_modules", None) or ()
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=1,
        max_steps=trainer_steps,
        learning_rate=config.effective_learning_rate,
        **scheduler_arguments(config.lr_scheduler, trainer_steps),
        warmup_steps=int(config.warmup_ratio * plan["max_steps"]),
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=1,
        save_strategy="steps",
        save_steps=plan["save_steps"],
        save_total_limit=1,
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        bf16=use_bf16,
        use_cpu=model.device.type == "cpu" and not (dist.strategy == "fsdp" and cuda),
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        **trainer_arguments(dist.strategy, cuda=cuda, layer_classes=layer_classes),
    )
    time_limit = TimeLimitCallback(config.time_budget_minutes * 60 * 1.25 if config.time_budget_minutes else None,
                                   agree=dist.any if dist.enabled else None)
    callbacks = [time_limit, *extra_callbacks]
    # Torch's thread count follows the machine's load between steps (CPU, one process: workers
    # of a distributed run were each given their share of the cores by torchrun).
    follow = FollowTheMachine(thread_governor(threads, most_threads)) if not cuda and not dist.enabled else None
    if follow is not None:
        callbacks.append(follow)
    budget = None
    if fit_budget:
        def keep_replan(steps: int, record: dict[str, Any]) -> None:
            # A resumed run ends at the re-planned step (the plan file is what it reads).
            saved = read_json(plan_path)
            write_json(plan_path, {**saved, "max_steps": steps, "replans": [*saved.get("replans", []), record]})

        budget = StepBudgetCallback(plan["max_steps"], step_cap, config.time_budget_minutes * 60,
                                    replan=resume_from is None, on_replan=keep_replan)
    if progress and dist.is_main:
        callbacks.insert(0, LossProgressCallback())
    if budget is not None:
        callbacks.insert(0, budget)  # first: the progress bar starts from the step count it sets
    trainer_kwargs: dict[str, Any] = {"model": model, "args": args, "train_dataset": dataset,
                                      "data_collator": unwrap_single, "callbacks": callbacks}
    if config.update_fraction < 1.0:
        from ktools.train.mofo import MomentumFilteredAdamW

        # The Trainer builds it (after any FSDP wrapping) with its own scheduler on top.
        trainer_kwargs["optimizer_cls_and_kwargs"] = (MomentumFilteredAdamW, {
            "lr": args.learning_rate, "betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon,
            "weight_decay": args.weight_decay, "fraction": config.update_fraction})
    if retain:
        from ktools.train.retention import RetentionTrainer, freeze

        # The student's loading path without LoRA adapters (the base is the plain model); where the
        # student starts (RetentionTrainer follows it if FSDP moves it). Its forward pass on replay
        # rows is in the step plan (retention_cost_factor).
        base = freeze(_load_model(config.replace(method="full"), device=dist.model_device(cuda)))
        trainer = RetentionTrainer(**trainer_kwargs, base_model=base, retention_weight=config.retention_kl)
    else:
        trainer = Trainer(**trainer_kwargs)
    for default in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(default)
    if dist.enabled:
        log.info("%s across %d workers (Trainer: %s, backend %s)", dist.strategy, args.world_size,
                 args.parallel_mode.value, args.ddp_backend)
    if resume_from:
        log.info("resuming from %s", resume_from)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    elapsed = time.perf_counter() - start
    if dist.enabled:
        log.info("trained as %s", type(trainer.model_wrapped).__name__)

    # FSDP: the full weights are gathered from every shard (a collective: all ranks take part).
    state_dict = trainer.accelerator.get_state_dict(trainer.model) if dist.strategy == "fsdp" else None
    tokens_trained = dist.sum(dataset.real_tokens_seen)
    final_dir = output_dir
    curve = None
    if dist.is_main:
        model_to_save = trainer.accelerator.unwrap_model(trainer.model) if dist.enabled else trainer.model
        final_dir = save_final_model(model_to_save, tokenizer, output_dir, state_dict=state_dict)
    losses = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]
    if dist.is_main:
        curve = plot_loss_curve(losses, report_dir / "loss_curve.png",
                                f"{config.method} fine-tuning of {Path(config.model_name).name}")
    steps = trainer.state.global_step
    result = TrainResult(
        model_dir=str(final_dir), method=config.method, backend=backend, steps=steps,
        planned_steps=plan["max_steps"], steps_per_epoch=steps_per_epoch, epochs_done=steps / steps_per_epoch,
        train_seconds=round(elapsed, 2), tokens_trained=tokens_trained,
        tokens_per_second=round(tokens_trained / elapsed, 1) if elapsed else 0.0,
        first_loss=losses[0][1] if losses else None, final_loss=losses[-1][1] if losses else None,
        losses=losses, stopped_by_time_limit=time_limit.triggered, resumed_from=resume_from,
        n_rows=len(rows), n_examples=len(examples), n_truncated=sum(e.truncated for e in examples),
        tokens_per_epoch=tokens_per_epoch, loss_tokens_per_epoch=sum(e.n_loss_tokens for e in examples),
        seconds_per_token_estimate=seconds_per_token, torch_threads=threads, loss_curve=str(curve) if curve else None,
        config=config.as_dict(), world_size=dist.world_size, strategy=dist.strategy,
        retention_kl_mean=getattr(trainer, "mean_kl", None), replans=budget.replans if budget else [],
        thread_changes=follow.changes if follow else [],
    )
    report_path = report_dir / "train_report.json"
    result.report_path = str(report_path)
    if dist.is_main:
        write_json(report_path, result.to_dict())
        log.info("trained %d steps in %.0f s (%.1f tokens/s); model saved to %s", steps, elapsed,
                 result.tokens_per_second, final_dir)
    dist.barrier()  # nobody leaves before the model and report are written
    return result
