"""The response store: every teacher completion, durably, before anything uses it.

SQLite in WAL mode at `output/step_03/responses.sqlite`.

Key. A request is identified by `request_hash` = sha256 of the canonical JSON of
(model, messages, sampling params); each of its `n` samples is stored under
(request_hash, sample_index). That is the (model, messages, params, sample index)
key of the design, split in two columns so one indexed lookup returns all samples of
a request. Changing the model, a sampling parameter or a prompt changes the hash of
exactly the requests it affects; asking for more samples (N 5 -> 7) re-uses the five
stored ones and asks only for two more; a provider that returned fewer choices than
asked leaves the missing indices unanswered, and only those are asked again.

Durability. `await store.put(...)` returns only once the rows are committed, and the
engine uses a response only after that, so a crash or `kill -9` loses at most the
requests in flight. Commits happen on a writer thread that batches everything queued
while it was busy into one transaction, so the event loop never waits on disk and a
burst of answers costs one commit. WAL with synchronous=NORMAL survives process crashes
(the case resume is for); it may lose the last transactions on power loss, which only
means re-asking them.

Reads (lookups before each request) use a separate connection on the caller's thread:
WAL readers never block on the writer.

The same file holds the chunk status table (done / failed with reason / rejected_all)
so a run's whole state is one file.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ktools.llm.types import Choice, SamplingParams

try:
    import orjson as _orjson
except ImportError:  # a base dependency; the json module alone gives the same hashes
    _orjson = None

log = logging.getLogger(__name__)

# Rows (prompts of several KB, completions) live in rowid tables: new rows are appended
# in order and only the small key index takes random inserts. (Keyed WITHOUT ROWID
# tables scattered every big row over random pages: twice the writer's CPU. Stores
# created that way keep their tables; the queries are the same.)
SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_hash TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    messages TEXT NOT NULL,
    params TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    request_hash TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    reasoning TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    UNIQUE (request_hash, sample_index)
);
CREATE TABLE IF NOT EXISTS chunk_status (
    generator TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    fingerprint TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (generator, chunk_id)
) WITHOUT ROWID;
"""


def _all_str_messages(messages: list[Any]) -> bool:
    for message in messages:  # plain loops: cheaper than nested all() over generators
        if type(message) is not dict:
            return False
        for value in message.values():
            if type(value) is not str:
                return False
    return True


def canonical_json(obj: Any) -> str:
    """Sorted-key compact JSON (non-ASCII kept): the text request hashes are taken of.

    Chat messages (a list of dicts of strings, the engine's every key) go through orjson,
    which writes strings and keys byte for byte as this json.dumps call does (checked for
    every code point in tests/unit/test_generate_store.py) at a third of the CPU;
    anything else (floats, nested parts, lone surrogates) keeps json.dumps, so every
    stored hash stays valid.
    """
    if _orjson is not None and type(obj) is list and _all_str_messages(obj):
        try:
            return _orjson.dumps(obj, option=_orjson.OPT_SORT_KEYS).decode()
        except TypeError:  # a lone surrogate or a non-str key: json.dumps decides
            pass
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def params_json(params: SamplingParams | dict[str, Any]) -> str:
    return canonical_json(params.as_dict() if isinstance(params, SamplingParams) else params)


@functools.lru_cache(maxsize=64)
def _model_json(model: str) -> str:
    return canonical_json(model)


def request_hash_from_json(model: str, messages_json: str, params_json_text: str) -> str:
    """request_hash for already-serialised (canonical) messages and params - the engine's fast path."""
    # Byte for byte the canonical JSON of {"messages", "model", "params"} (keys sorted).
    blob = f'{{"messages":{messages_json},"model":{_model_json(model)},"params":{params_json_text}}}'
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def request_hash(model: str, messages: Sequence[dict[str, Any]], params: SamplingParams | dict[str, Any]) -> str:
    """sha256 of the canonical JSON of (model, messages, sampling params)."""
    return request_hash_from_json(model, canonical_json(list(messages)), params_json(params))


def response_key(model: str, messages: Sequence[dict[str, Any]], params: SamplingParams | dict[str, Any],
                 sample_index: int) -> str:
    """The single-string form of a stored sample's key (request hash + sample index)."""
    return f"{request_hash(model, messages, params)}:{sample_index}"


class StoredSample(NamedTuple):
    """One stored completion (a tuple: the store holds one per answered sample, built at every open)."""

    text: str
    finish_reason: str | None
    reasoning: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_choice(self) -> Choice:
        return Choice(text=self.text, finish_reason=self.finish_reason, reasoning=self.reasoning)


@dataclass(frozen=True)
class ChunkStatus:
    generator: str
    chunk_id: str
    status: str
    reason: str | None
    fingerprint: str


GROUP_COMMIT_WAIT = 0.01  # seconds; small next to a teacher's latency, halves the commits at C=50


class StoreClosed(RuntimeError):
    pass


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class ResponseStore:
    """Durable store of teacher responses and chunk status. Use as a context manager or call `close()`."""

    def __init__(self, path: str | Path, *, preload: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = _connect(self.path)
        writer.executescript(SCHEMA)
        self._reader = _connect(self.path)
        # An in-memory index of everything stored: lookups (one per teacher call) become
        # dict reads instead of SQL queries. Kept in step by `put`; this process is the
        # store's only writer during a run.
        self._memory: dict[str, dict[int, StoredSample]] | None = None
        if preload:
            self._memory = {}
            for r in self._reader.execute(
                    "SELECT request_hash, sample_index, text, finish_reason, reasoning, prompt_tokens, "
                    "completion_tokens FROM responses"):
                self._memory.setdefault(r[0], {})[r[1]] = StoredSample(r[2], r[3], r[4], r[5], r[6])
        self._known_statuses: dict[tuple[str, str], tuple[str, str | None, str]] | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self.commits = 0
        self.rows_written = 0
        self.writer_seconds = 0.0
        self._thread = threading.Thread(target=self._writer_loop, args=(writer,),
                                        name="ktools-response-store", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- reads
    def lookup(self, req_hash: str) -> dict[int, StoredSample]:
        if self._memory is not None:
            return dict(self._memory.get(req_hash) or {})
        rows = self._reader.execute(
            "SELECT sample_index, text, finish_reason, reasoning, prompt_tokens, completion_tokens "
            "FROM responses WHERE request_hash=?", (req_hash,)).fetchall()
        return {r[0]: StoredSample(r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def statuses(self) -> dict[tuple[str, str], ChunkStatus]:
        rows = self._reader.execute(
            "SELECT generator, chunk_id, status, reason, fingerprint FROM chunk_status").fetchall()
        return {(r[0], r[1]): ChunkStatus(*r) for r in rows}

    def count_responses(self) -> int:
        if self._closed:  # after close (end of run): a short-lived connection
            conn = sqlite3.connect(str(self.path))
            try:
                return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            finally:
                conn.close()
        return self._reader.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def stored_requests(self) -> list[dict[str, Any]]:
        """Every stored request with the sample indices answered (for inspection and tests)."""
        rows = self._reader.execute(
            "SELECT q.request_hash, q.model, q.messages, q.params, group_concat(r.sample_index) "
            "FROM requests q LEFT JOIN responses r USING (request_hash) GROUP BY q.request_hash").fetchall()
        return [{"request_hash": h, "model": m, "messages": json.loads(msgs), "params": json.loads(p),
                 "samples": sorted(int(i) for i in (s.split(",") if s else []))}
                for h, m, msgs, p, s in rows]

    # ---------------------------------------------------------------- writes
    async def put(self, req_hash: str, model: str, messages: Sequence[dict[str, Any]] | str,
                  params: SamplingParams | str, samples: dict[int, Choice], prompt_tokens: int = 0,
                  completion_tokens: int = 0) -> None:
        """Store samples (index -> Choice); returns once committed. Usage is kept on the first sample.

        `messages` / `params` may be given already serialised (canonical JSON strings)."""
        now = time.time()
        messages_text = messages if isinstance(messages, str) else canonical_json(list(messages))
        params_text = params if isinstance(params, str) else params_json(params)
        request_row = (req_hash, model, messages_text, params_text, now)
        sample_rows = []
        for j, (index, choice) in enumerate(sorted(samples.items())):
            sample_rows.append((req_hash, index, choice.text or "", choice.finish_reason, choice.reasoning,
                                prompt_tokens if j == 0 else 0, completion_tokens if j == 0 else 0, now))
        await self._submit(("put", request_row, sample_rows))
        if self._memory is not None:
            stored = self._memory.setdefault(req_hash, {})
            for row in sample_rows:
                stored[row[1]] = StoredSample(row[2], row[3], row[4], row[5], row[6])

    async def set_status(self, generator: str, chunk_id: str, status: str, reason: str | None,
                         fingerprint: str) -> None:
        """Record a chunk's status; one already stored exactly so (a resumed run) is not rewritten."""
        known = self._known_statuses
        if known is None:
            known = self._known_statuses = {(r.generator, r.chunk_id): (r.status, r.reason, r.fingerprint)
                                            for r in self.statuses().values()}
        key, value = (generator, chunk_id), (status, reason, fingerprint)
        if known.get(key) == value:
            return
        await self._submit(("status", (generator, chunk_id, status, reason, fingerprint, time.time())))
        known[key] = value

    def set_status_sync(self, generator: str, chunk_id: str, status: str, reason: str | None,
                        fingerprint: str) -> None:
        done = threading.Event()
        self._queue.put((("status", (generator, chunk_id, status, reason, fingerprint, time.time())),
                         None, done.set))
        done.wait()
        if self._known_statuses is not None:
            self._known_statuses[(generator, chunk_id)] = (status, reason, fingerprint)

    async def _submit(self, op: tuple) -> None:
        if self._closed:
            raise StoreClosed(f"response store {self.path} is closed")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((op, loop, fut))
        await fut

    def _writer_loop(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stop = False
            if self._queue.empty() and first[0][0] == "put":
                # Group commit: answers arrive one by one at moderate concurrency; waiting a
                # moment for the next ones halves the commits (a commit costs ~4 rows) and
                # delays a chunk's next stage by at most this much.
                time.sleep(GROUP_COMMIT_WAIT)
            while len(batch) < 1024:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            t0 = time.perf_counter()
            error: BaseException | None = None
            try:
                conn.execute("BEGIN")
                for (op, *payload), _, _ in batch:
                    if op == "put":
                        request_row, sample_rows = payload
                        conn.execute("INSERT OR IGNORE INTO requests VALUES (?,?,?,?,?)", request_row)
                        conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?)", sample_rows)
                        self.rows_written += len(sample_rows)
                    elif op == "status":
                        conn.execute("INSERT OR REPLACE INTO chunk_status VALUES (?,?,?,?,?,?)", payload[0])
                conn.execute("COMMIT")
                self.commits += 1
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                error = exc
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                log.error("response store %s: write failed: %s", self.path, exc)
            self.writer_seconds += time.perf_counter() - t0
            self._resolve(batch, error)
            if stop:
                break
        conn.close()

    @staticmethod
    def _resolve(batch: list, error: BaseException | None) -> None:
        by_loop: dict[Any, list] = {}
        for _, loop, fut in batch:
            if loop is None:
                fut()  # a threading.Event.set from a sync caller
            else:
                by_loop.setdefault(loop, []).append(fut)

        def settle(futures: list) -> None:
            for f in futures:
                if not f.done():
                    if error is None:
                        f.set_result(None)
                    else:
                        f.set_exception(RuntimeError(f"response store write failed: {error}"))

        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(settle, futures)
            except RuntimeError:  # loop already closed (interrupted run): the rows are committed anyway
                pass

    def close(self) -> None:
        """Commit everything queued, stop the writer thread, close connections."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._reader.close()

    def __enter__(self) -> ResponseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
