"""Prompt templates as data, with user overrides."""

from __future__ import annotations

import pytest

from ktools.generate.flows import FLOWS, JUDGE_PROMPTS
from ktools.prompts import PromptError, available_prompts, load_prompt, load_prompt_file


def test_every_flow_prompt_exists_and_renders():
    names = {s.prompt for f in FLOWS.values() for s in f.steps} | set(JUDGE_PROMPTS.values())
    assert names <= set(available_prompts())
    for name in names:
        messages = load_prompt(name).render(document="D", summary="S", question="Q?", response="R",
                                            key_fact="F", raw_document="RAW", n_questions=3, n_pairs=2)
        assert messages[-1]["role"] == "user" and messages[-1]["content"].strip()


def test_icl_examples_only_when_present():
    p = load_prompt("summary_questions")
    without = p.render(summary="S", n_questions=3)[-1]["content"]
    with_icl = p.render(summary="S", n_questions=3, icl_document="ICL DOC", icl_query_1="Q one?",
                        use_examples=True)[-1]["content"]
    assert "ICL DOC" not in p.render(summary="S", n_questions=3, icl_document="ICL DOC", icl_query_1="Q one?",
                                     use_examples=False)[-1]["content"]
    assert "Example" not in without
    assert "ICL DOC" in with_icl and "1. Q one?" in with_icl


def test_extra_instructions_and_system_override():
    p = load_prompt("document_qa")
    msgs = p.render(system_override="Be terse.", document="D", n_pairs=2, extra_instructions="Use British spelling.")
    assert msgs[0] == {"role": "system", "content": "Be terse."}
    assert "Use British spelling." in msgs[1]["content"]


def test_override_dir_and_template_file(tmp_path):
    (tmp_path / "document_qa.yaml").write_text("name: document_qa\nuser: 'Custom {{ document }}'\n")
    assert load_prompt("document_qa", tmp_path).render(document="X")[-1]["content"] == "Custom X"
    assert load_prompt("key_facts", tmp_path).name == "key_facts"  # not overridden: built-in
    txt = tmp_path / "custom_template.txt"
    txt.write_text("Make {{ n_pairs }} pairs from: {{ document }}")
    p = load_prompt_file(txt, "document_qa")
    assert p.render(document="X", n_pairs=4)[-1]["content"] == "Make 4 pairs from: X"
    assert p.fingerprint != load_prompt("document_qa").fingerprint


def test_bad_prompt_files_name_the_file(tmp_path):
    (tmp_path / "document_qa.yaml").write_text("name: document_qa\nuser: '{% if %}'\n")
    with pytest.raises(PromptError, match="document_qa.yaml.*Jinja2"):
        load_prompt("document_qa", tmp_path)
    (tmp_path / "key_facts.yaml").write_text("name: key_facts\nsystem: x\n")
    with pytest.raises(PromptError, match="missing field 'user'"):
        load_prompt("key_facts", tmp_path)
    with pytest.raises(PromptError, match="no prompt named"):
        load_prompt("nope")


def test_plain_system_messages_are_rendered_once_and_the_same(tmp_path):
    from ktools.prompts import _render

    for name in available_prompts():
        prompt = load_prompt(name)
        system_t = prompt._compiled[0]
        if system_t is None:
            continue
        assert prompt.render(document="d")[0]["content"] == _render(system_t, {"document": "d"}).strip()
    assert any(load_prompt(name)._static_system for name in available_prompts())
    path = tmp_path / "p.yaml"
    path.write_text("system: |\n  You grade {{ subject }}.\nuser: |\n  {{ document }}\n", encoding="utf-8")
    templated = load_prompt_file(path, "p")
    assert templated._static_system is None  # has a variable: rendered per call
    assert templated.render(subject="maths", document="x")[0]["content"] == "You grade maths."
