"""Cut sizes: how many distinct summaries per chunk go into a training mix.

A cut N keeps, for each of the two summary datasets, up to N distinct summaries
(`item_id`) per chunk and up to `qa_per_doc` Q&A per summary. Key-facts and
document-based Q&A go into every mix whole.

Feasibility is judged on the summaries available per chunk (after the eval split):

- **full**: every chunk has at least N summaries — each contributes exactly N;
- **partial**: some chunks have fewer than N (they contribute what they have) but at
  least one has N or more — kept, with a note;
- **dropped**: no chunk has N summaries: the mix would equal a smaller cut's.
  If every requested cut is dropped we build one cut at the largest available count
  instead of failing, and say so.

Sampling is seeded and nested: each chunk's summaries are put in one seeded order
(from the sorted item ids, so file order does not matter), and a cut takes a prefix
of it — cut 5 is a subset of cut 50. The Q&A of a summary are ordered the same way.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ktools.mixing.load import SUMMARY_GENERATORS


@dataclass
class SummaryAvailability:
    generator: str
    chunks: int
    min_per_chunk: int
    mean_per_chunk: float
    max_per_chunk: int


@dataclass
class CutPlan:
    requested: list[int]
    cuts: list[int] = field(default_factory=list)
    status: dict[int, str] = field(default_factory=dict)  # full | partial | dropped | fallback
    reasons: dict[int, str] = field(default_factory=dict)
    availability: list[SummaryAvailability] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        return [{"cut": c, "status": self.status[c], "reason": self.reasons.get(c, "")}
                for c in sorted(self.status)]


def summaries_per_chunk(rows: list[dict[str, Any]]) -> dict[str, int]:
    items: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        items[row["chunk_id"]].add(row["item_id"])
    return {chunk: len(ids) for chunk, ids in items.items()}


def availability(datasets: dict[str, list[dict[str, Any]]]) -> list[SummaryAvailability]:
    out = []
    for generator in SUMMARY_GENERATORS:
        rows = datasets.get(generator)
        if not rows:
            continue
        counts = list(summaries_per_chunk(rows).values())
        out.append(SummaryAvailability(generator, len(counts), min(counts),
                                       round(statistics.fmean(counts), 2), max(counts)))
    return out


def plan_cuts(requested: list[int], datasets: dict[str, list[dict[str, Any]]]) -> CutPlan:
    plan = CutPlan(requested=sorted(set(requested)), availability=availability(datasets))
    if not plan.availability:
        # No summary data: the cut size changes nothing, every mix would be the same.
        cut = plan.requested[0]
        plan.cuts = [cut]
        plan.status[cut] = "full"
        plan.reasons[cut] = "no summary datasets: the mix holds key-facts / document Q&A only"
        for other in plan.requested[1:]:
            plan.status[other] = "dropped"
            plan.reasons[other] = f"no summary datasets: identical to cut {cut}"
        return plan
    lowest_min = min(a.min_per_chunk for a in plan.availability)
    highest_max = max(a.max_per_chunk for a in plan.availability)
    mean = min(a.mean_per_chunk for a in plan.availability)
    for cut in plan.requested:
        if cut <= lowest_min:
            plan.status[cut] = "full"
            plan.reasons[cut] = f"every chunk has at least {lowest_min} summaries"
            plan.cuts.append(cut)
        elif cut <= highest_max:
            plan.status[cut] = "partial"
            plan.reasons[cut] = (f"some chunks have fewer than {cut} summaries (min {lowest_min}, mean {mean}); "
                                 "they contribute all they have")
            plan.cuts.append(cut)
        else:
            plan.status[cut] = "dropped"
            plan.reasons[cut] = (f"no chunk has {cut} summaries (max {highest_max}); the mix would equal "
                                 f"cut {highest_max}. Generate more summaries (NUMBER_OF_SUMMARIES) or lower "
                                 "CUT_SIZES")
    if not plan.cuts:
        plan.cuts = [highest_max]
        plan.status[highest_max] = "fallback"
        plan.reasons[highest_max] = ("all requested cuts exceed the summaries available; built one mix with "
                                     f"all {highest_max} per chunk instead")
    return plan


def _seeded_order(keys: list[str], seed: int, scope: str) -> list[str]:
    ordered = sorted(keys)
    random.Random(f"{seed}|{scope}").shuffle(ordered)
    return ordered


def select_cut(rows: list[dict[str, Any]], cut: int, qa_per_doc: int, seed: int) -> list[dict[str, Any]]:
    """Up to `cut` summaries per chunk, up to `qa_per_doc` Q&A per summary (seeded, nested)."""
    by_chunk: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_chunk[row["chunk_id"]][row["item_id"]].append(row)
    selected: list[dict[str, Any]] = []
    for chunk_id in sorted(by_chunk):
        items = by_chunk[chunk_id]
        generator = next(iter(items.values()))[0]["generator"]
        for item_id in _seeded_order(list(items), seed, f"{generator}|{chunk_id}")[:cut]:
            qa = sorted(items[item_id], key=lambda r: (r["question"], r["response"]))  # file order must not matter
            order = list(range(len(qa)))
            random.Random(f"{seed}|{generator}|{item_id}").shuffle(order)
            selected.extend(qa[i] for i in sorted(order[:qa_per_doc]))
    return selected
