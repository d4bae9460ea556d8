"""Temperature calibration of the fine-tuned student, folded into its weights.

Trained to a near-zero loss on a few hundred rows (the `learn` profile ends at ~0.16), a small
student becomes overconfident: where it has learned another wording than the reference, or
has not learned the fact, it puts almost all its probability on its own tokens. Greedy
answers do not mind, but every likelihood does — the exam's reference NLL, multiple-choice
scores, sampling at temperature 1. One temperature T, fitted after training on Q&A the
student never trained on (step 04's held-out set), divides every logit; fitted there, it is
the textbook post-hoc calibration (Guo et al. 2017, "On Calibration of Modern Neural
Networks") and changes no greedy answer: argmax is the same at any T.

Measured on the sample document (README, "Calibration"): four ~3-epoch trainings' held-out
Q&A chose T = 1.33-1.46, and at that T the hand-written exam's reference NLL fell 36-38 %
below the base's instead of 26-31 %; the general questions' NLL went from 23 % worse than
the base's to 4 % better. The base student itself is calibrated on the same held-out set
(its best T is 1.0).

The temperature is folded into the weights so every consumer (step 06, export, serving)
sees the calibrated model: the final norm's scale (or an untied output layer) is divided by
T, which divides every logit exactly. A forward pass checks that before anything is written;
a model where no such parameter exists is left as it is, and the report says why.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ktools.io import read_json, write_json

log = logging.getLogger(__name__)

# Temperatures tried: 0.5 to 4 in steps of 5 %, and 1 itself (the uncalibrated NLL is reported
# at exactly T = 1), one forward pass for all of them.
TEMPERATURES = tuple(sorted({round(0.5 * 1.05 ** k, 4) for k in range(43)} | {1.0}))
# Fewer held-out questions than this fit noise, not the model: calibration is skipped.
MIN_QUESTIONS = 3
# A temperature must lower the held-out NLL by at least this share to be applied.
MIN_GAIN = 0.005


def temperature_curve(model: Any, tokenizer: Any, questions: Sequence[str], references: Sequence[str],
                      temperatures: Sequence[float] = TEMPERATURES, *, batch_size: int = 16) -> list[float]:
    """Mean per-question reference NLL (as step 06 measures it) at each temperature."""
    import torch
    import torch.nn.functional as F

    from ktools.evaluate.answering import scored_reference_logits

    per_question: list[list[float]] = []  # [question][temperature]
    for _, logits, targets, counts in scored_reference_logits(model, tokenizer, questions, references,
                                                              batch_size=batch_size):
        rows = []
        for t in temperatures:
            token_nll = F.cross_entropy(logits / t, targets, reduction="none")
            rows.append(torch.stack([part.mean() for part in token_nll.split(counts)]))
        per_question.extend(torch.stack(rows, dim=1).tolist())
    scored = [q for q in per_question if not any(math.isnan(v) for v in q)]
    if not scored:
        return [math.nan] * len(temperatures)
    return [sum(q[j] for q in scored) / len(scored) for j in range(len(temperatures))]


def choose_temperature(curve: Sequence[float], temperatures: Sequence[float] = TEMPERATURES) -> float:
    """The temperature of the lowest NLL, or 1.0 when it gains less than MIN_GAIN over T = 1."""
    at_one = _nll_at(curve, temperatures, 1.0)
    best = min(range(len(curve)), key=lambda j: curve[j])
    if math.isnan(curve[best]) or math.isnan(at_one) or curve[best] > at_one * (1 - MIN_GAIN):
        return 1.0
    return float(temperatures[best])


def _nll_at(curve: Sequence[float], temperatures: Sequence[float], t: float) -> float:
    j = min(range(len(temperatures)), key=lambda k: abs(temperatures[k] - t))
    return curve[j]


def logit_scale_parameters(model: Any) -> list[str]:
    """Names of the parameters that, divided by T together, divide every logit by T: the
    final norm's weight (and bias) when the output layer has no bias, else an untied output
    layer's weight and bias. [] when the model has neither (or soft-caps its logits)."""
    import torch

    if getattr(model.config, "final_logit_softcapping", None):
        return []
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear):
        return []
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    decoder = getattr(model, "base_model", None)
    norm = next((getattr(decoder, a) for a in ("norm", "final_layernorm", "ln_f") if hasattr(decoder, a)), None)
    if head.bias is None and isinstance(getattr(norm, "weight", None), torch.nn.Parameter):
        params = [norm.weight] + ([norm.bias] if getattr(norm, "bias", None) is not None else [])
        return [names[id(p)] for p in params if id(p) in names]
    embeddings = model.get_input_embeddings()
    if embeddings is not None and head.weight is embeddings.weight:
        return []  # tied: scaling the head would scale the inputs too
    return [names[id(p)] for p in (head.weight, head.bias) if p is not None and id(p) in names]


def scale_logits(model: Any, temperature: float, probe_ids: Any) -> list[str]:
    """Divide `model`'s logits by `temperature` through `logit_scale_parameters`, checked on
    `probe_ids`; returns the parameter names changed, [] (model untouched) when the check fails."""
    import torch

    names = logit_scale_parameters(model)
    if not names:
        return []
    params = dict(model.named_parameters(remove_duplicate=False))
    model.eval()
    with torch.no_grad():
        before = model(input_ids=probe_ids).logits.float()
        originals = {n: params[n].data.clone() for n in names}
        for n in names:
            params[n].data /= temperature
        after = model(input_ids=probe_ids).logits.float()
        if not torch.allclose(after * temperature, before, rtol=1e-3, atol=1e-3 * float(before.abs().max())):
            # e.g. a norm computing x * (1 + weight): the parameter does not scale the output.
            for n in names:
                params[n].data.copy_(originals[n])
            return []
    return names


def write_scaled_tensors(model_dir: str | Path, model: Any, names: Sequence[str]) -> list[str]:
    """Rewrite the safetensors files of `model_dir` that hold `names`, with `model`'s values
    (each file written aside, then swapped in). Returns the keys written."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    params = dict(model.named_parameters(remove_duplicate=False))
    written = []
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            keys = set(handle.keys())
            metadata = handle.metadata() or {}
        wanted = [n for n in names if n in keys]
        if not wanted:
            continue
        tensors = load_file(str(file))
        for n in wanted:
            tensors[n] = params[n].data.to(dtype=tensors[n].dtype).contiguous()
        tmp = file.with_name(file.name + ".tmp")
        save_file(tensors, str(tmp), metadata={**metadata, "format": metadata.get("format", "pt")})
        os.replace(tmp, file)
        written.extend(wanted)
    return written


def calibrate_model(model_dir: str | Path, calibration_path: str | Path, *, report_path: str | Path | None = None,
                    batch_size: int = 16) -> dict[str, Any]:
    """Fit the temperature on `calibration_path` (eval-set JSONL: question, answer) and fold it
    into the model in `model_dir`. Returns (and, with `report_path`, stores in that
    train_report.json as `calibration`) what was done: `temperature` (1.0 when nothing changed),
    `reason`, `questions`, `nll_before`, `nll_after`, `parameters`."""
    from ktools.evaluate.evalset import EvalSetError, load_eval_set
    from ktools.models import load_causal_lm, load_tokenizer

    result: dict[str, Any] = {"temperature": 1.0, "set": str(calibration_path), "questions": 0,
                              "nll_before": None, "nll_after": None, "parameters": []}
    unusable = None
    try:
        # Step 04 writes an empty held-out set when the data is too small to split.
        items = load_eval_set(calibration_path) if Path(calibration_path).is_file() else []
    except EvalSetError as exc:  # calibration is a refinement: a bad set must not fail the training
        log.warning("calibration set not usable: %s", exc)
        # Reasons name the file, not its path: reports must not carry a Kubeflow pod's scratch folder
        # (`set` holds the path, which publishing rewrites relative to output/).
        items, unusable = [], str(exc).replace(str(calibration_path), Path(calibration_path).name)
    result["questions"] = len(items)
    if unusable:
        result["reason"] = f"skipped: the held-out set is not usable ({unusable})"
    elif len(items) < MIN_QUESTIONS:
        result["reason"] = (f"skipped: {len(items)} held-out questions in {Path(calibration_path).name} "
                            f"(at least {MIN_QUESTIONS} needed to fit a temperature)")
    else:
        import torch

        tokenizer = load_tokenizer(str(model_dir))
        model = load_causal_lm(str(model_dir), dtype=torch.float32 if not torch.cuda.is_available() else None)
        questions, answers = [i.question for i in items], [i.answer for i in items]
        curve = temperature_curve(model, tokenizer, questions, answers, batch_size=batch_size)
        t = choose_temperature(curve)
        result.update(nll_before=round(_nll_at(curve, TEMPERATURES, 1.0), 4),
                      nll_after=round(_nll_at(curve, TEMPERATURES, t), 4), best_temperature=t)
        if t == 1.0:
            result["reason"] = "not needed: no temperature lowers the held-out NLL by 0.5 % or more"
        else:
            probe = torch.tensor([tokenizer(questions[0] + " " + answers[0])["input_ids"][:64]], device=model.device)
            names = scale_logits(model, t, probe)
            written = write_scaled_tensors(model_dir, model, names) if names else []
            if written and len(written) == len(names):
                result.update(temperature=t, parameters=written, reason="applied")
            else:
                result.update(nll_after=result["nll_before"],
                              reason=("not applied: no parameter of this architecture scales every logit "
                                      "(no final norm or untied output layer that does)") if not names else
                              f"not applied: {sorted(set(names) - set(written))} not found in the model's "
                              "safetensors files")
        # The curve itself, for the notebook's plot and for anyone checking the fit.
        result["curve"] = [[t_, round(v, 4)] for t_, v in zip(TEMPERATURES, curve, strict=True)]
    log.info("calibration: %s (T=%s, held-out NLL %s -> %s over %d questions)", result["reason"],
             result["temperature"], result["nll_before"], result["nll_after"], result["questions"])
    if report_path is not None and Path(report_path).is_file():
        report = read_json(report_path)
        report["calibration"] = result
        write_json(report_path, report)
    return result
