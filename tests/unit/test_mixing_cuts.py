"""Cut semantics: exact counts per chunk, feasibility, seeded and nested sampling."""

from __future__ import annotations

from collections import Counter, defaultdict

from ktools.mixing.cuts import plan_cuts, select_cut
from ktools.testing.synthetic_generated import SyntheticShape, generate_rows


def _summaries(n_chunks=4, per_chunk=6, qa=4, seed=0):
    shape = SyntheticShape(n_chunks=n_chunks, summaries_per_chunk=per_chunk, qa_per_summary=qa,
                           words_per_chunk=30, words_per_summary=10)
    return generate_rows("extractive_summary", shape, seed)


def _per_chunk(rows):
    items = defaultdict(set)
    for r in rows:
        items[r["chunk_id"]].add(r["item_id"])
    return {c: len(v) for c, v in items.items()}


def test_cut_keeps_exactly_n_summaries_and_qa_per_doc():
    rows = _summaries(per_chunk=6, qa=4)
    selected = select_cut(rows, cut=3, qa_per_doc=2, seed=1)
    assert set(_per_chunk(selected).values()) == {3}
    assert set(Counter(r["item_id"] for r in selected).values()) == {2}
    assert len(selected) == 4 * 3 * 2
    # Larger than available: all summaries, still at most qa_per_doc each.
    everything = select_cut(rows, cut=50, qa_per_doc=10, seed=1)
    assert len(everything) == len(rows)


def test_sampling_is_seeded_deterministic_nested_and_order_independent():
    rows = _summaries(per_chunk=10, qa=3)
    a = select_cut(rows, 4, 2, seed=7)
    assert a == select_cut(rows, 4, 2, seed=7)
    assert a == select_cut(list(reversed(rows)), 4, 2, seed=7)
    assert {r["item_id"] for r in a} != {r["item_id"] for r in select_cut(rows, 4, 2, seed=8)}
    small = {r["item_id"] for r in select_cut(rows, 2, 2, seed=7)}
    assert small < {r["item_id"] for r in a}  # cut 2 is a subset of cut 4


def test_plan_reports_full_partial_dropped():
    rows = _summaries(per_chunk=6)
    # One chunk loses summaries: min 2, max 6.
    short = [r for r in rows if not (r["chunk_id"].endswith("0000") and not r["item_id"].endswith(("/0", "/1")))]
    plan = plan_cuts([2, 5, 50], {"extractive_summary": short})
    assert plan.cuts == [2, 5]
    assert plan.status == {2: "full", 5: "partial", 50: "dropped"}
    assert "max 6" in plan.reasons[50]
    assert plan.availability[0].min_per_chunk == 2 and plan.availability[0].max_per_chunk == 6


def test_plan_falls_back_when_every_cut_is_infeasible():
    plan = plan_cuts([10, 20], {"detailed_summary": _summaries(per_chunk=3)})
    assert plan.cuts == [3]
    assert plan.status[3] == "fallback"
    assert plan.status[10] == plan.status[20] == "dropped"


def test_plan_without_summary_datasets_builds_one_mix():
    plan = plan_cuts([5, 50], {"key_facts_to_qa": [{"chunk_id": "c", "item_id": "i"}]})
    assert plan.cuts == [5]
    assert plan.status[50] == "dropped"
