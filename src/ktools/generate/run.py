"""Running a generation: seeds in, gen.jsonl / rejected.jsonl / report.json out.

`arun_generation` is the coroutine; `run_generation` the blocking wrapper that also
works inside Jupyter (whose event loop is already running): it runs the coroutine on
its own event loop in a worker thread and turns Ctrl+C (a kernel interrupt) into a
clean stop of that loop - in-flight writes are committed, outputs rebuilt from what
is done, and a `GenerationInterrupted` carrying the partial report is raised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ktools.generate.dedup import find_duplicates
from ktools.generate.engine import Engine, Unit, make_units, run_units
from ktools.generate.flows import FLOWS
from ktools.generate.options import JUDGES, GenerationOptions
from ktools.generate.outcome import COMPLETE, generator_status, run_status, status_reason
from ktools.generate.outcome import FAILED as FAILED_RUN
from ktools.generate.report import GenerationReport, build_report
from ktools.generate.status import DONE, FAILED, PENDING, REJECTED_ALL
from ktools.generate.store import ResponseStore
from ktools.io import JsonlError, iter_jsonl
from ktools.llm.eventloop import new_event_loop

log = logging.getLogger(__name__)

REQUIRED_SEED_FIELDS = ("document", "chunk_id")
STEP_DIR = "03_Knowledge_Generation"


class GenerationInterrupted(KeyboardInterrupt):
    """Ctrl+C stopped the run cleanly; `.report` describes what was done (status "interrupted")."""

    def __init__(self, report: GenerationReport | None):
        super().__init__(report.resume_hint if report else "generation interrupted")
        self.report = report


def load_seed_rows(seed: str | Path | Iterable[dict[str, Any]], subsample: int | None = None) -> list[dict[str, Any]]:
    """Seed rows from a JSONL path or an iterable of dicts, validated (clear errors naming record and field)."""
    if isinstance(seed, (str, Path)):
        path = Path(seed)
        if not path.is_file():
            raise FileNotFoundError(
                f"seed file {path} does not exist. Run step 02 (02_Data_Processing or `ktools prepare`) "
                "first, or pass the path of your own seed JSONL.")
        rows, origin = list(iter_jsonl(path)), str(path)
    else:
        rows, origin = [dict(r) for r in seed], "seed rows"
    seen: dict[str, int] = {}
    out = []
    for i, row in enumerate(rows, start=1):
        for name in REQUIRED_SEED_FIELDS:
            value = row.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise JsonlError(f"{origin}, record {i}: missing or empty field {name!r}. Every seed row needs "
                                 "'document' (the chunk text) and a unique 'chunk_id' (step 02 writes both).")
        row = dict(row)
        row["chunk_id"] = str(row["chunk_id"])
        if row["chunk_id"] in seen:
            raise JsonlError(f"{origin}, record {i}: chunk_id {row['chunk_id']!r} repeats record "
                             f"{seen[row['chunk_id']]}; chunk ids must be unique.")
        seen[row["chunk_id"]] = i
        row.setdefault("source", "")
        for name in ("document_outline", "domain", "icl_document", "icl_query_1", "icl_query_2", "icl_query_3"):
            value = row.get(name)
            row[name] = "" if value is None else str(value)
        out.append(row)
        if subsample and len(out) >= subsample:
            break
    if not out:
        raise JsonlError(f"{origin}: no seed rows")
    return out


def _default_out_dir() -> Path:
    from ktools.config import load_settings
    from ktools.paths import OutputPaths

    return OutputPaths.from_settings(load_settings(step_dir=STEP_DIR)).step(3)


def _make_client() -> Any:
    from ktools.config import load_settings
    from ktools.llm.client import TeacherClient

    return TeacherClient.from_settings(load_settings(step_dir=STEP_DIR))


def _is_embedded(model: str) -> bool:
    from ktools.models import is_embedded

    return bool(model) and is_embedded(model)


class _Progress:
    """tqdm.auto bar over units: chunks done, requests sent / cached / failed, tokens (ETA from tqdm)."""

    def __init__(self, total: int, engine: Engine, enabled: bool, desc: str):
        self.engine = engine
        self.bar = None
        if enabled and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="chunk", dynamic_ncols=True)

    def __call__(self, unit: Unit) -> None:
        if self.bar is None:
            return
        c = self.engine.counters
        money = {"cost": f"{c.cost(self.engine.options):.4f}"} if self.engine.options.priced else {}
        self.bar.set_postfix(sent=c.requests_sent, cached=c.calls_cached, failed=c.failed, tokens=c.tokens,
                             **money, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _write_derived_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    """Atomic (temp file + rename) but without fsync: these files are derived data, rebuilt from
    the response store by any re-run, so surviving a process crash (which rename gives) is enough;
    the fsyncs cost a fifth of a fully cached re-run."""
    return _write_derived(path, "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"
                                        for r in records))


def _write_derived(path: Path, text: str) -> Path:
    """Write derived data atomically without fsync (see `_write_derived_jsonl`; report.json too: it is
    rebuilt by every run, and an fsync waits on the disk, for long when other processes write)."""
    data = text.encode("utf-8")
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return path  # a re-run that changed nothing: no write, no rename (they wait on the disk)
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return path


def _write_outputs(out_dir: Path, units: list[Unit], generators: tuple[str, ...]) -> dict[str, str]:
    files = {}
    for g in generators:
        mine = sorted((u for u in units if u.generator == g), key=lambda u: u.order)
        rows = [r for u in mine for r in u.result.rows]
        rejected = [r for u in mine for r in u.result.rejected]
        duplicates = [r for u in mine for r in u.result.duplicates]
        gen_path, rej_path = out_dir / g / "gen.jsonl", out_dir / g / "rejected.jsonl"
        dup_path = out_dir / g / "duplicates.jsonl"
        _write_derived_jsonl(gen_path, rows)
        _write_derived_jsonl(rej_path, rejected)
        _write_derived_jsonl(dup_path, duplicates)
        files[f"{g}/gen.jsonl"] = str(gen_path)
        files[f"{g}/rejected.jsonl"] = str(rej_path)
        files[f"{g}/duplicates.jsonl"] = str(dup_path)
    return files


def _drop_duplicates(units: list[Unit], threshold: float | None) -> dict[str, Any]:
    """Move rows whose question repeats an earlier kept one (any chunk, any generator) from each
    unit's rows to its duplicates; earlier = seed order, then generator order (deterministic, so a
    resumed run writes the same files). See ktools.generate.dedup."""
    if not threshold:
        return {"threshold": None, "dropped": 0}
    ordered = sorted(units, key=lambda u: u.order)
    located = [(u, k) for u in ordered for k in range(len(u.result.rows))]
    found = find_duplicates([u.result.rows[k]["question"] for u, k in located], threshold)
    drop: dict[int, set[int]] = {}
    for dup in found:
        unit, k = located[dup.index]
        original_unit, original_k = located[dup.kept]
        row = dict(unit.result.rows[k])
        row.update({"duplicate_of": original_unit.result.rows[original_k]["item_id"],
                    "duplicate_of_generator": original_unit.generator, "similarity": dup.similarity})
        unit.result.duplicates.append(row)
        drop.setdefault(id(unit), set()).add(k)
    for unit in ordered:
        gone = drop.get(id(unit))
        if gone:
            unit.result.rows = [r for k, r in enumerate(unit.result.rows) if k not in gone]
    return {"threshold": threshold, "dropped": len(found), "kept": len(located) - len(found)}


def _estimate(units: list[Unit], total_chunks: int, options: GenerationOptions) -> dict[str, Any]:
    est: dict[str, Any] = {"chunks": total_chunks, "generators": {}}
    calls = tokens = cost = 0.0
    for g in options.generators:
        # Failed units asked (nearly) nothing: they would make the estimate too low.
        done = [u for u in units if u.generator == g and u.result.status not in (PENDING, FAILED)]
        if not done:
            continue
        per_calls = sum(u.calls for u in done) / len(done)
        per_tokens = sum(u.tokens for u in done) / len(done)
        per_cost = options.cost(sum(u.prompt_tokens for u in done), sum(u.completion_tokens for u in done)) / len(done)
        est["generators"][g] = {"requests_per_chunk": round(per_calls, 1), "tokens_per_chunk": round(per_tokens),
                                "requests": round(per_calls * total_chunks),
                                "tokens": round(per_tokens * total_chunks)}
        if options.priced:
            est["generators"][g]["cost"] = round(per_cost * total_chunks, 4)
        calls += per_calls * total_chunks
        tokens += per_tokens * total_chunks
        cost += per_cost * total_chunks
    est["requests"] = round(calls)
    est["tokens"] = round(tokens)
    if options.priced:
        est["cost"] = round(cost, 4)
    return est


async def arun_generation(
    seed: str | Path | Iterable[dict[str, Any]],
    options: GenerationOptions | None = None,
    client: Any = None,
    out_dir: str | Path | None = None,
    *,
    cache_path: str | Path | None = None,
) -> GenerationReport:
    """Run the generators over the seed rows; see `ktools.generate` for the full contract."""
    options = options or GenerationOptions()
    t0 = time.perf_counter()
    seeds = load_seed_rows(seed, options.subsample)
    out = Path(out_dir) if out_dir else _default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    own_client = client is None
    if own_client:
        client = _make_client()
    model = str(getattr(client, "model", "") or "")
    embedded = _is_embedded(model)
    client_limit = getattr(client, "max_concurrency", None)
    concurrency = options.max_concurrency or client_limit or 16
    if client_limit:
        concurrency = min(concurrency, client_limit)
    store = ResponseStore(Path(cache_path) if cache_path else out / "responses.sqlite")
    try:
        engine = Engine(client, store, options, model=model, embedded_teacher=embedded, concurrency=concurrency)
    except BaseException:  # a bad prompt override, say: nothing ran, leave nothing open
        store.close()
        if own_client:
            await _aclose(client)
        raise
    run_seeds = seeds[: options.dry_run_chunks] if options.dry_run else seeds
    units = make_units(run_seeds, options.generators)

    skip: dict[int, tuple[str, str | None]] = {}
    statuses = store.statuses()
    for u in units:
        s = statuses.get((u.generator, u.seed["chunk_id"]))
        if not s or s.fingerprint != engine.fingerprints[u.generator]:
            continue
        if s.status == FAILED and not options.retry_failed:
            skip[u.order] = (FAILED, f"{s.reason} (recorded by an earlier run; retry with retry_failed=True)")
        elif s.status in (DONE, REJECTED_ALL):
            u.replay = True

    progress = _Progress(len(units), engine, options.show_progress,
                         "dry run" if options.dry_run else "generation")
    # Enough units in flight to keep every slot busy even while some wait on their parents.
    window = max(16, 4 * concurrency)
    interrupted = False
    log.info("generation: %d chunks x %d generators, model %s, concurrency %d, judges %s, store %s",
             len(run_seeds), len(options.generators), model or "?", concurrency,
             [j.name for j in engine.judges] or "off", store.path)
    try:
        await run_units(engine, units, window=window, on_done=progress, skip=skip)
    except (asyncio.CancelledError, KeyboardInterrupt):
        interrupted = True
        raise
    finally:
        progress.close()
        store.close()  # commits everything already queued
        report = _finish(out, units, seeds, options, engine, embedded, model, time.perf_counter() - t0,
                         interrupted)
        if own_client:
            await _aclose(client)
    return report


async def _aclose(client: Any) -> None:
    closer = getattr(client, "aclose", None)
    if closer is not None:
        try:
            await closer()
        except Exception:  # noqa: BLE001 - closing must not hide the run's result
            log.debug("closing the teacher client failed", exc_info=True)


def _finish(out: Path, units: list[Unit], seeds: list[dict], options: GenerationOptions, engine: Engine,
            embedded: bool, model: str, wall: float, interrupted: bool) -> GenerationReport:
    dedup = _drop_duplicates(units, options.dedup_threshold)
    results = [u.result for u in units]
    gens, docs, failures = build_report(results, generators=options.generators)
    for g in gens.values():
        g["status"] = generator_status(g["chunks"], g["rows"])
    outcome = run_status(gens)
    if options.dry_run:
        # A dry run whose every chunk failed estimated nothing: it fails, with the teacher's error.
        status = outcome if outcome == FAILED_RUN and failures else "dry_run"
    elif interrupted:
        status = "interrupted"
    elif engine.stopping:
        status = engine.stop_status
    else:
        status = outcome
    judges = {name: {"enabled": any(j.name == name for j in engine.judges),
                     "threshold": options.threshold(name),
                     "auto_off_for_embedded_teacher": getattr(options, f"judge_{name}") is None and embedded}
              for name in JUDGES}
    report = GenerationReport(status=status, status_reason=status_reason(status, gens, failures), model=model, out_dir=str(out), wall_seconds=wall,
                              chunks=len(seeds), requests=engine.counters.as_dict(), generators=gens,
                              documents=docs, failures=failures, judges=judges, options=options.as_dict(),
                              endpoints=list(getattr(engine.client, "endpoint_stats", list)()))
    if engine.stopping and not options.dry_run:
        limit = (f"the token budget of {options.token_budget} tokens" if status == "budget_reached"
                 else f"the cost limit of {options.max_cost:g} ({engine.counters.cost(options):.4f} spent)")
        report.status_reason = f"stopped at {limit}; {report.status_reason}"
    report.dedup = dedup
    report.options["few_shot_in_effect"] = engine.few_shot
    report.options["max_tokens_in_effect"] = engine.params.max_tokens
    report.options["stage_max_tokens_in_effect"] = {name: p.max_tokens for name, p in engine.stage_params.items()}
    if options.priced:
        report.requests["cost"] = round(engine.counters.cost(options), 6)
    report.requests["stored_writes"] = engine.store.rows_written
    report.requests["store_commits"] = engine.store.commits
    report.requests["store_writer_ms"] = round(engine.store.writer_seconds * 1000, 1)
    if options.dry_run:
        report.estimate = _estimate(units, len(seeds), options)
        report.samples = {g: [r for u in units if u.generator == g for r in u.result.rows][:3]
                          for g in options.generators}
        return report
    if status != COMPLETE or failures:
        hint = (f"{engine.store.count_responses()} responses are stored in {engine.store.path}; "
                "re-run the same command (or cell) to resume - only unanswered requests are sent.")
        if failures:
            hint += f" {len(failures)} chunk(s) failed; add --retry-failed (retry_failed=True) to retry them."
        report.resume_hint = hint
        log.warning("generation %s: %s. %s", status, report.status_reason, hint)
    report.files = _write_outputs(out, units, options.generators)
    report.files["report.json"] = str(_write_derived(out / "report.json",
                                                     json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n"))
    return report


def run_generation(
    seed: str | Path | Iterable[dict[str, Any]],
    options: GenerationOptions | None = None,
    client: Any = None,
    out_dir: str | Path | None = None,
    *,
    cache_path: str | Path | None = None,
) -> GenerationReport:
    """Blocking `arun_generation`, usable from scripts and from Jupyter cells alike.

    Runs on a fresh event loop in a worker thread. Ctrl+C cancels the run cleanly and
    raises `GenerationInterrupted` (a KeyboardInterrupt) whose `.report` has the details.
    """
    holder: dict[str, Any] = {}
    ready = threading.Event()
    result: concurrent.futures.Future = concurrent.futures.Future()

    def worker() -> None:
        loop = new_event_loop()  # uvloop when installed: less CPU per teacher request
        holder["loop"] = loop
        task = loop.create_task(arun_generation(seed, options, client, out_dir, cache_path=cache_path))
        holder["task"] = task
        ready.set()
        outcome: tuple[bool, Any]
        try:
            outcome = (True, loop.run_until_complete(task))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome = (False, exc)
        finally:
            # Close the loop before handing the result over: the caller may close the
            # client next, and the client waits for the pools of loops still running.
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
        if outcome[0]:
            result.set_result(outcome[1])
        else:
            result.set_exception(outcome[1])

    thread = threading.Thread(target=worker, name="ktools-generation", daemon=True)
    thread.start()
    try:
        # Inside the try: on a loaded machine the main thread may still be waking from this wait
        # when a Ctrl+C arrives (the run may already be sending), and it must stop cleanly too.
        ready.wait()
        while True:
            try:
                return result.result(timeout=0.25)
            except concurrent.futures.TimeoutError:
                continue
    except KeyboardInterrupt:
        ready.wait()  # the loop and its task exist once the worker has said so
        loop, task = holder["loop"], holder["task"]
        log.warning("interrupt: stopping generation cleanly (finishing in-flight writes)...")
        loop.call_soon_threadsafe(task.cancel)
        thread.join()
        report = _last_report(out_dir)
        raise GenerationInterrupted(report) from None


def _last_report(out_dir: str | Path | None) -> GenerationReport | None:
    from ktools.io import read_json

    try:
        path = Path(out_dir) if out_dir else _default_out_dir()
        data = read_json(path / "report.json")
    except Exception:  # noqa: BLE001
        return None
    report = GenerationReport(**{k: v for k, v in data.items() if k in GenerationReport.__dataclass_fields__})
    return report


__all__ = ["FLOWS", "GenerationInterrupted", "arun_generation", "load_seed_rows", "run_generation"]
