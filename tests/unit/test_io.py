"""ktools.io: atomic writes, torn-line recovery, clear errors for real corruption, journals."""

from __future__ import annotations

import logging
import os

import pytest

from ktools.io import (
    JsonlError,
    JsonlJournal,
    read_json,
    read_jsonl,
    repair_torn_tail,
    write_atomic,
    write_json,
    write_jsonl,
)


def _leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "out.jsonl"
    write_jsonl(target, [{"a": 1}, {"b": "é"}])
    assert read_jsonl(target) == [{"a": 1}, {"b": "é"}]
    write_jsonl(target, [{"c": 3}])
    assert read_jsonl(target) == [{"c": 3}]
    assert _leftovers(target.parent) == []


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "data.json"
    write_json(target, {"version": 1})

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_json(target, {"version": 2})
    monkeypatch.undo()
    assert read_json(target) == {"version": 1}
    assert _leftovers(tmp_path) == []


def test_unserialisable_record_leaves_old_file(tmp_path):
    target = tmp_path / "rows.jsonl"
    write_jsonl(target, [{"ok": True}])
    with pytest.raises(TypeError):
        write_jsonl(target, [{"ok": True}, {"bad": object()}])
    assert read_jsonl(target) == [{"ok": True}]
    assert _leftovers(tmp_path) == []


def test_interrupted_replace_leaves_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    write_atomic(target, "old")

    def no_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_torn_last_line_is_dropped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "gen.jsonl"
    path.write_bytes(b'{"i": 1}\n{"i": 2}\n{"i": 3, "text": "cut of')
    with caplog.at_level(logging.WARNING):
        assert read_jsonl(path) == [{"i": 1}, {"i": 2}]
    assert "torn last line 3" in caplog.text
    with pytest.raises(JsonlError, match="line 3"):
        read_jsonl(path, drop_torn_tail=False)


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"i": 1}\n{"i": 2}')
    assert read_jsonl(path) == [{"i": 1}, {"i": 2}]


def test_mid_file_corruption_names_file_and_line(tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_bytes(b'{"i": 1}\n{"i": 2,,}\n{"i": 3}\n')
    with pytest.raises(JsonlError) as info:
        read_jsonl(path)
    assert str(path) in str(info.value) and "line 2" in str(info.value)


def test_non_object_record_is_an_error(tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_text('{"i": 1}\n[1, 2]\n')
    with pytest.raises(JsonlError, match="line 2: expected a JSON object, got list"):
        read_jsonl(path)


def test_blank_lines_and_empty_file(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text("")
    assert read_jsonl(path) == []
    path.write_text('\n{"a": 1}\n\n')
    assert read_jsonl(path) == [{"a": 1}]


def test_read_json_error_names_position(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{\n  "a": 1,\n}\n')
    with pytest.raises(JsonlError, match=r"r\.json: not valid JSON at line 3"):
        read_json(path)


def test_journal_repairs_torn_tail_before_appending(tmp_path, caplog):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2, "half')
    with caplog.at_level(logging.WARNING), JsonlJournal(path) as journal:
        journal.append({"n": 3})
        journal.extend([{"n": 4}, {"n": 5}])
    assert "removed torn last line" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert [r["n"] for r in read_jsonl(path)] == [1, 3, 4, 5]
    assert caplog.text == ""  # nothing torn any more


def test_journal_records_are_on_disk_after_each_append(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = JsonlJournal(path, fsync=True)
    journal.append({"k": "v"})
    # another reader sees it before close (what a crash would leave behind)
    assert read_jsonl(path) == [{"k": "v"}]
    journal.close()
    journal.close()  # idempotent


def test_repair_torn_tail_cases(tmp_path):
    path = tmp_path / "t.jsonl"
    assert repair_torn_tail(path) == 0  # missing file
    path.write_bytes(b"")
    assert repair_torn_tail(path) == 0
    path.write_bytes(b'{"a": 1}\n')
    assert repair_torn_tail(path) == 0 and path.read_bytes() == b'{"a": 1}\n'
    path.write_bytes(b'{"no newline at all')
    assert repair_torn_tail(path) == 19 and path.read_bytes() == b""
    long_tail = b'{"a": 1}\n' + b"x" * 10000  # longer than the 4 KiB read-back window
    path.write_bytes(long_tail)
    assert repair_torn_tail(path) == 10000 and path.read_bytes() == b'{"a": 1}\n'
