"""Freezing the token embeddings and the output head during full fine-tuning.

Why: a small model with tied embeddings (SmolLM2) learns a document's names partly by moving
those tokens' embedding rows, and the same rows are its output head, so their logits rise
after *every* prompt: trained on the sample document, the student answered "What is the
capital of Ireland?" with "Kesterholm", a terminal of the document. With the embeddings and
the head fixed, only the transformer blocks (and norms) learn: facts are stored where facts
are stored (the MLPs), and the prior over output tokens stays the base model's.

Freezing the lowest transformer blocks as well (`freeze_lower_layers`) is about time: no
gradient has to flow below the lowest block that learns, so the backward pass, two thirds of
a training step, shrinks with every block frozen (SmolLM2-135M, 30 blocks, on a 2-core CPU:
15 frozen took a step in ~0.7 of the time; bench/training_frozen_layers.py). Where the time
budget binds, that is more epochs of the same mix; the lower blocks (token and syntax features
every answer uses) also stay the base model's.
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


def decoder_layers(model: Any) -> Any:
    """The model's stack of transformer blocks: the ModuleList as long as `num_hidden_layers`
    (`model.model.layers` in Llama-style models; found by length so other layouts work too)."""
    import torch

    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for _name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and count and len(module) == count:
            return module
    raise ValueError(f"cannot find the {count} transformer blocks of {type(model).__name__} "
                     "to freeze; set freeze_lower_layers to 0 for this model")


def freeze_lower_layers(model: Any, count: int) -> Frozen:
    """Turn off gradients of the lowest `count` transformer blocks (all of a block's weights)."""
    layers = decoder_layers(model)
    if not 0 <= count < len(layers):
        raise ValueError(f"freeze_lower_layers must be in 0..{len(layers) - 1} for a model of "
                         f"{len(layers)} transformer blocks (some must learn), got {count}")
    frozen = 0
    for layer in layers[:count]:
        for weight in layer.parameters():
            weight.requires_grad_(False)
            frozen += weight.numel()
    names = (f"transformer blocks 0-{count - 1} of {len(layers)}",) if count else ()
    return Frozen(names, frozen)
