"""bench/forgetting_null.py's "general kept" share and interval (the figure the README quotes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bench():
    if "forgetting_null" not in sys.modules:
        spec = importlib.util.spec_from_file_location("forgetting_null", REPO / "bench" / "forgetting_null.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["forgetting_null"] = module
        spec.loader.exec_module(module)
    return sys.modules["forgetting_null"]


def test_kept_share_is_paired_and_its_interval_holds_the_point():
    kept_interval = _bench().kept_interval
    base = [1.0] * 40
    assert kept_interval(base, list(base)) == (1.0, 1.0, 1.0)
    half = [1.0, 0.0] * 20
    point, low, high = kept_interval(base, half)
    assert point == 0.5 and low < 0.5 < high and 0.25 < low and high < 0.75
    # A share of the base's score (as step 06's "kept"), not of its right answers: what the base
    # missed and the other model answers counts too.
    assert kept_interval([1.0, 0.0] * 20, [1.0, 1.0] * 20)[0] == 2.0


def test_largest_entries_keeps_the_biggest_changes_and_zeroes_the_rest():
    import torch

    delta = torch.tensor([[0.5, -3.0, 0.1], [2.0, -0.2, 1.0]])
    cut = _bench().largest_entries(delta, 1 / 3)
    assert torch.equal(cut, torch.tensor([[0.0, -3.0, 0.0], [2.0, 0.0, 0.0]]))
    assert torch.equal(_bench().largest_entries(delta, 1.0), delta)
