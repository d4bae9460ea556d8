"""Bootstrap confidence intervals for means and for paired differences."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _clean(values: Sequence[float | None]) -> np.ndarray:
    return np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)


def bootstrap_ci(values: Sequence[float | None], *, n_resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> dict[str, Any]:
    """Mean with a percentile bootstrap interval; None entries (missing scores) are left out."""
    data = _clean(values)
    if data.size == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return {"mean": float(data.mean()), "lo": float(np.quantile(means, alpha)),
            "hi": float(np.quantile(means, 1 - alpha)), "n": int(data.size)}


def paired_bootstrap_diff(before: Sequence[float | None], after: Sequence[float | None], **kwargs: Any
                          ) -> dict[str, Any]:
    """Interval of mean(after - before) over the pairs where both values exist."""
    if len(before) != len(after):
        raise ValueError("paired values must have the same length")
    diffs = [a - b for b, a in zip(before, after, strict=True) if a is not None and b is not None]
    return bootstrap_ci(diffs, **kwargs)


def paired_bootstrap_ratio(before: Sequence[float | None], after: Sequence[float | None], *,
                           n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Interval of mean(after) / mean(before) over the pairs where both values exist, resampling
    the pairs together (the same questions in both means). The ratio is None when the base mean
    is 0; resamples whose base mean is 0 count as an unbounded ratio (hi = inf)."""
    if len(before) != len(after):
        raise ValueError("paired values must have the same length")
    pairs = np.array([(b, a) for b, a in zip(before, after, strict=True)
                      if a is not None and b is not None and not math.isnan(a) and not math.isnan(b)], dtype=float)
    if pairs.size == 0 or pairs[:, 0].mean() == 0:
        return {"mean": None, "lo": None, "hi": None, "n": int(len(pairs))}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(pairs), size=(n_resamples, len(pairs)))
    base_means, after_means = pairs[idx, 0].mean(axis=1), pairs[idx, 1].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(base_means > 0, after_means / np.where(base_means > 0, base_means, 1), np.inf)
    alpha = (1 - confidence) / 2
    # No interpolation between order statistics: an unbounded resample stays inf, not nan.
    return {"mean": float(pairs[:, 1].mean() / pairs[:, 0].mean()),
            "lo": float(np.quantile(ratios, alpha, method="inverted_cdf")),
            "hi": float(np.quantile(ratios, 1 - alpha, method="inverted_cdf")), "n": int(len(pairs))}
