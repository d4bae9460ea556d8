"""Freezing the token embeddings and the output head during full fine-tuning.

Why: a small model with tied embeddings (SmolLM2) learns a document's names partly by moving
those tokens' embedding rows, and the same rows are its output head, so their logits rise
after *every* prompt: trained on the sample document, the student answered "What is the
capital of Ireland?" with "Kesterholm", a terminal of the document. With the embeddings and
the head fixed, only the transformer blocks (and norms) learn: facts are stored where facts
are stored (the MLPs), and the prior over output tokens stays the base model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Frozen:
    names: tuple[str, ...]
    parameters: int


def freeze_embeddings(model: Any) -> Frozen:
    """Turn off gradients of the input embeddings and the output head (one matrix when tied)."""
    seen: dict[int, str] = {}
    for label, module in (("input embeddings", model.get_input_embeddings()),
                          ("output head", model.get_output_embeddings())):
        weight = getattr(module, "weight", None) if module is not None else None
        if weight is None:
            continue
        weight.requires_grad_(False)
        name = seen.get(id(weight))
        seen[id(weight)] = f"{name} = {label} (tied)" if name else label
    by_id = {id(p): p for p in model.parameters()}
    return Frozen(tuple(seen.values()), sum(by_id[i].numel() for i in seen if i in by_id))
