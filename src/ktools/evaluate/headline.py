"""Did the student learn its documents, and did it keep what it knew? The answer in a few lines.

The comparison tables hold every metric of every set; a user (and the acceptance of the
knowledge recipe) reads three numbers off them, each as a ratio to the base with its
interval, which the tables do not show:

- **key facts** on each document exam (the hand-written `exam`, the generated
  `corpus_exam`): tuned ÷ base and tuned − base — how much more of the document the
  student can state;
- **reference NLL** on the same sets: the relative change, (tuned − base) ÷ base — how
  much likelier the reference answers became (negative is better);
- **general retention**: tuned ÷ base on the general set's key facts — how much of what
  the student knew before it still answers.

Intervals are paired bootstraps over the questions (`stats.paired_bootstrap_ratio`), so a
ratio's interval says as much as the difference's does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ktools.evaluate.stats import paired_bootstrap_diff, paired_bootstrap_ratio

DOCUMENT_SETS = ("exam", "corpus_exam")
GENERAL_SET = "general"


def _pairs(report: Mapping[str, Any], name: str, metric: str) -> tuple[list[Any], list[Any]]:
    base_items = {i["id"]: i for i in report["base"]["sets"][name]["items"]}
    pairs = [(base_items[i["id"]].get(metric), i.get(metric)) for i in report["tuned"]["sets"][name]["items"]
             if i["id"] in base_items]
    return [b for b, _ in pairs], [t for _, t in pairs]


def _relative(ratio: Mapping[str, Any]) -> dict[str, Any]:
    """A ratio r as the relative change r − 1 (NLL: −0.30 is 30 % lower)."""
    return {k: (v - 1 if k in {"mean", "lo", "hi"} and v is not None else v) for k, v in ratio.items()}


def headline(report: Mapping[str, Any], *, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """`{set: {key_facts_ratio, key_facts_diff, nll_change}, general: {retention}}` for the sets that
    exist in both the base and the tuned results."""
    sets = [n for n in report["tuned"]["sets"] if n in report["base"]["sets"]]
    kw = {"n_resamples": n_resamples, "seed": seed}
    out: dict[str, Any] = {}
    for name in sets:
        if name == GENERAL_SET:
            out[name] = {"retention": paired_bootstrap_ratio(*_pairs(report, name, "key_fact_hit"), **kw)}
        elif name in DOCUMENT_SETS:
            facts = _pairs(report, name, "key_fact_hit")
            out[name] = {"key_facts_ratio": paired_bootstrap_ratio(*facts, **kw),
                         "key_facts_diff": paired_bootstrap_diff(*facts, **kw),
                         "nll_change": _relative(paired_bootstrap_ratio(*_pairs(report, name, "nll"), **kw))}
    return out


def _num(ci: Mapping[str, Any] | None, fmt: str, *, scale: float = 1.0, sign: bool = False) -> str:
    if not ci or ci.get("mean") is None:
        return "–"

    def one(v: float) -> str:
        if v == float("inf"):
            return "∞"
        return format(v * scale, ("+" if sign else "") + fmt)

    return f"{one(ci['mean'])} [{one(ci['lo'])}, {one(ci['hi'])}]"


def _document_cells(h: Mapping[str, Any]) -> tuple[str, str, str]:
    """A document set's key facts ratio ("×12.3 [4.6, ∞]"; "– (base 0)": nothing to divide by),
    key facts difference and reference NLL change, formatted."""
    ratio = h["key_facts_ratio"]
    times = f"×{_num(ratio, '.1f')}" if ratio.get("mean") is not None else "– (base 0)"
    return times, _num(h["key_facts_diff"], ".3f", sign=True), _num(h["nll_change"], ".0%", sign=True)


def headline_markdown(summary: Mapping[str, Any]) -> list[str]:
    """The "at a glance" lines of eval_report.md (empty when no set has key facts)."""
    rows: list[str] = []
    for name in (*DOCUMENT_SETS, GENERAL_SET):
        h = summary.get(name)
        if not h:
            continue
        if name == GENERAL_SET:
            rows.append(f"| {name} | {_num(h['retention'], '.0%')} of the base's score | | |")
        else:
            times, diff, nll = _document_cells(h)
            rows.append(f"| {name} | {times} | {diff} | {nll} |")
    if not rows:
        return []
    return ["## At a glance", "",
            "Tuned against base on the same questions, 95 % paired bootstrap intervals. Key facts: the share of "
            "answers stating the reference's key fact; NLL: how much likelier the reference answer became "
            "(negative is better); general: the tuned student's general key-fact score as a share of the base's "
            "(what it kept).",
            "", "| set | key facts, tuned ÷ base | key facts, difference | reference NLL change |",
            "|---|---|---|---|", *rows, ""]


def headline_lines(summary: Mapping[str, Any]) -> Sequence[str]:
    """One plain line per set, for logs and the notebook."""
    lines = []
    for name, h in summary.items():
        if name == GENERAL_SET:
            lines.append(f"{name}: {_num(h['retention'], '.0%')} of the base's key-fact score")
        else:
            times, diff, nll = _document_cells(h)
            lines.append(f"{name}: key facts {times}, {diff}; reference NLL {nll}")
    return lines
