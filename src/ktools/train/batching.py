"""Batches of tokenized examples under a token budget: packing or length grouping.

Both strategies build every batch up front (deterministic for a seed) so that a
`Trainer` with batch size 1 sees one pre-built batch per item and resume skips
exactly the batches already trained on.

- **packing**: examples are laid end to end in one row of at most `tokens_per_batch`
  tokens, position ids restart at 0 for each example. transformers detects this
  packed format (attention mask None + restarting position ids) and keeps attention
  inside each example, so nothing leaks between examples and there is no padding.
  The first label of every example is -100 (no prediction across a boundary).
- **length**: examples sorted by length are grouped so that
  ``batch_size x longest <= tokens_per_batch``; rows are right-padded.

With `distill=True` (retention KL on, ktools.train.retention) a batch also carries
``distill_mask``: a bool tensor shaped like ``input_ids``, True on every token of a
general-replay example. Per token rather than per row so one design serves both
layouts: in a packed row replay and knowledge examples sit side by side.

`bench/training_batching.py` measures both. Length grouping is the default: with a
length-sorted mix it pads < 1%, and packing pays full attention over the whole packed
row (a block-diagonal mask, no causal fast path), which measured 0.76x as fast here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ktools.train.data import IGNORE_INDEX, TokenizedExample

STRATEGIES = ("packing", "length")


@dataclass(frozen=True)
class Batch:
    """Indices into the example list, plus the layout."""

    indices: tuple[int, ...]
    packed: bool


def pack_batches(lengths: Sequence[int], tokens_per_batch: int, seed: int = 0) -> list[Batch]:
    """First-fit-decreasing bins of at most `tokens_per_batch` tokens, in shuffled order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        size = min(lengths[i], tokens_per_batch)
        for b, free in enumerate(room):
            if size <= free:
                bins[b].append(i)
                room[b] -= size
                break
        else:
            bins.append([i])
            room.append(tokens_per_batch - size)
    rng = random.Random(seed)
    for items in bins:
        rng.shuffle(items)
    rng.shuffle(bins)
    return [Batch(tuple(items), packed=True) for items in bins]


def length_grouped_batches(lengths: Sequence[int], tokens_per_batch: int, seed: int = 0) -> list[Batch]:
    """Consecutive examples in length order, as many as fit the padded budget, in shuffled order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max([lengths[j] for j in current] + [lengths[i]])
        if current and longest * (len(current) + 1) > tokens_per_batch:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    random.Random(seed).shuffle(batches)
    return [Batch(tuple(items), packed=False) for items in batches]


def make_batches(examples: Sequence[TokenizedExample], strategy: str, tokens_per_batch: int,
                 seed: int = 0) -> list[Batch]:
    if strategy not in STRATEGIES:
        raise ValueError(f"batching must be one of {STRATEGIES}, got {strategy!r}")
    lengths = [len(e) for e in examples]
    if strategy == "packing":
        return pack_batches(lengths, tokens_per_batch, seed)
    return length_grouped_batches(lengths, tokens_per_batch, seed)


def collate(examples: Sequence[TokenizedExample], packed: bool, pad_token_id: int,
            distill: bool = False) -> dict[str, Any]:
    """Tensors for one batch (packed: one row with restarting position ids; else right-padded).

    `distill`: add ``distill_mask`` (True on the tokens of examples flagged `distill`)."""
    import torch

    if packed:
        input_ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        flags: list[bool] = []
        for example in examples:
            input_ids += example.input_ids
            labels += [IGNORE_INDEX] + example.labels[1:]
            positions += list(range(len(example)))
            flags += [example.distill] * len(example)
        batch = {
            "input_ids": torch.tensor([input_ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions]),
        }
        if distill:
            batch["distill_mask"] = torch.tensor([flags], dtype=torch.bool)
        return batch
    longest = max(len(e) for e in examples)
    ids = torch.full((len(examples), longest), pad_token_id, dtype=torch.long)
    labels_t = torch.full((len(examples), longest), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), longest), dtype=torch.long)
    distill_mask = torch.zeros((len(examples), longest), dtype=torch.bool)
    for row, example in enumerate(examples):
        n = len(example)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels_t[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
        distill_mask[row, :n] = example.distill
    batch = {"input_ids": ids, "labels": labels_t, "attention_mask": mask}
    if distill:
        batch["distill_mask"] = distill_mask
    return batch


class BatchDataset:
    """A map-style dataset whose items are whole batches (use with batch size 1)."""

    def __init__(self, examples: Sequence[TokenizedExample], batches: Sequence[Batch], pad_token_id: int,
                 distill: bool = False):
        self.examples = examples
        self.batches = list(batches)
        self.pad_token_id = pad_token_id
        self.distill = distill  # batches carry distill_mask (only when the retention KL is on)
        self.real_tokens_seen = 0  # counted as batches are built, for tokens/s

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, Any]:
        batch = self.batches[index]
        chosen = [self.examples[i] for i in batch.indices]
        self.real_tokens_seen += sum(len(e) for e in chosen)
        return collate(chosen, batch.packed, self.pad_token_id, self.distill)

    def tokens(self, index: int) -> int:
        return sum(len(self.examples[i]) for i in self.batches[index].indices)


def unwrap_single(features: list[dict[str, Any]]) -> dict[str, Any]:
    """Data collator for BatchDataset: the DataLoader hands over a list of one batch."""
    if len(features) != 1:
        raise ValueError("BatchDataset items are whole batches; use per_device_train_batch_size=1")
    return features[0]
