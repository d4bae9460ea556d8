"""`ktools status`: effective settings (key masked), whether the teacher answers, which outputs exist."""

from __future__ import annotations

import argparse

from ktools import setup_checks
from ktools.config import ConfigError, load_settings
from ktools.llm.local.lifecycle import running_teachers


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--step-dir", default=None,
                        help="also read this step folder's .env (e.g. 03_Knowledge_Generation)")
    parser.add_argument("--no-teacher", action="store_true", help="skip the teacher reachability check")


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(step_dir=args.step_dir)
    except ConfigError as exc:
        print(f"configuration error: {exc}")
        return 2
    print("Settings (environment > step .env > root .env > default):")
    rows = setup_checks.configuration_rows(settings)
    print(_table(rows, ["variable", "value", "from"]))
    if not args.no_teacher:
        check = setup_checks.teacher_reachability(settings)
        print(f"\nTeacher: {'reachable' if check.ok else 'NOT reachable'} - {check.detail}")
        if check.fix:
            print(f"  fix: {check.fix}")
    teachers = running_teachers()
    if teachers:
        print("\nEmbedded teachers running (stop with: ktools serve-teacher --stop --port PORT):")
        print(_table([{**t, "idle_timeout": _seconds(t["idle_timeout"]), "idle_seconds": _seconds(t["idle_seconds"], zero="0 s"),
                       "rss_mb": t["rss_mb"] or "?", "threads": t["threads"] or "?"} for t in teachers],
                     ["port", "pid", "status", "backend", "threads", "rss_mb", "idle_seconds", "idle_timeout",
                      "log_file"]))
    else:
        print("\nEmbedded teachers running: none")
    print("\nOutputs:")
    outputs = setup_checks.step_outputs(settings)
    print(_table([{**r, "exists": "yes" if r["exists"] else "-"} for r in outputs],
                 ["step", "notebook folder", "exists", "files", "MB", "output"]))
    return 0


def _seconds(value: float | None, zero: str = "never") -> str:
    if value is None:
        return "?"
    return zero if value == 0 else f"{value:.0f} s"


def _table(rows: list[dict], columns: list[str]) -> str:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    # Middle columns are capped at 60 characters; the last one (paths) is shown whole.
    widths = [min(60, max([len(c)] + [len(row[i]) for row in cells])) for i, c in enumerate(columns)]
    widths[-1] = max([len(columns[-1])] + [len(row[-1]) for row in cells])
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(v[:w].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
