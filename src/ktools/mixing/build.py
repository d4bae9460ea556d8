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
from ktools.knowledge.components import COMPONENTS, KnowledgeBuild, build_knowledge, remove_leaks
from ktools.mixing.cuts import plan_cuts, select_cut
from ktools.mixing.fidelity import drop_invented
from ktools.mixing.formats import row_problem, to_alpaca, to_chat_row
from ktools.mixing.load import SUMMARY_GENERATORS, WITH_DOCUMENT, MixingInputError, load_generated
from ktools.mixing.split import split_eval
from ktools.mixing.stats import MixReport, dataset_stats
from ktools.mixing.tokens import TokenCounter
from ktools.paths import OutputPaths
from ktools.training_rows import alpaca_fields

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
    # Knowledge components added to every cut (ktools.knowledge; measured in bench/knowledge.py):
    # rule-built views of the document, closed-book copies of step 03's document Q&A, general replay.
    components: tuple[str, ...] = COMPONENTS
    replay_share: float = 0.1      # share of the final mix that is general replay
    corpus_exam: bool = True       # build step_04/exam.jsonl from the documents and hold its facts out of Q&A
    exam_share: float = 0.12       # of each document's sentences with a fact
    exam_max_per_source: int = 40
    student_model_name: str = ""   # answers the replay prompts (default: the tokenizer's model)
    replay_prompts: str = ""       # default: assets/replay_prompts.jsonl
    # Prompts the student may write itself when the file's cannot fill replay_share (0: none).
    replay_self_prompts: int = 0
    exam_path: str = ""            # a user's exam: its questions are checked for leaks too
    # Drop step-03 rows stating numbers or names their chunk lacks, or answers that say nothing
    # (ktools.mixing.fidelity).
    drop_invented: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> MixOptions:
        base = cls(
            cut_sizes=list(settings.cut_sizes),
            qa_per_doc=settings.qa_per_doc,
            save_gpt_oss_format=settings.save_gpt_oss_format,
            max_seq_len=settings.max_seq_len or None,
            tokenizer_model_name=settings.effective_tokenizer,
            student_model_name=settings.student_model_name,
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
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"unknown mix component(s) {unknown}; known: {', '.join(COMPONENTS)} "
                             "(or 'all' / 'none')")
        if not 0.0 <= self.replay_share < 0.5:
            raise ValueError(f"replay_share must be in [0, 0.5), got {self.replay_share}")
        if self.replay_self_prompts < 0:
            raise ValueError(f"replay_self_prompts must be >= 0, got {self.replay_self_prompts}")
        if not 0.0 < self.exam_share < 0.5:
            raise ValueError(f"exam_share must be in (0, 0.5), got {self.exam_share}")


def _coerce(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    raw = value.strip()
    try:
        if name == "cut_sizes":
            return [int(p) for p in raw.replace(" ", "").split(",") if p]
        if name in {"qa_per_doc", "seed", "verify_sample", "exam_max_per_source", "replay_self_prompts"}:
            return int(raw)
        if name == "components":
            return parse_components(raw)
        if name in {"replay_share", "exam_share"}:
            return float(raw)
        if name == "max_seq_len":
            return int(raw) if raw.lower() not in {"", "none", "0"} else None
        if name == "eval_share":
            return float(raw)
        if name in {"save_gpt_oss_format", "save_alpaca", "corpus_exam", "drop_invented"}:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError("expected true or false")
    except ValueError as exc:
        raise ValueError(f"mixing option {name}={value!r} is invalid: {exc}") from None
    return value


def parse_components(raw: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """"all", "none", or a comma-separated list of ktools.knowledge.components.COMPONENTS; a leading
    "-" removes a component from all ("-cloze,-replay": everything but those two)."""
    parts = [p.strip() for p in (raw.split(",") if isinstance(raw, str) else raw) if p.strip()]
    if not parts or parts == ["all"]:
        return COMPONENTS
    if parts == ["none"]:
        return ()
    if all(p.startswith("-") for p in parts):
        removed = {p[1:] for p in parts}
        unknown = sorted(removed - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown mix component(s) {unknown}; known: {', '.join(COMPONENTS)}")
        return tuple(c for c in COMPONENTS if c not in removed)
    return tuple(parts)


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
    fidelity = None
    if options.drop_invented:
        loaded.datasets, fidelity = drop_invented(loaded.datasets, SUMMARY_GENERATORS)
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
    rephrase: Any = None,
) -> MixReport:
    """Build every training mix, the eval set and `mix_stats.json`; return the report.

    Everything is computed before the first file is written, so a failure (bad input,
    tokenizer error) leaves the previous outputs untouched; each file is replaced atomically.
    """
    started = time.perf_counter()
    options, paths = _resolve(options, paths)

    loaded = load_generated(paths)
    fidelity = None
    if options.drop_invented:
        loaded.datasets, fidelity = drop_invented(loaded.datasets, SUMMARY_GENERATORS)
    split = split_eval(loaded.datasets, options.eval_share, options.seed)
    knowledge = _knowledge(options, paths, split.train, rephrase, progress)
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
    component_records = _count_components(knowledge, counter, progress)
    count_seconds = time.perf_counter() - count_started

    report = MixReport(
        options=dataclasses.asdict(options),
        inputs=loaded.summary(),
        split=split.report.as_dict(),
        feasibility=plan.table(),
        availability=[dataclasses.asdict(a) for a in plan.availability],
        cuts=list(plan.cuts),
    )
    report.knowledge = knowledge.summary()
    if fidelity is not None:
        report.fidelity = fidelity.as_dict()
        dropped = sum(fidelity.dropped.values())
        if dropped:
            report.notes.append(f"dropped {dropped} of {sum(fidelity.checked.values())} step-03 rows that state "
                                "numbers or names their chunk does not contain, or whose answer says nothing "
                                "(fidelity; DROP_INVENTED=False "
                                "keeps them): " + ", ".join(f"{g} {n}" for g, n in fidelity.dropped.items()))
    report.knowledge["leaks"] = knowledge.leaks[:50]
    report.notes.extend(knowledge.notes)
    if loaded.missing:
        report.notes.append("missing step-03 datasets (mixed without them): " + ", ".join(loaded.missing))
    report.notes.extend(split.report.notes)
    outputs: list[tuple[Path, list[dict[str, Any]], int | None, str]] = []
    for cut, per_gen in selections.items():
        for fmt in formats:
            for records, out_fmt in _assemble_cut(report, cut, fmt, per_gen, formatted[fmt], options,
                                                  component_records):
                outputs.append((_mix_path(paths, cut, out_fmt), records, cut, out_fmt))
    _refuse_empty_mixes(report, outputs, options)
    outputs.append((paths.eval_set, split.eval_rows, None, "eval"))
    if knowledge.exam is not None:
        outputs.append((paths.corpus_exam, [i.to_dict() for i in knowledge.exam.items], None, "exam"))
    for path, records, cut, fmt in outputs:
        _write(report, path, records, cut, fmt)
    _warn_stale(report, paths)
    rows_counted = sum(len(v) for v in formatted.values()) + sum(len(v) for v in component_records.values())
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


def sample_exam_for(paths: OutputPaths) -> Path | None:
    """The sample document's hand-written exam when the documents are the sample: step 06 scores
    it without an EXAM_PATH, so its questions are checked for leaks like a user's own exam."""
    from ktools.evaluate.runner import is_sample_corpus
    from ktools.paths import assets_dir

    repo = assets_dir().parent
    return repo / "assets" / "sample" / "exam.jsonl" if is_sample_corpus(None, paths, repo) else None


def _knowledge(options: MixOptions, paths: OutputPaths, train: dict[str, list[dict[str, Any]]], rephrase: Any,
               progress: bool) -> KnowledgeBuild:
    """The corpus exam and the knowledge components; training rows that leak an exam question go."""
    from ktools.knowledge.replay import general_questions
    from ktools.paths import assets_dir

    prompts = Path(options.replay_prompts) if options.replay_prompts else assets_dir() / "replay_prompts.jsonl"
    build = build_knowledge(
        paths.chunks, paths.conversion_manifest, train, components=tuple(options.components),
        corpus_exam=options.corpus_exam, exam_share=options.exam_share,
        exam_max_per_source=options.exam_max_per_source, replay_share=options.replay_share,
        replay_prompts=prompts, replay_cache=paths.step(4) / "replay_answers.json",
        student=options.student_model_name or options.tokenizer_model_name or "", seed=options.seed,
        rephrase=rephrase, progress=progress, replay_self_prompts=options.replay_self_prompts,
        replay_exclude=general_questions(assets_dir() / "general_questions.jsonl"))
    user_exam = []
    exam_path = Path(options.exam_path) if options.exam_path else sample_exam_for(paths)
    if exam_path is not None and exam_path.is_file():
        from ktools.knowledge.exam import read_exam

        user_exam = read_exam(exam_path)
    remove_leaks(build, train, user_exam)
    return build


def _count_components(knowledge: KnowledgeBuild, counter: TokenCounter, progress: bool
                      ) -> dict[str, list[dict[str, Any]]]:
    """Chat records of every knowledge component, with exact token counts."""
    records = {name: [r.record() for r in rows] for name, rows in knowledge.rows.items() if rows}
    flat = [rec for recs in records.values() for rec in recs]
    if not flat:
        return records
    bar = _progress(len(flat), progress, "counting tokens (knowledge views)")
    try:
        counts = counter.count_conversations([rec["messages"] for rec in flat], None,
                                             progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    for rec, n in zip(flat, counts, strict=True):
        rec["token_length"] = n
    return records


def _assemble_cut(report: MixReport, cut: int, fmt: str, per_gen: dict[str, list[dict[str, Any]]],
                  formatted: dict[int, dict[str, Any]], options: MixOptions,
                  components: dict[str, list[dict[str, Any]]] | None = None,
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
    # The knowledge components are the same in every cut (cuts count summaries per chunk); the
    # GPT-OSS copy gives their answers the empty `thinking` its template expects.
    for name, recs in (components or {}).items():
        if fmt == GPT_OSS:
            recs = [_with_thinking(rec) for rec in recs]
        if options.max_seq_len is not None:
            fitting = [rec for rec in recs if rec["token_length"] <= options.max_seq_len]
            if len(fitting) < len(recs):
                report.dropped.append({"cut": cut, "format": fmt, "dataset": name, "reason": "too long",
                                       "rows": len(recs) - len(fitting)})
            recs = fitting
        records.extend(recs)
        report.per_dataset.append({"cut": cut, "format": fmt, "dataset": name, **dataset_stats(recs)})
        if fmt == CHAT:
            report.token_lengths[cut][name] = [rec["token_length"] for rec in recs]
            if options.save_alpaca:
                alpaca.extend(alpaca_fields(rec["messages"][0]["content"], "", rec["messages"][1]["content"])
                              for rec in recs)
    return [(records, fmt)] + ([(alpaca, ALPACA)] if alpaca else [])


def _with_thinking(record: dict[str, Any]) -> dict[str, Any]:
    user, assistant = record["messages"]
    return {**record, "messages": [{**user, "thinking": None}, {**assistant, "thinking": ""}]}


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
