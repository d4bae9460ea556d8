"""What a mixing run produced: per-cut and per-dataset numbers, `mix_stats.json`, plots."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


def dataset_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    lengths = [r["token_length"] for r in records]
    return {
        "rows": len(records),
        "chunks": len({r["metadata"]["chunk_id"] for r in records}),
        "items": len({r["metadata"]["item_id"] for r in records}),  # summaries / key facts / chunks
        "total_tokens": sum(lengths),
        "mean_tokens": round(statistics.fmean(lengths), 1) if lengths else 0.0,
        "max_tokens": max(lengths, default=0),
    }


@dataclass
class MixReport:
    """Everything `build_mixes` did; `as_dict()` is what `mix_stats.json` holds."""

    options: dict[str, Any]
    inputs: list[dict[str, Any]]
    split: dict[str, Any]
    feasibility: list[dict[str, Any]]
    availability: list[dict[str, Any]]
    cuts: list[int]
    per_dataset: list[dict[str, Any]] = field(default_factory=list)  # one row per (cut, format, dataset)
    files: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)  # (cut, format, dataset, reason, rows)
    token_counting: dict[str, Any] = field(default_factory=dict)
    knowledge: dict[str, Any] = field(default_factory=dict)  # corpus exam, component rows, leaks removed
    fidelity: dict[str, Any] = field(default_factory=dict)  # step-03 rows dropped for invented specifics
    notes: list[str] = field(default_factory=list)
    # Not written to JSON: the raw lengths, for plots.
    token_lengths: dict[int, dict[str, list[int]]] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("token_lengths")
        return data

    def per_cut(self) -> list[dict[str, Any]]:
        rows = []
        for cut in self.cuts:
            part = [r for r in self.per_dataset if r["cut"] == cut and r["format"] == "chat"]
            total_rows = sum(r["rows"] for r in part)
            total_tokens = sum(r["total_tokens"] for r in part)
            rows.append({
                "cut": cut,
                "rows": total_rows,
                "total_tokens": total_tokens,
                "mean_tokens": round(total_tokens / total_rows, 1) if total_rows else 0.0,
                "max_tokens": max((r["max_tokens"] for r in part), default=0),
                "dropped_too_long": sum(d["rows"] for d in self.dropped
                                        if d["cut"] == cut and d["format"] == "chat" and d["reason"] == "too long"),
            })
        return rows

    # pandas tables for notebooks
    def cut_table(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.per_cut())

    def dataset_table(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.per_dataset)

    def files_table(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.files)


def plot_token_histograms(report: MixReport, bins: int = 40) -> Any:
    """One panel per cut: token-length histogram of each dataset in the chat mix."""
    import matplotlib.pyplot as plt

    cuts = report.cuts or [0]
    fig, axes = plt.subplots(1, len(cuts), figsize=(6 * len(cuts), 4), squeeze=False)
    for ax, cut in zip(axes[0], cuts, strict=False):
        per_generator = report.token_lengths.get(cut, {})
        for generator, lengths in sorted(per_generator.items()):
            if lengths:
                ax.hist(lengths, bins=bins, alpha=0.55, label=f"{generator} ({len(lengths)})")
        ax.set_title(f"cut {cut}x: tokens per row")
        ax.set_xlabel("tokens (chat template)")
        ax.set_ylabel("rows")
        if per_generator:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
