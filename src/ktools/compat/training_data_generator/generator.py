"""The Training Data Generator's programmatic entry point, on the ktools engine.

    from ktools.compat.training_data_generator import QAGenerator

    generator = QAGenerator(chunks_dir="/data/chunks", qa_dir="/data/qa_results",
                            provider="openai", model="gpt-4", questions_per_chunk=8, temperature=0.2)
    summary = generator.generate_qa_for_all_documents(resume=True)
    print(f"Generated Q&A for {summary['successful_files']} documents")

It reads chunk files (`chunk_files`) or a ktools seed JSONL, runs step 03 as notebook 03 does
(`ktools.generate.step.generation_step`; default generator `document_based_qa`, the
Training Data Generator's one flow; any of the four can be chosen), and writes into
`qa_dir`:

- `{document}_qa.json` per document (the reference layout, `ktools.compat.training_data_generator.qa_files`);
- `qa_generation_summary.json`: documents, chunks done/failed/pending, pairs, success
  rate, requests, tokens, time per chunk;
- `qa_failures.jsonl`: one line per failed chunk (document, chunk id/index, generator,
  reason, start of the chunk text) and per unreadable input file;
- the engine's own files: `<generator>/gen.jsonl`, `rejected.jsonl`, `report.json` and
  the response store `responses.sqlite` that makes resume exact.

Resume is the engine's: every answered request is stored, so a re-run sends only what
was never answered (`resume=False` moves the previous outputs to a backup folder first).
"""

from __future__ import annotations

import logging
import shutil
import string
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ktools.compat.training_data_generator.chunk_files import ChunkDocument, read_chunks_dir
from ktools.compat.training_data_generator.qa_documents import (
    UNKNOWN_SOURCE,
    DocumentInfo,
    qa_documents_by_source,
)
from ktools.compat.training_data_generator.qa_files import (
    QA_FILE_SUFFIX,
    file_metadata,
    now_iso,
    write_qa_file,
)
from ktools.compat.training_data_generator.qa_inputs import generation_info_from_report
from ktools.compat.training_data_generator.settings import GenerateConfig, resolve_generate_config
from ktools.io import read_jsonl, write_json, write_jsonl
from ktools.prompts import check_template

log = logging.getLogger(__name__)

SUMMARY_FILE = "qa_generation_summary.json"
FAILURES_FILE = "qa_failures.jsonl"
TEMPLATE_DIR = ".ktools_prompts"
DEFAULT_TDG_GENERATORS = ("document_based_qa",)
# Placeholders of the reference tool's Q&A template -> variables of our `document_qa` prompt.
TDG_TEMPLATE_FIELDS = {"text": "document", "num_questions": "n_pairs", "extra_instructions": "extra_instructions"}
ENGINE_FILES = ("report.json", "responses.sqlite", "responses.sqlite-wal", "responses.sqlite-shm",
                SUMMARY_FILE, FAILURES_FILE)


class TDGError(ValueError):
    """Bad input or settings for a Training Data Generator run; the message says what to fix."""


def convert_tdg_template(text: str, origin: str = "template") -> str:
    """A Training Data Generator prompt template (`{text}`, `{num_questions}`, `{extra_instructions}`,
    `{{`/`}}` for literal braces) as the Jinja2 text our prompts use. Jinja templates pass unchanged."""
    if ("{{" in text or "{%" in text) and not any(f"{{{k}}}" in text for k in TDG_TEMPLATE_FIELDS):
        return text
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TDGError(f"{origin}: not a valid template ({exc}). Write literal braces as {{{{ and }}}}, "
                       "placeholders as {text}, {num_questions}, {extra_instructions}.") from None
    out = []
    for literal, name, _spec, _conversion in parts:
        out.append(literal.replace("{", "\x00").replace("}", '{{ "}" }}').replace("\x00", '{{ "{" }}'))
        if name is None:
            continue
        if name not in TDG_TEMPLATE_FIELDS:
            raise TDGError(f"{origin}: unknown placeholder {{{name}}}. Use {{text}} (the chunk), "
                           "{num_questions} and {extra_instructions}; write literal braces as {{ and }}.")
        out.append(f"{{{{ {TDG_TEMPLATE_FIELDS[name]} }}}}")
    return "".join(out)


def engine_parses_json_pairs() -> bool:
    """Whether the engine's Q&A parser reads the reference template's JSON array replies."""
    from ktools.generate.parsing import parse_qa_pairs

    sample = '[{"question": "What is the harbour fee here?", "answer": "Ten euros."}]'
    return parse_qa_pairs(sample) == [{"question": "What is the harbour fee here?", "response": "Ten euros."}]


class QAGenerator:
    """Generate Q&A for every document of a chunks folder (or a seed JSONL), resumably.

    Parameters follow the reference tool (None = from GENERATOR_*/OLLAMA_* env and .env,
    then ktools settings); extras: `base_url`, `generators`, `summaries`,
    `max_concurrency`, `prompts_dir`, `seed`, `client`, `top_k`/`top_p`/`repeat_penalty`/
    `num_predict`/`stop` (also accepted as `ollama_top_k` etc.), `judges` (None: auto,
    i.e. on for a real teacher and off for the embedded one; True/False forces them).
    """

    def __init__(
        self,
        chunks_dir: str | Path | None = None,
        qa_dir: str | Path | None = None,
        provider: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        questions_per_chunk: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        use_batch_processing: bool | int | None = None,
        qa_system_message: str | None = None,
        qa_additional_instructions: str | None = None,
        qa_custom_template: str | None = None,
        *,
        qa_extra_instructions: str | None = None,
        qa_prompt_template_file: str | Path | None = None,
        prompts_dir: str | Path | None = None,
        base_url: str | None = None,
        ollama_base_url: str | None = None,
        generators: Sequence[str] | str | None = None,
        summaries: int | None = None,
        max_concurrency: int | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        repeat_penalty: float | None = None,
        num_predict: int | None = None,
        stop: Sequence[str] | str | None = None,
        seed: str | Path | None = None,
        client: Any = None,
        judges: bool | None = None,
        stage_max_tokens: Mapping[str, int] | None = None,
        settings_overrides: Mapping[str, Any] | None = None,
        show_progress: bool = True,
        environ: Mapping[str, str] | None = None,
        repo_root: str | Path | None = None,
        **kwargs: Any,
    ):
        aliases = {"ollama_top_k": "top_k", "ollama_top_p": "top_p", "ollama_repeat_penalty": "repeat_penalty",
                   "ollama_num_predict": "num_predict", "ollama_stop": "stop"}
        local = {"top_k": top_k, "top_p": top_p, "repeat_penalty": repeat_penalty, "num_predict": num_predict,
                 "stop": stop}
        for key, value in kwargs.items():
            if key not in aliases:
                raise TypeError(f"QAGenerator() got an unexpected keyword argument {key!r}")
            if local[aliases[key]] is None:
                local[aliases[key]] = value
        if isinstance(local["stop"], str):
            local["stop"] = [local["stop"]]
        batch = use_batch_processing
        self.config: GenerateConfig = resolve_generate_config({
            "provider": provider, "model": model, "api_key": api_key, "base_url": base_url,
            "ollama_base_url": ollama_base_url, "temperature": temperature, "max_tokens": max_tokens,
            "questions_per_chunk": questions_per_chunk, "summaries": summaries,
            "max_concurrency": max_concurrency, "batch_processing": batch,
            "chunks_dir": str(chunks_dir) if chunks_dir else None, "qa_dir": str(qa_dir) if qa_dir else None,
            "extra_instructions": qa_extra_instructions or qa_additional_instructions, **local,
        }, environ=environ, repo_root=repo_root)
        # Command-line values for plain ktools settings (TOKEN_BUDGET, MAX_COST, prices, TEACHER_RPM, ...):
        # given ones win over the environment, like every other flag.
        given = {k: v for k, v in (settings_overrides or {}).items() if v is not None}
        if given:
            import dataclasses

            self.config = dataclasses.replace(self.config, settings=self.config.settings.replace(**given))
        self.seed = Path(seed) if seed else None
        if self.seed is None and self.config.chunks_dir is None:
            raise TDGError("no input: pass chunks_dir (a folder of chunk files; env GENERATOR_PROCESS_DIR) "
                           "or seed (a ktools seed JSONL)")
        self.generators = self._generators(generators)
        self.system_message = qa_system_message
        self.template_text = qa_custom_template
        self.template_file = Path(qa_prompt_template_file) if qa_prompt_template_file else None
        self.prompts_dir = Path(prompts_dir) if prompts_dir else None
        self.client = client
        self.judges = judges
        self.stage_max_tokens = dict(stage_max_tokens or {})
        self.show_progress = show_progress
        self.qa_dir = self.config.qa_dir or self._default_qa_dir()

    # ------------------------------------------------------------------ setup
    def _generators(self, generators: Sequence[str] | str | None) -> tuple[str, ...]:
        from ktools.generate import normalise_generators

        if generators is None:
            # The reference tool asks for Q&A straight from each chunk; a ktools seed gets all four.
            return DEFAULT_TDG_GENERATORS if self.seed is None else normalise_generators(None)
        return normalise_generators(generators)

    def _default_qa_dir(self) -> Path:
        from ktools.paths import OutputPaths

        return OutputPaths.from_settings(self.config.settings).step(3)

    def _prompt_overrides(self) -> dict[str, Path]:
        text, origin = self.template_text, "qa_custom_template"
        if self.template_file is not None:
            if not self.template_file.is_file():
                raise TDGError(f"prompt template file {self.template_file} does not exist "
                               "(--qa-prompt-template-file)")
            text, origin = self.template_file.read_text(encoding="utf-8"), str(self.template_file)
        if text is None:
            return {}
        if self.template_file is not None and self.template_file.suffix.lower() in (".yaml", ".yml"):
            return {"document_qa": self.template_file}
        converted = convert_tdg_template(text, origin)
        check_template(converted, origin)  # name the user's file, not the copy loaded below
        if "json" in text.lower() and not engine_parses_json_pairs():
            log.warning("%s asks the teacher for JSON, but this ktools version parses Q&A replies as "
                        "'Question: … / Answer: …' lines; pairs may be lost or garbled. Ask for that format "
                        "in the template (see `ktools/prompts/document_qa.yaml`).", origin)
        target = self.qa_dir / TEMPLATE_DIR / "document_qa.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(converted, encoding="utf-8")
        return {"document_qa": target}

    def options(self, *, retry_failed: bool = False, dry_run: bool = False):
        """Step 03's options (`generation_options`, as notebook 03 builds them) plus this tool's extras."""
        from ktools.generate.step import generation_options

        c, s = self.config, self.config.settings
        return generation_options(
            s, generators=self.generators, questions_per_chunk=c.questions_per_chunk, judges=self.judges,
            top_p=c.top_p, stop=c.stop, extra_sampling=dict(c.sampling_extra()), system_message=self.system_message,
            prompt_overrides_dir=self.prompts_dir, prompt_overrides=self._prompt_overrides(),
            retry_failed=retry_failed, dry_run=dry_run, show_progress=self.show_progress,
            stage_max_tokens={**s.stage_max_tokens, **self.stage_max_tokens} or None,
        )

    def _make_client(self) -> Any:
        from ktools.config import ConfigError
        from ktools.llm.client import TeacherClient

        try:
            return TeacherClient.from_settings(self.config.settings)
        except ConfigError as exc:
            raise ConfigError(f"{exc} With `ktools generate` you can also use --api-key / GENERATOR_API_KEY "
                              "and --model / GENERATOR_MODEL.") from None

    # ------------------------------------------------------------------ inputs
    def _inputs(self) -> tuple[list[dict[str, Any]], dict[str, ChunkDocument], list[tuple[str, str]]]:
        if self.seed is not None:
            from ktools.generate import load_seed_rows

            rows = load_seed_rows(self.seed)
            return rows, {}, []
        load = read_chunks_dir(self.config.chunks_dir)
        docs = {doc.source: doc for doc in load.documents}
        return load.rows, docs, load.errors

    def backup_previous(self) -> Path | None:
        """Move earlier outputs of `qa_dir` into `qa_dir/backup_<time>/` (for resume=False)."""
        if not self.qa_dir.is_dir():
            return None
        from ktools.paths import GENERATORS

        movable = [p for p in self.qa_dir.iterdir()
                   if p.name.endswith(QA_FILE_SUFFIX) or p.name in ENGINE_FILES or p.name == TEMPLATE_DIR
                   or (p.is_dir() and p.name in GENERATORS)]
        if not movable:
            return None
        backup = self.qa_dir / f"backup_{datetime.now().strftime('%Y%m%d_%H%M%S')}"
        backup.mkdir()
        for path in movable:
            shutil.move(str(path), str(backup / path.name))
        log.info("starting over: moved %d earlier outputs to %s", len(movable), backup)
        return backup

    # ------------------------------------------------------------------ run
    def generate_qa_for_all_documents(self, resume: bool | None = None, *, retry_failed: bool = False,
                                      dry_run: bool = False) -> dict[str, Any]:
        """Run generation and write the Q&A files; returns the summary (also saved as JSON).

        Keys of the reference tool (total_files, successful_files, failed_files,
        qa_files_created, qa_directory, processed_at) plus documents_done/failed, chunks,
        total_qa_pairs, success_rate, requests, tokens, seconds_per_chunk, status.
        Raises `ktools.generate.GenerationInterrupted` on Ctrl+C after writing what is done.
        """
        from ktools.generate import GenerationInterrupted
        from ktools.generate.step import close_client, generation_step

        resume = self.config.resume if resume is None else resume
        t0 = time.perf_counter()
        rows, chunk_docs, input_errors = self._inputs()
        if not rows:
            raise TDGError(f"no usable chunks: {'; '.join(r for _, r in input_errors)}")
        backup = None if resume or dry_run else self.backup_previous()
        self.qa_dir.mkdir(parents=True, exist_ok=True)
        options = self.options(retry_failed=retry_failed, dry_run=dry_run)
        client = self.client or self._make_client()
        log.info("generating Q&A: %d chunks from %d documents, generators %s, provider %s, model %s -> %s",
                 len(rows), len({r.get('source') for r in rows}), ", ".join(self.generators),
                 self.config.settings.teacher_provider, getattr(client, "model", "?"), self.qa_dir)
        interrupted = None
        try:
            report = generation_step(self.config.settings, options, client=client, seed=rows, out_dir=self.qa_dir)
        except GenerationInterrupted as exc:
            interrupted, report = exc, exc.report
        finally:
            if self.client is None:
                close_client(client)
        if report is None:  # interrupted before anything ran
            raise interrupted  # type: ignore[misc]
        if dry_run:
            return self._dry_run_summary(report, rows)
        summary = self._write_outputs(report, rows, chunk_docs, input_errors, time.perf_counter() - t0)
        if backup is not None:
            summary["backup_dir"] = str(backup)
            write_json(self.qa_dir / SUMMARY_FILE, summary)
        if interrupted is not None:
            raise interrupted
        return summary

    def _dry_run_summary(self, report: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"status": report.status, "status_reason": report.status_reason,
                "failures": list(report.failures), "total_chunks": len(rows), "estimate": report.estimate,
                "samples": report.samples, "requests": dict(report.requests), "qa_directory": str(self.qa_dir)}

    def _chunk_states(self, rows: list[dict[str, Any]], report: Any) -> dict[str, dict[str, Any]]:
        """chunk_id -> {"status": done|failed|pending, "reason", "generator"} across the chosen generators."""
        from ktools.generate import ResponseStore

        statuses = {}
        store_path = self.qa_dir / "responses.sqlite"
        if store_path.is_file():
            with ResponseStore(store_path) as store:
                statuses = store.statuses()
        failures = {(f["generator"], f["chunk_id"]): f.get("error") for f in report.failures}
        states: dict[str, dict[str, Any]] = {}
        for row in rows:
            cid = row["chunk_id"]
            state: dict[str, Any] = {"status": "done"}
            for g in self.generators:
                if (g, cid) in failures:
                    state = {"status": "failed", "reason": failures[(g, cid)], "generator": g}
                    break
                recorded = statuses.get((g, cid))
                if recorded is None or recorded.status == "pending":
                    state = {"status": "pending"}
                elif recorded.status == "failed":
                    state = {"status": "failed", "reason": recorded.reason, "generator": g}
                    break
            states[cid] = state
        return states

    def _write_outputs(self, report: Any, rows: list[dict[str, Any]], chunk_docs: dict[str, ChunkDocument],
                       input_errors: list[tuple[str, str]], wall: float) -> dict[str, Any]:
        from ktools.generate.outcome import document_status

        gen_rows: list[dict[str, Any]] = []
        for g in self.generators:
            path = self.qa_dir / g / "gen.jsonl"
            if path.is_file():
                gen_rows.extend(read_jsonl(path))
        states = self._chunk_states(rows, report)
        original_ids = {r["chunk_id"]: r.get("tdg_chunk_id", r["chunk_id"]) for r in rows}
        s = self.config.settings
        generation_info = {
            "provider": s.teacher_provider, "model": report.model or s.teacher_model_name,
            "questions_per_chunk": self.config.questions_per_chunk, "temperature": s.temperature,
            "max_tokens": s.max_tokens, "generators": list(self.generators), "generated_at": now_iso(),
        }
        if any(g in self.generators for g in ("extractive_summary", "detailed_summary")):
            generation_info["number_of_summaries"] = s.number_of_summaries
        generation_info.update({k: v for k, v in generation_info_from_report(report.to_dict()).items()
                                if k not in generation_info})
        documents = {source: DocumentInfo(metadata=doc.metadata, processing_info=doc.processing_info)
                     for source, doc in chunk_docs.items()}
        if not chunk_docs:
            from ktools.paths import OutputPaths

            converted = OutputPaths.from_settings(s).converted_dir
            documents = {src: DocumentInfo(metadata=file_metadata(src, search_dirs=[converted]))
                         for src in dict.fromkeys(r.get("source") or UNKNOWN_SOURCE for r in rows)}
        pending_any = any(st["status"] == "pending" for st in states.values())
        run_status = "interrupted" if report.status == "interrupted" else None
        qa_docs = qa_documents_by_source(
            gen_rows, chunks=rows, generation_info=generation_info, chunk_status=states, documents=documents,
            qa_names={source: doc.qa_name for source, doc in chunk_docs.items()})

        failures_log: list[dict[str, Any]] = []
        per_doc = []
        chunk_by_id = {r["chunk_id"]: r for r in rows}
        for source, qa_name, doc in qa_docs:
            doc_rows = [r for r in rows if (r.get("source") or UNKNOWN_SOURCE) == source]
            pending = [r for r in doc_rows if states[r["chunk_id"]]["status"] == "pending"]
            doc["status"] = document_status(len(doc["training_pairs"]),
                                            [states[r["chunk_id"]]["status"] for r in doc_rows], run_status)
            for pair in doc["training_pairs"]:
                pair["chunk_id"] = original_ids.get(pair["chunk_id"], pair["chunk_id"])
            for failure in doc.get("failures", []):
                row = chunk_by_id.get(failure["chunk_id"], {})
                failure["chunk_id"] = original_ids.get(failure["chunk_id"], failure["chunk_id"])
                failure["generator"] = states.get(row.get("chunk_id", ""), {}).get("generator")
                failures_log.append({
                    "time": now_iso(), "kind": "chunk", "qa_file": qa_name,
                    "source_file": doc["metadata"].get("source_file", source),
                    "chunk_file": ", ".join(chunk_docs[source].files) if source in chunk_docs else None,
                    "chunk_id": failure["chunk_id"], "chunk_index": failure["chunk_index"],
                    "generator": failure["generator"], "reason": failure["reason"],
                    "chunk_text_start": (row.get("document") or "")[:200],
                })
            write_qa_file(self.qa_dir / qa_name, doc)
            per_doc.append({"qa_file": qa_name, "source_file": doc["metadata"].get("source_file", source),
                            "status": doc["status"],
                            "chunks": doc["summary"]["total_chunks"],
                            "chunks_completed": doc["summary"]["completed_chunks"],
                            "chunks_failed": doc["summary"]["failed_chunks"], "chunks_pending": len(pending),
                            "qa_pairs": doc["summary"]["total_qa_pairs"]})
        for path, reason in input_errors:
            failures_log.append({"time": now_iso(), "kind": "input", "chunk_file": path, "reason": reason})
        write_jsonl(self.qa_dir / FAILURES_FILE, failures_log)
        summary = self._summary(report, per_doc, input_errors, len(rows), wall, pending_any)
        write_json(self.qa_dir / SUMMARY_FILE, summary)
        for entry in failures_log:
            if entry["kind"] == "chunk":
                log.warning("failed: %s chunk %s (index %s): %s", entry["qa_file"], entry["chunk_id"],
                            entry["chunk_index"], entry["reason"])
            else:
                log.warning("skipped input: %s", entry["reason"])
        log.info("Q&A generation: %d/%d documents done, %d pairs, %d failed chunks; summary %s",
                 summary["documents_done"], summary["total_files"], summary["total_qa_pairs"],
                 summary["chunks_failed"], self.qa_dir / SUMMARY_FILE)
        return summary

    def _summary(self, report: Any, per_doc: list[dict[str, Any]], input_errors: list[tuple[str, str]],
                 n_chunks: int, wall: float, pending_any: bool) -> dict[str, Any]:
        done = [d for d in per_doc if d["status"] == "completed" and d["chunks_completed"] > 0]
        failed_docs = len(per_doc) - len(done) + len(input_errors)
        completed = sum(d["chunks_completed"] for d in per_doc)
        failed = sum(d["chunks_failed"] for d in per_doc)
        req = dict(report.requests)
        tokens = int(req.get("prompt_tokens", 0)) + int(req.get("completion_tokens", 0))
        return {
            "total_files": len(per_doc) + len(input_errors),
            "successful_files": len(done),
            "failed_files": failed_docs,
            "qa_files_created": [d["qa_file"] for d in per_doc],
            "qa_directory": str(self.qa_dir),
            "processed_at": now_iso(),
            "status": report.status,
            "status_reason": getattr(report, "status_reason", ""),
            "provider": self.config.settings.teacher_provider,
            "model": report.model,
            "generators": list(self.generators),
            "documents_done": len(done),
            "documents_failed": failed_docs,
            "total_chunks": n_chunks,
            "chunks_completed": completed,
            "chunks_failed": failed,
            "chunks_pending": n_chunks - completed - failed,
            "total_qa_pairs": sum(d["qa_pairs"] for d in per_doc),
            "success_rate": round(completed / n_chunks, 4) if n_chunks else 0.0,
            "requests": req,
            "requests_sent": int(req.get("sent", 0)),
            "endpoints": list(getattr(report, "endpoints", None) or []),
            "tokens": tokens,
            "wall_seconds": round(wall, 3),
            "seconds_per_chunk": round(wall / n_chunks, 3) if n_chunks else None,
            "documents": per_doc,
            "bad_input_files": [{"file": p, "reason": r} for p, r in input_errors],
            "failures_log": str(self.qa_dir / FAILURES_FILE),
            "resume_hint": report.resume_hint or ("re-run the same command to finish the pending chunks"
                                                  if pending_any else ""),
        }
