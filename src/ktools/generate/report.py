"""The yield report: how many items survived each stage, per generator and per document.

An empty dataset always explains itself: the report shows whether the teacher's
answers could not be parsed, were truncated, were rejected by a judge, or whether
the chunks failed (with the error) or were never run (budget, Ctrl+C).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageCounts:
    calls: int = 0        # prompts sent (or replayed) at this stage
    samples: int = 0      # completions received (calls x n)
    parsed: int = 0       # items parsed out of those completions
    unparsable: int = 0   # completions that yielded nothing
    truncated: int = 0    # completions cut off by max_tokens (finish_reason == "length")
    ungrounded: int = 0   # parsed items sharing no content word with their source (dropped)
    copied: int = 0       # parsed items repeating the few-shot example (dropped)
    retried: int = 0      # truncated completions with nothing usable, asked again with a larger cap
    structured: int = 0   # completions read as schema-shaped JSON (structured output); others by the parsers

    def add(self, other: StageCounts) -> None:
        self.calls += other.calls
        self.samples += other.samples
        self.parsed += other.parsed
        self.unparsable += other.unparsable
        self.truncated += other.truncated
        self.ungrounded += other.ungrounded
        self.copied += other.copied
        self.retried += other.retried
        self.structured += other.structured


@dataclass
class UnitResult:
    """The outcome of one (generator, chunk): rows kept, rows rejected, counts per stage."""

    generator: str
    chunk_id: str
    source: str
    status: str = "pending"  # done | rejected_all | failed | pending (not run: budget, interrupt)
    error: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    # Rows whose question repeats one kept earlier (this or another chunk or generator): not in gen.jsonl.
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    stages: dict[str, StageCounts] = field(default_factory=dict)
    judge_rejections: Counter = field(default_factory=Counter)

    def stage(self, name: str) -> StageCounts:
        if name not in self.stages:
            self.stages[name] = StageCounts()
        return self.stages[name]


@dataclass
class GenerationReport:
    """What a run did. `to_dict()` is what `report.json` holds; `table()` is for notebooks."""

    # complete | partial | failed | empty (see ktools.generate.outcome) | interrupted | budget_reached |
    # cost_limit_reached | dry_run
    status: str = "complete"
    status_reason: str = ""  # one line: why the status is not complete ("" when it is)
    model: str = ""
    out_dir: str = ""
    wall_seconds: float = 0.0
    chunks: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # sent, cached, failed, prompt/completion tokens
    generators: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    judges: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    estimate: dict[str, Any] | None = None  # dry run: projected requests/tokens for the full run
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # dry run: example rows
    options: dict[str, Any] = field(default_factory=dict)
    resume_hint: str = ""
    # Several teacher endpoints: per endpoint requests, errors, cool-downs, latency (client.endpoint_stats()).
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    # Near-duplicate questions dropped across chunks and generators: threshold, dropped, kept.
    dedup: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(g.get("rows", 0) for g in self.generators.values())

    @property
    def ok(self) -> bool:
        return self.status in ("complete", "dry_run") and not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "status_reason": self.status_reason, "model": self.model, "out_dir": self.out_dir,
            "wall_seconds": round(self.wall_seconds, 3), "chunks": self.chunks, "rows": self.rows,
            "requests": self.requests, "generators": self.generators, "documents": self.documents,
            "failures": self.failures, "judges": self.judges, "files": self.files,
            "estimate": self.estimate, "options": self.options, "resume_hint": self.resume_hint,
            "endpoints": self.endpoints, "dedup": self.dedup,
        }

    def table(self):
        """One row per generator: chunks, items per stage, rows kept/rejected (a pandas DataFrame)."""
        import pandas as pd

        records = []
        for name, g in self.generators.items():
            rec: dict[str, Any] = {"generator": name}
            rec.update({f"chunks_{k}": v for k, v in g.get("chunks", {}).items()})
            for stage, counts in g.get("stages", {}).items():
                rec[f"{stage}_parsed"] = counts.get("parsed", 0)
                if counts.get("unparsable"):
                    rec[f"{stage}_unparsable"] = counts["unparsable"]
                for extra in ("truncated", "retried", "structured", "ungrounded", "copied"):
                    if counts.get(extra):
                        rec[f"{stage}_{extra}"] = counts[extra]
            rec["rejected_by_judges"] = sum(g.get("judge_rejections", {}).values())
            rec["duplicates"] = g.get("duplicates", 0)
            rec["rows"] = g.get("rows", 0)
            records.append(rec)
        frame = pd.DataFrame.from_records(records).fillna(0)
        numeric = [c for c in frame.columns if c != "generator"]
        frame[numeric] = frame[numeric].astype(int)
        return frame.set_index("generator")

    def endpoints_table(self):
        """Several teacher endpoints: one row per endpoint (requests, errors, cool-downs, latency ms)."""
        import pandas as pd

        return pd.DataFrame(self.endpoints).set_index("url") if self.endpoints else pd.DataFrame()

    def documents_table(self):
        import pandas as pd

        return pd.DataFrame.from_dict(self.documents, orient="index").fillna(0).astype(int)

    def estimate_table(self):
        """Dry run: projected requests and tokens per generator for the full run."""
        import pandas as pd

        est = self.estimate or {"generators": {}}
        frame = pd.DataFrame.from_dict(est["generators"], orient="index")
        if not frame.empty:
            frame.loc["total"] = frame.sum(numeric_only=True)
            frame.loc["total", ["requests_per_chunk", "tokens_per_chunk"]] = None
        frame.index.name = f"full run ({est.get('chunks', 0)} chunks)"
        return frame

    def samples_table(self, columns: tuple[str, ...] = ("generator", "item_id", "question", "response")):
        """Dry run: a few example rows per generator."""
        import pandas as pd

        rows = [{c: r.get(c) for c in columns} for rs in self.samples.values() for r in rs]
        return pd.DataFrame(rows, columns=list(columns))

    def failures_table(self):
        import pandas as pd

        return pd.DataFrame(self.failures, columns=["generator", "chunk_id", "source", "error"])

    def files_table(self):
        import os

        import pandas as pd

        rows = [{"file": name, "path": path, "bytes": os.path.getsize(path) if os.path.exists(path) else None}
                for name, path in self.files.items()]
        return pd.DataFrame(rows, columns=["file", "path", "bytes"])

    def summary(self) -> str:
        per_gen = ", ".join(f"{k}: {v.get('rows', 0)}" for k, v in self.generators.items())
        req = self.requests
        text = (f"{self.status}: {self.rows} rows ({per_gen}); requests sent {req.get('sent', 0)}, "
                f"cached {req.get('cached', 0)}, failed {req.get('failed', 0)}; "
                f"tokens {req.get('prompt_tokens', 0) + req.get('completion_tokens', 0)}; "
                + (f"cost {req['cost']:.4f}; " if "cost" in req else "") +
                f"{len(self.failures)} failed chunks; {self.wall_seconds:.1f}s")
        if self.endpoints:
            from ktools.llm.endpoints import format_endpoint_row

            text += ". Endpoints: " + "; ".join(format_endpoint_row(row) for row in self.endpoints)
        if self.status_reason:
            text += f". {self.status_reason}"
        if self.resume_hint:
            text += f". {self.resume_hint}"
        return text


def build_report(units: list[UnitResult], *, generators: tuple[str, ...]) -> tuple[dict, dict, list]:
    """Aggregate unit results into (per-generator, per-document, failures) sections."""
    gens: dict[str, dict[str, Any]] = {}
    docs: dict[str, dict[str, int]] = defaultdict(dict)
    failures: list[dict[str, str]] = []
    for g in generators:
        gens[g] = {"chunks": Counter(), "stages": {}, "rows": 0, "rejected_rows": 0,
                   "judge_rejections": Counter(), "unparsable": 0, "truncated_rows": 0,
                   "distinct_items": 0, "duplicates": 0}
    for unit in units:
        g = gens[unit.generator]
        g["chunks"][unit.status] += 1
        for name, counts in unit.stages.items():
            g["stages"].setdefault(name, StageCounts()).add(counts)
        g["rows"] += len(unit.rows)
        g["rejected_rows"] += len(unit.rejected)
        g["duplicates"] += len(unit.duplicates)
        g["judge_rejections"].update(unit.judge_rejections)
        g["truncated_rows"] += sum(1 for r in unit.rows if r.get("truncated"))
        g["distinct_items"] += len({r["item_id"] for r in unit.rows})
        doc = docs[unit.source]
        doc[unit.generator] = doc.get(unit.generator, 0) + len(unit.rows)
        if unit.status == "failed":
            failures.append({"generator": unit.generator, "chunk_id": unit.chunk_id,
                             "source": unit.source, "error": unit.error or ""})
    for g in gens.values():
        g["chunks"] = {k: g["chunks"].get(k, 0) for k in ("done", "rejected_all", "failed", "pending")}
        g["stages"] = {k: vars(v) for k, v in g["stages"].items()}
        g["judge_rejections"] = dict(g["judge_rejections"])
        g["unparsable"] = sum(s["unparsable"] for s in g["stages"].values())
    return gens, dict(docs), failures


def sample_rows(out_dir: str | Path, generators: tuple[str, ...], n: int = 2,
                columns: tuple[str, ...] = ("generator", "item_id", "question", "response", "truncated")):
    """The first `n` rows of each generator's gen.jsonl, as a pandas DataFrame (for notebooks)."""
    import pandas as pd

    from ktools.io import iter_jsonl

    rows = []
    for g in generators:
        path = Path(out_dir) / g / "gen.jsonl"
        if not path.exists():
            continue
        for i, row in enumerate(iter_jsonl(path)):
            if i >= n:
                break
            rows.append({c: row.get(c) for c in columns})
    return pd.DataFrame(rows, columns=list(columns))
