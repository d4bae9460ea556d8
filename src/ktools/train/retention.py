"""Retention KL: keep the student's answers to general prompts close to the base model's.

Step 04 mixes in general "replay" rows: the base student's own greedy answers to general
prompts. Trained with hard labels they give one target token per position; the frozen
base model's whole next-token distribution on the same positions says much more about
what it knew (Learning without Forgetting, Li & Hoiem 2016; distillation, Hinton et al.
2015). With ``TrainConfig.retention_kl = λ > 0`` the loss of a batch becomes

    loss = cross-entropy (all rows, as without it)
         + λ · mean over the replay rows' answer positions of KL(p_base || p_student)

Forward KL (base first) pulls the student to cover every token the base gave mass to.
Positions are the shifted ones the cross-entropy uses: logits at t predict token t+1, so
position t counts when label[t+1] is a loss token of a replay example.

The base model runs under no_grad on the replay rows only, so batches without replay rows
cost nothing extra and gradients reach the student alone. λ = 0 loads no base model and
uses the plain `Trainer` (ktools.train.trainer), so the default run is unchanged.
"""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from ktools.train.data import IGNORE_INDEX

# Keys of a batch the base model is run with (the student's layout: padded or packed).
MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")


def kl_positions(labels: Any, distill_mask: Any) -> Any:
    """[B, T-1] bool: logits positions whose next token is a replay example's loss token."""
    return (labels[:, 1:] != IGNORE_INDEX) & distill_mask[:, 1:].bool()


def retention_kl(student_logits: Any, base_logits: Any, positions: Any) -> Any:
    """Mean over `positions` of KL(p_base || p_student), in float32 (bf16 softmaxes lose the tail).

    `*_logits`: [B, T, V] for the same rows; `positions`: [B, T-1] from `kl_positions`.
    """
    import torch.nn.functional as F

    student = student_logits[:, :-1][positions].float().log_softmax(-1)  # [N, V]
    base = base_logits[:, :-1][positions].float().log_softmax(-1)
    # kl_div(input=log q, target=log p, log_target) = Σ p (log p - log q) = KL(p || q)
    return F.kl_div(student, base, log_target=True, reduction="none").sum(-1).mean()


def freeze(model: Any) -> Any:
    """The base model as a fixed reference: eval mode (no dropout), no gradients."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


class RetentionTrainer(Trainer):
    """`Trainer` whose loss adds λ · retention KL on batches with replay rows.

    `base_model`: the frozen base (`freeze`); `retention_weight`: λ. Batches carry
    ``distill_mask`` (ktools.train.batching.collate with distill=True); it is removed here
    before the student sees the batch.
    """

    def __init__(self, *args: Any, base_model: Any, retention_weight: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.base_model = base_model
        self.retention_weight = retention_weight
        self._kl_window: list[float] = []   # since the last log line
        self.kl_sum = 0.0                   # whole run, for train_report.json
        self.kl_batches = 0

    def retention_term(self, model_outputs: Any, inputs: dict[str, Any], distill_mask: Any) -> Any | None:
        """λ-free KL term of this batch, or None when it has no replay answer token."""
        import torch

        rows = distill_mask.any(dim=1)
        positions = kl_positions(inputs["labels"][rows], distill_mask[rows])
        if not bool(positions.any()):
            return None
        device = inputs["input_ids"].device
        if next(self.base_model.parameters()).device != device:  # e.g. FSDP moved the student
            self.base_model.to(device)
        base_inputs = {k: inputs[k][rows] for k in MODEL_INPUTS if inputs.get(k) is not None}
        # The prepared student runs under the Trainer's bf16 autocast; the base is not prepared,
        # so it gets the same autocast here (its logits are cast to float32 in retention_kl).
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.args.bf16):
            base_logits = self.base_model(**base_inputs, use_cache=False).logits
        return retention_kl(model_outputs.logits[rows], base_logits, positions)

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        distill_mask = inputs.pop("distill_mask", None)
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                             num_items_in_batch=num_items_in_batch)
        if distill_mask is not None and bool(distill_mask.any()):
            kl = self.retention_term(outputs, inputs, distill_mask)
            if kl is not None:
                loss = loss + self.retention_weight * kl.to(loss.dtype)
                value = float(kl.detach())
                self._kl_window.append(value)
                self.kl_sum += value
                self.kl_batches += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # The KL of the steps since the last log line, next to the loss (shown by
        # LossProgressCallback, kept in log_history).
        if "loss" in logs and self._kl_window:
            logs["retention_kl"] = round(sum(self._kl_window) / len(self._kl_window), 6)
            self._kl_window = []
        super().log(logs, start_time)

    @property
    def mean_kl(self) -> float | None:
        return self.kl_sum / self.kl_batches if self.kl_batches else None
