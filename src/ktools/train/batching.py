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
- **length-spread**: the same for the knowledge examples, with the general-replay examples
  (`distill`) dealt out one by one over those batches instead of grouped by their own length.
  With plain length grouping the replay rows land in a few batches (run h1, README session 16:
  101 replay rows in 32 of 71 batches, one batch 20 of its 28 rows), so most steps carry no
  retention term and the student drifts between the few that do. Not measured in training yet;
  "length" stays the default.

With `distill=True` (retention KL on, ktools.train.retention) a batch also carries
``distill_mask``: a bool tensor shaped like ``input_ids``, True on every token of a
general-replay example. Per token rather than per row so one design serves both
layouts: in a packed row replay and knowledge examples sit side by side.

`bench/training_batching.py` measures both. Length grouping is the default: with a
length-sorted mix it pads < 1%, and packing pays full attention over the whole packed
row (a block-diagonal mask, no causal fast path), which measured 0.76x as fast here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ktools.train.data import IGNORE_INDEX, TokenizedExample

STRATEGIES = ("packing", "length", "length-spread")


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


def _length_groups(indices: Sequence[int], lengths: Sequence[int], tokens_per_batch: int,
                   reserve: int = 0) -> list[list[int]]:
    """`indices` in length order, cut into groups whose padded size leaves room for `reserve`
    more rows as long as their longest: ``longest x (size + reserve) <= tokens_per_batch``."""
    groups: list[list[int]] = []
    current: list[int] = []
    for i in sorted(indices, key=lambda i: lengths[i]):
        longest = max([lengths[j] for j in current] + [lengths[i]])
        if current and longest * (len(current) + 1 + reserve) > tokens_per_batch:
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def length_grouped_batches(lengths: Sequence[int], tokens_per_batch: int, seed: int = 0) -> list[Batch]:
    """Consecutive examples in length order, as many as fit the padded budget, in shuffled order."""
    batches = _length_groups(range(len(lengths)), lengths, tokens_per_batch)
    random.Random(seed).shuffle(batches)
    return [Batch(tuple(items), packed=False) for items in batches]


def spread_batches(lengths: Sequence[int], spread: Sequence[bool], tokens_per_batch: int,
                   seed: int = 0) -> list[Batch]:
    """Length-grouped batches of the examples not flagged in `spread`, the flagged ones dealt out
    over them: each goes to a batch holding the fewest flagged examples so far (of those, the one
    it pads least), so they are as even as the budget allows.

    The unflagged examples are grouped leaving room for the even share of flagged ones per batch
    (a padded row costs the batch's longest, so the room is counted in rows, not tokens); a
    flagged example longer than every batch's room starts a batch of its own."""
    flagged = [i for i in range(len(lengths)) if spread[i]]
    plain = [i for i in range(len(lengths)) if not spread[i]]
    if not flagged or not plain:
        return length_grouped_batches(lengths, tokens_per_batch, seed)
    reserve = 0
    batches = _length_groups(plain, lengths, tokens_per_batch)
    while (share := math.ceil(len(flagged) / len(batches))) > reserve:  # more batches, smaller share
        reserve = share
        batches = _length_groups(plain, lengths, tokens_per_batch, reserve)
    longest = [max(lengths[i] for i in b) for b in batches]
    dealt = [0] * len(batches)

    def padded_with(b: int, i: int) -> int:
        return max(longest[b], lengths[i]) * (len(batches[b]) + 1)

    for i in sorted(flagged, key=lambda i: -lengths[i]):
        fits = [b for b in range(len(batches)) if padded_with(b, i) <= tokens_per_batch]
        if not fits:
            batches.append([])
            longest.append(0)
            dealt.append(0)
            fits = [len(batches) - 1]
        b = min(fits, key=lambda b: (dealt[b], padded_with(b, i) - longest[b] * len(batches[b])))
        batches[b].append(i)
        longest[b] = max(longest[b], lengths[i])
        dealt[b] += 1
    random.Random(seed).shuffle(batches)
    return [Batch(tuple(items), packed=False) for items in batches]


def make_batches(examples: Sequence[TokenizedExample], strategy: str, tokens_per_batch: int,
                 seed: int = 0) -> list[Batch]:
    if strategy not in STRATEGIES:
        raise ValueError(f"batching must be one of {STRATEGIES}, got {strategy!r}")
    lengths = [len(e) for e in examples]
    if strategy == "packing":
        return pack_batches(lengths, tokens_per_batch, seed)
    if strategy == "length-spread":
        return spread_batches(lengths, [e.distill for e in examples], tokens_per_batch, seed)
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
