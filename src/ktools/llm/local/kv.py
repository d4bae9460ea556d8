"""A batch KV cache that rows can join and leave between decode steps.

transformers' `DynamicCache` grows by `torch.cat` on every step, which copies the
whole cache each token; with 16-32 rows of a few hundred tokens that copy costs as
much as the attention itself on this CPU. Here each layer owns a preallocated
buffer `[rows, kv_heads, capacity, head_dim]`; a step writes one column in place.

Rows are left-aligned to a shared length `length` (shorter rows are padded on the
left, and the attention mask hides the padding). Joining (`merge`) right-aligns
both parts to the longer length; leaving (`select`) keeps some rows and drops the
leading columns that have become padding for every remaining row.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

GROW_STEP = 128  # extra columns allocated when a buffer is full (amortises copies)


class _BufferLayer(DynamicLayer):
    """One layer's view of a `BatchKV`: writes new keys/values into its buffers in place."""

    def __init__(self, owner: BatchKV, index: int):
        super().__init__()
        self.owner = owner
        self.index = index
        self.is_initialized = True
        self.dtype = owner.dtype
        self.device = owner.device

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        owner = self.owner
        start = owner.length
        stop = start + key_states.shape[-2]
        owner.ensure_capacity(stop)
        kbuf, vbuf = owner.keys[self.index], owner.values[self.index]
        kbuf[:, :, start:stop] = key_states
        vbuf[:, :, start:stop] = value_states
        self.keys, self.values = kbuf[:, :, :stop], vbuf[:, :, :stop]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.owner.length


class BatchKV:
    """Keys/values of every layer for the rows currently decoding."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], length: int):
        self.keys = keys  # per layer: [rows, heads, capacity, head_dim]
        self.values = values
        self.length = length
        self.dtype = keys[0].dtype
        self.device = keys[0].device

    @property
    def rows(self) -> int:
        return self.keys[0].shape[0]

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    @classmethod
    def from_cache(cls, cache: DynamicCache, pad_mask: torch.Tensor) -> BatchKV:
        """Take over a prefill's cache; padded positions are zeroed (a fully masked
        query can produce NaN there, and 0 * NaN would leak into later attention)."""
        keep = pad_mask.bool()[:, None, :, None]
        keys, values = [], []
        for layer in cache.layers:
            keys.append(torch.where(keep, layer.keys, 0.0).contiguous())
            values.append(torch.where(keep, layer.values, 0.0).contiguous())
        return cls(keys, values, pad_mask.shape[1])

    def as_cache(self) -> DynamicCache:
        cache = DynamicCache()
        cache.layer_class_to_replicate = None
        cache.layers = [_BufferLayer(self, i) for i in range(len(self.keys))]
        return cache

    def ensure_capacity(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        new_capacity = needed + GROW_STEP
        for buffers in (self.keys, self.values):
            for i, buf in enumerate(buffers):
                grown = buf.new_zeros((buf.shape[0], buf.shape[1], new_capacity, buf.shape[3]))
                grown[:, :, : self.length] = buf[:, :, : self.length]
                buffers[i] = grown

    def select(self, rows: torch.Tensor, drop_left: int = 0) -> None:
        """Keep only `rows` (indices) and drop the first `drop_left` columns."""
        for buffers in (self.keys, self.values):
            for i, buf in enumerate(buffers):
                buffers[i] = buf[rows, :, drop_left : self.length].contiguous()
        self.length -= drop_left

    def repeat_rows(self, counts: list[int]) -> None:
        """Row i is repeated counts[i] times (n samples share one prompt prefill)."""
        index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        for buffers in (self.keys, self.values):
            for i, buf in enumerate(buffers):
                buffers[i] = buf.index_select(0, index)

    def merge(self, other: BatchKV) -> None:
        """Append `other`'s rows; both are right-aligned to the longer length."""
        length = max(self.length, other.length)
        total_rows = self.rows + other.rows
        for buffers, other_buffers in ((self.keys, other.keys), (self.values, other.values)):
            for i, (buf, obuf) in enumerate(zip(buffers, other_buffers, strict=True)):
                merged = buf.new_zeros((total_rows, buf.shape[1], length + GROW_STEP, buf.shape[3]))
                merged[: buf.shape[0], :, length - self.length : length] = buf[:, :, : self.length]
                merged[buf.shape[0] :, :, length - other.length : length] = obuf[:, :, : other.length]
                buffers[i] = merged
        self.length = length
