"""The response store: durable, keyed by (model, messages, params, sample index)."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from ktools.generate.store import ResponseStore, canonical_json, request_hash, response_key
from ktools.llm.types import Choice, SamplingParams

MSGS = [{"role": "user", "content": "hello"}]


def test_key_changes_with_model_messages_params_and_index():
    p = SamplingParams(temperature=0.5, max_tokens=10)
    base = response_key("m", MSGS, p, 0)
    assert base == response_key("m", [dict(MSGS[0])], SamplingParams(temperature=0.5, max_tokens=10), 0)
    assert base != response_key("m2", MSGS, p, 0)
    assert base != response_key("m", [{"role": "user", "content": "hello!"}], p, 0)
    assert base != response_key("m", MSGS, SamplingParams(temperature=0.6, max_tokens=10), 0)
    assert base != response_key("m", MSGS, SamplingParams(temperature=0.5, max_tokens=10, extra=(("top_k", 5),)), 0)
    assert base != response_key("m", MSGS, p, 1)
    assert len(request_hash("m", MSGS, p)) == 64


def _json_module(obj):
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def test_canonical_json_is_byte_for_byte_the_json_modules_text():
    # Stored hashes were taken of json.dumps' text: the fast path must not change one.
    every_char = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    messages = [{"role": "system", "content": every_char}, {"content": "q \"x\" \\ \n", "role": "user"},
                {"role": "user", "content": "", "name": "é\u2028"}]
    assert canonical_json(messages) == _json_module(messages)
    for other in ([{"role": "user", "content": "\ud800 lone surrogate"}],  # orjson refuses: json decides
                  [{"role": "user", "content": [{"type": "text", "text": "parts"}]}],
                  {"temperature": 1e-05, "max_tokens": 10, "top_p": 0.95}, [{"n": 2**70}], "model"):
        assert canonical_json(other) == _json_module(other)


def test_put_is_committed_before_it_returns_and_survives_reopen(tmp_path):
    path = tmp_path / "r.sqlite"
    p = SamplingParams()
    h = request_hash("m", MSGS, p)

    async def main(store):
        await store.put(h, "m", MSGS, p, {0: Choice("a", "stop"), 2: Choice("c", "length", "why")}, 7, 3)
        # Another connection sees it at once: the row is committed, not just queued.
        other = sqlite3.connect(path)
        assert other.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 2
        other.close()

    store = ResponseStore(path)
    asyncio.run(main(store))
    assert store._reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    with ResponseStore(path) as again:
        got = again.lookup(h)
        assert sorted(got) == [0, 2]  # index 1 never answered: only it would be asked again
        assert got[2].as_choice() == Choice("c", "length", "why")
        assert got[0].prompt_tokens == 7 and got[2].prompt_tokens == 0
        assert again.stored_requests()[0]["samples"] == [0, 2]


def test_many_concurrent_puts_are_batched(tmp_path):
    p = SamplingParams()

    async def main(store):
        await asyncio.gather(*(
            store.put(request_hash("m", [{"role": "user", "content": str(i)}], p), "m",
                      [{"role": "user", "content": str(i)}], p, {0: Choice(str(i))}) for i in range(500)))

    with ResponseStore(tmp_path / "r.sqlite") as store:
        asyncio.run(main(store))
        assert store.count_responses() == 500
        assert store.commits < 500  # one commit per batch, not per row


def test_status_roundtrip(tmp_path):
    with ResponseStore(tmp_path / "r.sqlite") as store:
        store.set_status_sync("g", "c1", "failed", "HTTP 500", "fp")
        s = store.statuses()[("g", "c1")]
        assert (s.status, s.reason, s.fingerprint) == ("failed", "HTTP 500", "fp")


def test_a_store_created_with_the_earlier_keyed_tables_still_works(tmp_path):
    """Stores written before the rowid schema (WITHOUT ROWID tables) resume as before."""
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE requests (request_hash TEXT PRIMARY KEY, model TEXT NOT NULL, messages TEXT NOT NULL,
            params TEXT NOT NULL, created REAL NOT NULL) WITHOUT ROWID;
        CREATE TABLE responses (request_hash TEXT NOT NULL, sample_index INTEGER NOT NULL, text TEXT NOT NULL,
            finish_reason TEXT, reasoning TEXT, prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
            PRIMARY KEY (request_hash, sample_index)) WITHOUT ROWID;
    """)
    p = SamplingParams()
    h = request_hash("m", MSGS, p)
    old.execute("INSERT INTO requests VALUES (?,?,?,?,?)", (h, "m", "[]", "{}", 0.0))
    old.execute("INSERT INTO responses VALUES (?,?,?,?,?,?,?,?)", (h, 0, "old answer", "stop", None, 1, 2, 0.0))
    old.commit()
    old.close()

    async def add(store):
        await store.put(h, "m", MSGS, p, {0: Choice("replaced", "stop"), 1: Choice("new", "stop")})

    with ResponseStore(path) as store:
        assert store.lookup(h)[0].text == "old answer"
        asyncio.run(add(store))
    for preload in (True, False):
        with ResponseStore(path, preload=preload) as again:
            got = again.lookup(h)
            assert {i: s.text for i, s in got.items()} == {0: "replaced", 1: "new"}
            assert again.count_responses() == 2


def test_new_stores_keep_rows_in_rowid_tables(tmp_path):
    with ResponseStore(tmp_path / "r.sqlite") as store:
        sql = dict(store._reader.execute("SELECT name, sql FROM sqlite_master WHERE type='table'").fetchall())
    assert "WITHOUT ROWID" not in sql["requests"] and "WITHOUT ROWID" not in sql["responses"]


def test_an_unchanged_status_is_not_rewritten(tmp_path):
    path = tmp_path / "r.sqlite"

    async def main(store):
        await store.set_status("g", "c1", "done", None, "fp")
        await store.set_status("g", "c2", "failed", "boom", "fp")

    with ResponseStore(path) as store:
        asyncio.run(main(store))
    with ResponseStore(path) as store:
        commits = store.commits
        asyncio.run(main(store))  # a resumed run: same statuses
        assert store.commits == commits
        store.set_status_sync("g", "c1", "failed", "later", "fp")

        async def back(store):
            await store.set_status("g", "c1", "done", None, "fp")  # differs from what is stored now

        asyncio.run(back(store))
        assert store.statuses()[("g", "c1")].status == "done"


def test_derived_outputs_are_rewritten_only_when_their_text_changes(tmp_path):
    from ktools.generate.run import _write_derived

    path = tmp_path / "out" / "gen.jsonl"
    _write_derived(path, '{"q":"é"}\n')
    first = path.stat().st_ino
    _write_derived(path, '{"q":"é"}\n')  # unchanged: left as it is (no new file renamed over it)
    assert path.stat().st_ino == first
    _write_derived(path, '{"q":"è"}\n')  # same length, other text: replaced
    assert path.read_text(encoding="utf-8") == '{"q":"è"}\n' and path.stat().st_ino != first
    assert not list(path.parent.glob(".*.tmp"))
