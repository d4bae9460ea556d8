"""Next-token choice for a batch whose rows each have their own temperature, top_p and seed.

One vectorised pass (softmax, nucleus filter, cumulative sum) for all sampled rows;
the only per-row work is drawing one uniform number from the row's own
`torch.Generator`, which is what makes a seeded request reproducible whatever
else shares its batch.
"""

from __future__ import annotations

import torch


def choose_tokens(
    logits: torch.Tensor,
    temperatures: torch.Tensor,
    top_ps: torch.Tensor,
    generators: list[torch.Generator],
) -> torch.Tensor:
    """logits [rows, vocab] -> token ids [rows]. temperature 0 means greedy."""
    logits = logits.float()
    sampled = (temperatures > 0).nonzero(as_tuple=True)[0]
    if sampled.numel() == 0:
        return logits.argmax(dim=-1)
    everyone = sampled.numel() == logits.shape[0]  # the usual case: no argmax, no row copies
    chosen = torch.zeros(logits.shape[0], dtype=torch.long) if everyone else logits.argmax(dim=-1)
    if everyone:
        probs = probabilities(logits, temperatures, top_ps)
    else:
        probs = probabilities(logits[sampled], temperatures[sampled], top_ps[sampled])
    cumulative = probs.cumsum(dim=-1)
    draws = torch.stack([torch.rand((), generator=generators[int(i)]) for i in sampled])
    # Inverse-CDF draw; the clamp guards against a cumulative sum that ends just below 1.0.
    picked = torch.searchsorted(cumulative, (draws * cumulative[:, -1])[:, None]).squeeze(-1)
    picked = picked.clamp(max=logits.shape[-1] - 1)
    if everyone:
        return picked
    chosen[sampled] = picked
    return chosen


def probabilities(logits: torch.Tensor, temperatures: torch.Tensor, top_ps: torch.Tensor) -> torch.Tensor:
    """The distribution each (sampled, temperature > 0) row draws from: softmax(logits / T), nucleus-filtered."""
    scaled = logits.float()
    if bool((temperatures != 1.0).any()):
        scaled = scaled / temperatures[:, None]
    probs = torch.softmax(scaled, dim=-1)
    if bool((top_ps < 1.0).any()):
        probs = _nucleus(probs, top_ps)
    return probs


NUCLEUS_CANDIDATES = 64  # the nucleus is looked for among this many top tokens first


def _nucleus(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Zero every token outside the smallest set whose mass reaches top_p (row-wise).

    Sorting the whole vocabulary of every row is the costly part; the nucleus nearly
    always lies within the top NUCLEUS_CANDIDATES tokens, so those are taken with
    `topk` and only rows whose nucleus is wider fall back to the full sort. The result
    is the same either way."""
    k = min(NUCLEUS_CANDIDATES, probs.shape[-1])
    top, order = probs.topk(k, dim=-1)
    mass_before = top.cumsum(dim=-1) - top
    wide = mass_before[:, -1] + top[:, -1] < top_p  # the top k do not reach top_p
    if bool(wide.any()):
        return _nucleus_full(probs, top_p)
    kept = torch.where(mass_before < top_p[:, None], top, 0.0)
    filtered = torch.zeros_like(probs).scatter_(-1, order, kept)
    return filtered / filtered.sum(dim=-1, keepdim=True)


def _nucleus_full(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = torch.where(mass_before < top_p[:, None], sorted_probs, 0.0)
    filtered = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return filtered / filtered.sum(dim=-1, keepdim=True)
