"""Step 04 end to end: load → eval split → cuts → format → count tokens → write → stats."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.config import Settings, load_settings
from ktools.io import write_json, write_jsonl
from ktools.mixing.cuts import plan_cuts, select_cut
from ktools.mixing.formats import row_problem, to_alpaca, to_chat_row
from ktools.mixing.load import SUMMARY_GENERATORS, WITH_DOCUMENT, MixingInputError, load_generated
from ktools.mixing.split import split_eval
from ktools.mixing.stats import MixReport, dataset_stats
from ktools.mixing.tokens import TokenCounter
from ktools.paths import OutputPaths

log = logging.getLogger(__name__)

CHAT, GPT_OSS, ALPACA = "chat", "gpt_oss", "alpaca"


@dataclass(frozen=True)
class MixOptions:
    cut_sizes: list[int] = field(default_factory=lambda: [5, 50])
    qa_per_doc: int = 3
    save_gpt_oss_format: bool = False
    save_alpaca: bool = False
    max_seq_len: int | None = None
    eval_share: float = 0.1
    seed: int = 42
    tokenizer_model_name: str = ""  # empty: the student's tokenizer (default: embedded SmolLM2)
    verify_sample: int = 16  # rows re-counted with apply_chat_template as a guard

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> MixOptions:
        base = cls(
            cut_sizes=list(settings.cut_sizes),
            qa_per_doc=settings.qa_per_doc,
            save_gpt_oss_format=settings.save_gpt_oss_format,
            max_seq_len=settings.max_seq_len or None,
            tokenizer_model_name=settings.effective_tokenizer,
        )
        return base.replace(**{k: v for k, v in overrides.items() if v is not None})

    def replace(self, **changes: Any) -> MixOptions:
        """A copy with `changes`; strings (papermill / CLI parameters) are parsed to the field's type."""
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})

    def validate(self) -> None:
        if not self.cut_sizes or any(int(c) < 1 for c in self.cut_sizes):
            raise ValueError(f"cut_sizes must be positive integers, got {self.cut_sizes!r}")
        if self.qa_per_doc < 1:
            raise ValueError(f"qa_per_doc must be >= 1, got {self.qa_per_doc}")
        if not 0.0 <= self.eval_share < 1.0:
            raise ValueError(f"eval_share must be in [0, 1), got {self.eval_share}")
        if self.max_seq_len is not None and self.max_seq_len < 1:
            raise ValueError(f"max_seq_len must be >= 1 or None, got {self.max_seq_len}")


def _coerce(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    raw = value.strip()
    try:
        if name == "cut_sizes":
            return [int(p) for p in raw.replace(" ", "").split(",") if p]
        if name in {"qa_per_doc", "seed", "verify_sample"}:
            return int(raw)
        if name == "max_seq_len":
            return int(raw) if raw.lower() not in {"", "none", "0"} else None
        if name == "eval_share":
            return float(raw)
        if name in {"save_gpt_oss_format", "save_alpaca"}:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError("expected true or false")
    except ValueError as exc:
        raise ValueError(f"mixing option {name}={value!r} is invalid: {exc}") from None
    return value


def _mix_path(paths: OutputPaths, cut: int, fmt: str) -> Path:
    base = paths.training_mix(cut)
    return base if fmt == CHAT else base.parent / fmt / base.name


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="row")


def _resolve(options: MixOptions | Settings | None, paths: OutputPaths | None) -> tuple[MixOptions, OutputPaths]:
    if options is None or isinstance(options, Settings):
        settings = options if isinstance(options, Settings) else load_settings(step_dir="04_Knowledge_Mixing")
        options = MixOptions.from_settings(settings)
        paths = paths or OutputPaths.from_settings(settings)
    options.validate()
    return options, paths or OutputPaths.from_settings(load_settings())


def check_feasibility(options: MixOptions | Settings | None = None, paths: OutputPaths | None = None) -> dict:
    """What a run would do, without writing: inputs found, eval split, and which cuts are feasible."""
    options, paths = _resolve(options, paths)
    loaded = load_generated(paths)
    split = split_eval(loaded.datasets, options.eval_share, options.seed)
    plan = plan_cuts(list(options.cut_sizes), split.train)
    return {"inputs": loaded.summary(), "missing": loaded.missing, "split": split.report.as_dict(),
            "availability": [dataclasses.asdict(a) for a in plan.availability],
            "feasibility": plan.table(), "cuts": plan.cuts}


def build_mixes(
    options: MixOptions | Settings | None = None,
    paths: OutputPaths | None = None,
    *,
    tokenizer: Any = None,
    progress: bool = True,
) -> MixReport:
    """Build every training mix, the eval set and `mix_stats.json`; return the report.

    Everything is computed before the first file is written, so a failure (bad input,
    tokenizer error) leaves the previous outputs untouched; each file is replaced atomically.
    """
    started = time.perf_counter()
    options, paths = _resolve(options, paths)

    loaded = load_generated(paths)
    split = split_eval(loaded.datasets, options.eval_share, options.seed)
    plan = plan_cuts(list(options.cut_sizes), split.train)
    # Cuts are nested, so each source row is formatted and counted once for all cuts.
    selections = {
        cut: {g: (select_cut(rows, cut, options.qa_per_doc, options.seed) if g in SUMMARY_GENERATORS else rows)
              for g, rows in split.train.items()}
        for cut in plan.cuts
    }
    unique = {id(r): r for per_gen in selections.values() for rows in per_gen.values() for r in rows}

    if tokenizer is None:
        from ktools.models import load_tokenizer

        tokenizer = load_tokenizer(options.tokenizer_model_name or None)
    counter = TokenCounter(tokenizer)
    formats = [CHAT] + ([GPT_OSS] if options.save_gpt_oss_format else [])
    count_started = time.perf_counter()
    formatted = {fmt: _format_and_count(unique, fmt, counter, options, progress) for fmt in formats}
    count_seconds = time.perf_counter() - count_started

    report = MixReport(
        options=dataclasses.asdict(options),
        inputs=loaded.summary(),
        split=split.report.as_dict(),
        feasibility=plan.table(),
        availability=[dataclasses.asdict(a) for a in plan.availability],
        cuts=list(plan.cuts),
    )
    if loaded.missing:
        report.notes.append("missing step-03 datasets (mixed without them): " + ", ".join(loaded.missing))
    report.notes.extend(split.report.notes)
    outputs: list[tuple[Path, list[dict[str, Any]], int | None, str]] = []
    for cut, per_gen in selections.items():
        for fmt in formats:
            for records, out_fmt in _assemble_cut(report, cut, fmt, per_gen, formatted[fmt], options):
                outputs.append((_mix_path(paths, cut, out_fmt), records, cut, out_fmt))
    _refuse_empty_mixes(report, outputs, options)
    outputs.append((paths.eval_set, split.eval_rows, None, "eval"))
    for path, records, cut, fmt in outputs:
        _write(report, path, records, cut, fmt)
    _warn_stale(report, paths)
    rows_counted = sum(len(v) for v in formatted.values())
    report.token_counting = {
        "tokenizer": options.tokenizer_model_name or "embedded",
        "strategy": counter.strategy,
        "rows_counted": rows_counted,
        "seconds": round(count_seconds, 3),
        "rows_per_second": round(rows_counted / count_seconds, 1) if count_seconds else None,
        "verified_rows": min(options.verify_sample, len(unique)) * len(formats),
        **counter.cache_stats,
    }
    report.notes.append(f"built in {time.perf_counter() - started:.1f} s")
    write_json(paths.mix_stats, report.as_dict())
    report.files.append({"cut": None, "format": "stats", "path": str(paths.mix_stats), "rows": None})
    return report


def _format_and_count(unique: dict[int, dict[str, Any]], fmt: str, counter: TokenCounter, options: MixOptions,
                      progress: bool) -> dict[int, dict[str, Any]]:
    """Chat records (with `token_length`) of one format, keyed like `unique`; GPT-OSS drops bad rows."""
    keep = {k: r for k, r in unique.items() if fmt != GPT_OSS or row_problem(r) is None}
    chat_rows = {k: to_chat_row(r, with_document=WITH_DOCUMENT[r["generator"]], gpt_oss=fmt == GPT_OSS)
                 for k, r in keep.items()}
    keys = list(chat_rows)
    convs = [chat_rows[k].record["messages"] for k in keys]
    bar = _progress(len(keys), progress, f"counting tokens ({fmt})")
    try:
        counts = counter.count_conversations(convs, [chat_rows[k].context for k in keys],
                                             progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    counter.verify(convs, counts, sample=options.verify_sample, seed=options.seed)
    for k, n in zip(keys, counts, strict=True):
        chat_rows[k].record["token_length"] = n
    return {k: chat_rows[k].record for k in keys}


def _assemble_cut(report: MixReport, cut: int, fmt: str, per_gen: dict[str, list[dict[str, Any]]],
                  formatted: dict[int, dict[str, Any]], options: MixOptions,
                  ) -> list[tuple[list[dict[str, Any]], str]]:
    """The records of one cut and format (plus its Alpaca copy); drops and stats go into `report`."""
    records: list[dict[str, Any]] = []
    alpaca: list[dict[str, Any]] = []
    if fmt == CHAT:
        report.token_lengths[cut] = {}
    for generator, rows in per_gen.items():
        kept = [(r, formatted[id(r)]) for r in rows if id(r) in formatted]
        if len(kept) < len(rows):
            report.dropped.append({"cut": cut, "format": fmt, "dataset": generator,
                                   "reason": "gpt-oss cleaning", "rows": len(rows) - len(kept)})
        if options.max_seq_len is not None:
            fitting = [(r, rec) for r, rec in kept if rec["token_length"] <= options.max_seq_len]
            if len(fitting) < len(kept):
                report.dropped.append({"cut": cut, "format": fmt, "dataset": generator,
                                       "reason": "too long", "rows": len(kept) - len(fitting)})
            kept = fitting
        recs = [rec for _, rec in kept]
        records.extend(recs)
        report.per_dataset.append({"cut": cut, "format": fmt, "dataset": generator, **dataset_stats(recs)})
        if fmt == CHAT:
            report.token_lengths[cut][generator] = [rec["token_length"] for rec in recs]
            if options.save_alpaca:
                alpaca.extend(to_alpaca(r, with_document=WITH_DOCUMENT[generator]) for r, _ in kept)
    return [(records, fmt)] + ([(alpaca, ALPACA)] if alpaca else [])


def _refuse_empty_mixes(report: MixReport, outputs: list[tuple[Path, list[dict[str, Any]], int | None, str]],
                        options: MixOptions) -> None:
    """An empty training mix is an error here, not in step 05: nothing is written yet, so the
    previous mixes stay, and the message says which filter took every row and what to change."""
    for path, records, cut, fmt in outputs:
        if records:
            continue
        drops = [d for d in report.dropped if d["cut"] == cut and d["format"] == fmt]
        why = "; ".join(f"{d['dataset']}: {d['rows']} row(s) dropped ({d['reason']})" for d in drops)
        fix = (f" Raise MAX_SEQ_LEN (now {options.max_seq_len}) or unset it to keep long rows."
               if any(d["reason"] == "too long" for d in drops) else "")
        raise MixingInputError(f"{path.name}: cut {cut} ({fmt}) would hold no rows"
                               + (f" — {why}." if why else " — step 03 kept no usable rows for it.")
                               + fix + " No mix file was written; the previous ones are unchanged.")


def _write(report: MixReport, path: Path, records: list[dict[str, Any]], cut: int | None, fmt: str) -> None:
    write_jsonl(path, records)
    report.files.append({"cut": cut, "format": fmt, "path": str(path), "rows": len(records)})
    log.info("wrote %s (%d rows)", path, len(records))


def _warn_stale(report: MixReport, paths: OutputPaths) -> None:
    current = {f["path"] for f in report.files}
    stale = sorted(str(p) for p in paths.training_mix_dir.rglob("combined_cut_*x.jsonl") if str(p) not in current)
    if stale:
        note = "older mixes not rebuilt this run (left in place): " + ", ".join(
            str(Path(s).relative_to(paths.training_mix_dir)) for s in stale)
        report.notes.append(note)
        log.warning(note)
