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
