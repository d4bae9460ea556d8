"""Seed building: given ICL fields, teacher-drafted ones (fake OpenAI server), cache, validation."""

from __future__ import annotations

import pytest
import yaml

from ktools.config import load_settings
from ktools.documents.errors import DocumentError, SeedValidationError
from ktools.documents.seed import (
    ICL_FIELDS,
    IclFields,
    fallback_questions,
    parse_outline_reply,
    parse_questions,
    select_excerpt,
    validate_seed,
)
from ktools.documents.step import chunk_step, convert_step, seed_step
from ktools.io import read_json, read_jsonl

DOC = """# Tern Island Ferry Rules

Issued by the Tern Island Council on 2 February 2024.

## 1. Sailings

The first sailing leaves Tern Quay at 06:40 and the last at 21:10. In winter only 6 sailings run per day.

## 2. Fares

An adult single costs 4.20 crowns; children under 12 pay 2.10 crowns. Bicycles travel free before 09:00.

## 3. Weather

Sailings stop when the wind reaches 38 knots, measured at the Gull Point mast by Harbourmaster Anke Verhoef.
"""

GIVEN = {"domain": "island ferry rules", "document_outline": "The Tern Island ferry rules of 2024.",
         "icl_document": "The first sailing leaves Tern Quay at 06:40 and the last at 21:10.",
         "icl_queries": ["When does the first sailing leave?", "When does the last sailing leave?",
                         "From where do sailings leave?"]}


@pytest.fixture(scope="module")
def tok():
    from ktools.models import load_tokenizer

    return load_tokenizer(None)


@pytest.fixture
def chunked(tmp_path, tmp_output, tok):
    src = tmp_path / "tern.md"
    src.write_text(DOC * 6, encoding="utf-8")
    settings = load_settings()
    convert_step([src], settings, progress=False)
    chunk_step(settings, max_tokens=200, overlap_tokens=20, min_tokens=40, tokenizer=tok)
    return src, settings


def test_given_from_parameters(chunked):
    _, settings = chunked
    result = seed_step(settings, mode="given", given=GIVEN)
    rows = read_jsonl(result.path)
    assert len(rows) > 1 and rows == result.rows
    for row in rows:
        assert row["icl_query_1"] == "When does the first sailing leave?" and row["domain"] == "island ferry rules"
        assert {"document", "source", "chunk_id", "start", "end", "n_tokens", "heading_path"} <= set(row)
    assert set(result.icl["tern.md"].origin.values()) == {"given"}


def test_given_from_yaml_beside_the_source_and_from_a_mapping_file(chunked, tmp_path):
    src, settings = chunked
    (tmp_path / "tern.icl.yaml").write_text(yaml.safe_dump(GIVEN), encoding="utf-8")
    assert seed_step(settings, mode="given").rows[0]["domain"] == "island ferry rules"
    (tmp_path / "tern.icl.yaml").unlink()
    mapping = tmp_path / "icl.yaml"
    mapping.write_text(yaml.safe_dump({"tern": {**GIVEN, "domain": "ferries"}}), encoding="utf-8")
    assert seed_step(settings, mode="given", icl_file=mapping).rows[0]["domain"] == "ferries"


def test_given_mode_with_a_missing_field_names_it(chunked):
    _, settings = chunked
    with pytest.raises(DocumentError, match=r"tern.md.*field 'icl_document'.*ICL mode 'teacher'"):
        seed_step(settings, mode="given", given={k: v for k, v in GIVEN.items() if k != "icl_document"})


def test_bad_icl_yaml_names_the_line(tmp_path):
    from ktools.documents.seed import load_icl_file

    bad = tmp_path / "bad.yaml"
    bad.write_text("tern:\n  domain: x\n   outline: [unclosed\n", encoding="utf-8")
    with pytest.raises(DocumentError, match=r"bad.yaml, line \d+: not valid YAML"):
        load_icl_file(bad)
    bad.write_text(yaml.safe_dump({"tern": {"domian": "typo"}}), encoding="utf-8")
    with pytest.raises(DocumentError, match=r"field 'domian'.*unknown"):
        load_icl_file(bad)


def _responder(body, index):
    prompt = body["messages"][-1]["content"]
    if "Domain:" in prompt:
        return "Domain: island ferry services\nOutline: The rules of the Tern Island ferry: sailings, fares and weather."
    return "1. When does the first sailing leave Tern Quay?\n2. How much does an adult single cost?\n" \
           "3. At what wind speed do sailings stop?"


def _teacher(server):
    from ktools.llm.client import TeacherClient

    return TeacherClient(server.base_url, "fake-teacher", max_retries=0)


def test_teacher_mode_drafts_caches_and_does_not_re_ask(chunked, tmp_output):
    fake = pytest.importorskip("ktools.testing.fake_openai")
    _, settings = chunked
    with fake.FakeOpenAIServer(responder=_responder) as server:
        client = _teacher(server)
        result = seed_step(settings, mode="teacher", client=client, progress=False)
        asked = len(server.requests)
        again = seed_step(settings, mode="teacher", client=client, progress=False)
        client.close()
    assert asked == 2 and len(server.requests) == asked  # the re-run asked nothing
    icl = result.icl["tern.md"]
    assert icl.values["domain"] == "island ferry services"
    assert icl.values["icl_query_2"] == "How much does an adult single cost?"
    assert icl.origin == {"domain": "drafted", "document_outline": "drafted", "icl_document": "excerpt",
                          "icl_query_1": "drafted", "icl_query_2": "drafted", "icl_query_3": "drafted"}
    # the excerpt is a verbatim piece of the document, not written by the model
    assert icl.values["icl_document"] in (DOC * 6)
    assert again.rows == result.rows
    drafts = read_json(tmp_output / "step_02" / "icl_drafts.json")
    assert list(drafts) == [icl.sha256] and drafts[icl.sha256]["values"]["domain"] == "island ferry services"


def test_teacher_garbage_falls_back_and_flags_it(chunked):
    fake = pytest.importorskip("ktools.testing.fake_openai")
    _, settings = chunked
    with fake.FakeOpenAIServer(responder=lambda body, i: "I am a small model and I like boats") as server:
        client = _teacher(server)
        result = seed_step(settings, mode="teacher", client=client, progress=False, refresh=True)
        client.close()
    icl = result.icl["tern.md"]
    assert set(icl.origin.values()) == {"fallback", "excerpt"}
    assert icl.values["document_outline"].startswith("Tern Island Ferry Rules — sections: 1. Sailings")
    assert all(icl.values[q].endswith("?") for q in ("icl_query_1", "icl_query_2", "icl_query_3"))
    assert icl.notes


def test_given_values_win_over_the_teacher(chunked):
    fake = pytest.importorskip("ktools.testing.fake_openai")
    _, settings = chunked
    with fake.FakeOpenAIServer(responder=_responder) as server:
        client = _teacher(server)
        result = seed_step(settings, mode="teacher", client=client, progress=False, refresh=True,
                           given={"domain": "my domain"})
        client.close()
    assert result.icl["tern.md"].values["domain"] == "my domain"
    assert result.icl["tern.md"].origin["domain"] == "given"


def test_excerpt_is_deterministic_and_fact_dense(tok):
    filler = "This text explains the purpose of the rules in general terms only. " * 60 + "\n\n"
    doc = "# Rules\n\n## 0. Foreword\n\n" + filler + DOC.split("\n", 1)[1] + "\n## 4. Appendix\n\n" + filler
    first = select_excerpt(doc, tok)
    assert first == select_excerpt(doc, tok)
    assert "06:40" in first[0] and "foreword" not in first[0].lower()


def test_parsers_are_lenient():
    assert parse_outline_reply("**Domain:** ferries\n**Outline:** The rules of a ferry line.") == \
        ("ferries", "The rules of a ferry line.")
    assert parse_outline_reply("no idea") == (None, None)
    assert parse_questions("Sure! Here are questions:\n1) What time is it? Yes.\nQ2: Who rules?\n- What time is it?") \
        == ["What time is it?", "Who rules?"]
    questions = fallback_questions("The first sailing leaves Tern Quay at 06:40 and the last at 21:10 each day.")
    assert len(questions) == 3 and all(q.endswith("?") for q in questions)


def test_validation_names_record_and_field():
    good = {"document": "text", "source": "a.md", "chunk_id": "a-0000", "start": 0, "end": 4, "n_tokens": 1,
            "heading_path": [], **{f: "x?" for f in ICL_FIELDS}}
    rows = [good, {**good, "chunk_id": "a-0001", "domain": " "}, {**good, "chunk_id": "a-0001"},
            {**good, "chunk_id": "a-0003", "icl_query_2": "not a question"}]
    problems = validate_seed(rows)
    text = [str(p) for p in problems]
    assert "record 2 (chunk_id 'a-0001'), field 'domain': empty" in text
    assert "record 3 (chunk_id 'a-0001'), field 'chunk_id': duplicate of record 2" in text
    assert any("record 4" in t and "icl_query_2" in t and "question" in t for t in text)
    icl = IclFields(values={}, origin={"icl_document": "excerpt", "icl_query_1": "given"})
    assert any("must come with the excerpt" in str(p) for p in validate_seed([good], {"a.md": icl}))
    with pytest.raises(SeedValidationError, match="record 2"):
        raise SeedValidationError(problems)


def test_a_failing_teacher_is_not_cached_and_the_next_run_asks_again(chunked, tmp_output):
    fake = pytest.importorskip("ktools.testing.fake_openai")
    _, settings = chunked
    with fake.FakeOpenAIServer(responder=_responder, faults=["401", "401"]) as server:
        client = _teacher(server)
        down = seed_step(settings, mode="teacher", client=client, progress=False)
        assert down.teacher_failures == ["tern.md"]
        assert "drafted" not in down.icl["tern.md"].origin.values()
        drafts = tmp_output / "step_02" / "icl_drafts.json"
        assert not drafts.exists() or read_json(drafts) == {}
        # The teacher works again: the documents are drafted now, not served from a cache of fallbacks.
        up = seed_step(settings, mode="teacher", client=client, progress=False)
        client.close()
    assert not up.teacher_failures and up.icl["tern.md"].values["domain"] == "island ferry services"
    assert len(server.requests) == 4


def test_ktools_seed_with_the_teacher_down_exits_1_with_one_line(chunked, monkeypatch, capsys):
    fake = pytest.importorskip("ktools.testing.fake_openai")
    from ktools.cli import main

    with fake.FakeOpenAIServer(responder=_responder, faults=["401"] * 10) as server:
        monkeypatch.setenv("TEACHER_PROVIDER", "vllm")
        monkeypatch.setenv("TEACHER_MODEL_BASE_URL", server.base_url)
        monkeypatch.setenv("TEACHER_MODEL_NAME", "fake-teacher")
        monkeypatch.setenv("TEACHER_MAX_RETRIES", "0")
        assert main(["seed", "--icl-mode", "teacher"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ktools seed:")]
    assert len(err) == 1 and "teacher failed" in err[0] and "tern.md" in err[0]
