"""Markdown reports and plots for one model (step 01) or a comparison (step 06)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ktools.evaluate.headline import headline_lines, headline_markdown
from ktools.evaluate.runner import METRIC_LABELS, METRICS


def _fmt(ci: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not ci or ci.get("mean") is None:
        return "–"
    return f"{ci['mean']:.{digits}f} [{ci['lo']:.{digits}f}, {ci['hi']:.{digits}f}]"


def _cell(text: str | None, width: int = 160) -> str:
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _budgets(result: Mapping[str, Any]) -> str:
    """"at most 128 new tokens (general: 64)": the per-set caps that differ from the option."""
    cap = result["options"]["max_new_tokens"]
    own = [f"{name}: {data['max_new_tokens']}" for name, data in result["sets"].items()
           if data.get("max_new_tokens") not in (None, cap)]
    return f"at most {cap} new tokens" + (f" ({', '.join(own)})" if own else "")


def model_markdown(result: Mapping[str, Any]) -> str:
    lines = [f"# Evaluation of `{result['model']}`", "",
             f"Greedy answers, {_budgets(result)}; "
             "means with 95% bootstrap intervals.", ""]
    for name, data in result["sets"].items():
        s = data["summary"]
        lines += [f"## {name} ({len(data['items'])} questions)", "", "| metric | value |", "|---|---|"]
        for metric in METRICS:
            lines.append(f"| {METRIC_LABELS[metric]} | {_fmt(s[metric])} (n={s[metric]['n']}) |")
        lines.append(f"| perplexity of the reference | {_fmt(s['perplexity'], 2)} |")
        if s.get("judge_failures"):
            lines.append(f"| judge failures | {s['judge_failures']} |")
        lines += ["", "| id | question | reference | answer | F1 |", "|---|---|---|---|---|"]
        for item in data["items"][:10]:
            lines.append(f"| {item['id']} | {_cell(item['question'], 90)} | {_cell(item['reference'], 60)} | "
                         f"{_cell(item['prediction'], 120)} | {item['token_f1']:.2f} |")
        lines.append("")
    lines.append(f"Time: {result['seconds']}")
    return "\n".join(lines) + "\n"


# Below this share of the epochs asked for, the report warns that the budget, not the recipe,
# limited what was learnt (facts came with the third and fourth epochs in the README's runs).
SHORT_TRAINING = 0.75


def training_notes(training: Mapping[str, Any] | None) -> list[str]:
    """The report's line on how much the fine-tuned model trained, loud when a time budget cut it."""
    if not training or training.get("epochs_done") is None:
        return []
    done, asked = float(training["epochs_done"]), training.get("epochs_asked")
    line = f"- training: {training.get('steps')} steps = {done:.2f} epochs"
    if training.get("train_seconds"):
        line += f" in {float(training['train_seconds']) / 60:.0f} min ({training.get('tokens_per_second')} tokens/s)"
    if not asked:
        return [line + "."]
    line += f", of the {float(asked):g} asked for"
    budget = training.get("time_budget_minutes")
    if done >= SHORT_TRAINING * float(asked) or not budget:
        return [line + "."]
    return [line + f": **the {float(budget):g}-minute time budget cut training to {done / float(asked):.0%} of "
            "the epochs asked for.** Facts are learnt over several epochs, so a small gain here says more "
            "about this machine's speed than about the recipe: raise `TIME_BUDGET_MINUTES` (or set it to 0 "
            "to train every epoch asked for)."]


def result_lines(report: Mapping[str, Any]) -> list[str]:
    """Step 06's outcome in plain lines, for the end of `ktools run`: what changed per set, and
    how much the model trained (so a run cut short by its time budget says so where it ends)."""
    lines = list(headline_lines(report.get("headline") or {}))
    lines += [line.removeprefix("- ").replace("**", "").replace("`", "") for line in training_notes(report.get("training"))]
    return lines


def comparison_markdown(report: Mapping[str, Any]) -> str:
    base, tuned = report["base"], report["tuned"]
    lines = ["# Base vs fine-tuned", "",
             f"- base: `{base['model']}`", f"- fine-tuned: `{tuned['model']}`",
             f"- greedy answers, {_budgets(tuned)}; means with 95% "
             "bootstrap intervals; the difference is paired (same questions)."]
    calibration = report.get("calibration")
    if calibration:
        lines.append(f"- the fine-tuned model's logits were divided by a temperature of {calibration['temperature']} "
                     f"fitted by step 05 on `{Path(str(calibration['set'])).name}` ({calibration['questions']} "
                     "questions; greedy answers are unchanged by it): that set's reference NLL is not an "
                     "independent measure.")
    lines += training_notes(report.get("training"))
    lines.append("")
    if report.get("headline"):
        lines += headline_markdown(report["headline"])
    for name, metrics in report["comparison"].items():
        n = len(tuned["sets"][name]["items"])
        lines += [f"## {name} ({n} questions)", "", "| metric | base | fine-tuned | difference | verdict |",
                  "|---|---|---|---|---|"]
        for metric in METRICS:
            m = metrics[metric]
            lines.append(f"| {METRIC_LABELS[metric]} | {_fmt(m['base'])} | {_fmt(m['tuned'])} | "
                         f"{_fmt(m['diff'])} | {m['verdict'] or '–'} |")
        p = metrics["perplexity"]
        lines += [f"| perplexity of the reference | {_fmt(p['base'], 2)} | {_fmt(p['tuned'], 2)} | | |", ""]
    for name, rows in report.get("side_by_side", {}).items():
        if not rows:
            continue
        lines += [f"### Side by side: {name}", "", "| question | reference | base | fine-tuned |",
                  "|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {_cell(r['question'], 90)} | {_cell(r['reference'], 60)} | {_cell(r['base'], 110)} | "
                         f"{_cell(r['tuned'], 110)} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _err(ci: Mapping[str, Any]) -> tuple[float, float, float]:
    if ci.get("mean") is None:
        return 0.0, 0.0, 0.0
    return ci["mean"], ci["mean"] - ci["lo"], ci["hi"] - ci["mean"]


def plot_metric_bars(results: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """One panel per metric; per eval set, one bar per model (with its 95% interval)."""
    plt = _plt()
    labels = list(results)
    set_names = list(next(iter(results.values()))["sets"])
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.4))
    width = 0.8 / len(labels)
    for ax, metric in zip(axes, METRICS, strict=True):
        for k, label in enumerate(labels):
            values = [_err(results[label]["sets"][s]["summary"][metric]) if s in results[label]["sets"]
                      else (0.0, 0.0, 0.0) for s in set_names]
            xs = [i + (k - (len(labels) - 1) / 2) * width for i in range(len(set_names))]
            ax.bar(xs, [v[0] for v in values], width, yerr=[[v[1] for v in values], [v[2] for v in values]],
                   capsize=3, label=label)
        ax.set_xticks(range(len(set_names)), set_names, rotation=20)
        ax.set_title(METRIC_LABELS[metric], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_per_question(base: Mapping[str, Any], tuned: Mapping[str, Any], set_name: str, path: Path) -> Path | None:
    """Per question: NLL decrease (base − tuned, > 0 = better) and token-F1 gain, sorted."""
    if set_name not in base["sets"] or set_name not in tuned["sets"]:
        return None
    plt = _plt()
    base_items = {i["id"]: i for i in base["sets"][set_name]["items"]}
    pairs = [(base_items[i["id"]], i) for i in tuned["sets"][set_name]["items"] if i["id"] in base_items]
    nll_gain = sorted(b["nll"] - t["nll"] for b, t in pairs if b["nll"] is not None and t["nll"] is not None)
    f1_gain = sorted(t["token_f1"] - b["token_f1"] for b, t in pairs)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, values, title in ((axes[0], nll_gain, "reference NLL decrease (base − tuned)"),
                              (axes[1], f1_gain, "token F1 gain (tuned − base)")):
        ax.bar(range(len(values)), values, color=["tab:green" if v > 0 else "tab:red" for v in values])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"{set_name}: {title}", fontsize=10)
        ax.set_xlabel("question (sorted)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (set, metric) of one model's results, for a table."""
    rows = []
    for name, data in result["sets"].items():
        for metric in [*METRICS, "perplexity"]:
            ci = data["summary"][metric]
            rows.append({"set": name, "metric": METRIC_LABELS.get(metric, metric), "mean": ci["mean"],
                         "95% CI": _fmt(ci).split(" ", 1)[1] if ci.get("mean") is not None else "–",
                         "n": ci["n"]})
    return rows


def comparison_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (set, metric): base, fine-tuned, difference with interval, verdict."""
    rows = []
    for name, metrics in report["comparison"].items():
        for metric in METRICS:
            m = metrics[metric]
            rows.append({"set": name, "metric": METRIC_LABELS[metric], "base": m["base"]["mean"],
                         "fine-tuned": m["tuned"]["mean"], "difference [95% CI]": _fmt(m["diff"]),
                         "verdict": m["verdict"]})
    return rows
