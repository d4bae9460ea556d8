"""The embedded student writing replay prompts of its own, then answering them (real model)."""

from __future__ import annotations

import pytest

import ktools.models
from ktools.knowledge.exam import normalise
from ktools.knowledge.replay import general_questions, replay_answers, write_self_prompts
from ktools.models import load_causal_lm, load_tokenizer

pytestmark = pytest.mark.slow


def test_self_written_prompts_are_distinct_held_out_and_seeded(repo_root):
    from ktools.train.threads import choose_torch_threads

    choose_torch_threads()   # as replay_answers does (the default oversubscribes a busy machine)
    tokenizer = load_tokenizer()
    model = load_causal_lm()
    held_out = general_questions(repo_root / "assets" / "general_questions.jsonl")
    assert len(held_out) >= 70
    first = write_self_prompts(model, tokenizer, 4, seed=7, exclude=held_out)
    again = write_self_prompts(model, tokenizer, 4, seed=7, exclude=held_out)
    assert [p["prompt"] for p in first] == [p["prompt"] for p in again]     # the seed decides
    assert len(first) == 4 and len({normalise(p["prompt"]) for p in first}) == 4
    assert not {normalise(p["prompt"]) for p in first} & {normalise(q) for q in held_out}
    assert all(4 <= len(p["prompt"].split()) <= 60 for p in first)


def test_replay_answers_cover_file_and_own_prompts_and_are_cached(tmp_path, monkeypatch):
    cache = tmp_path / "replay_answers.json"
    prompts = [{"id": "r1", "prompt": "What is the capital of France?"}]
    rows = replay_answers("SmolLM2-135M-Instruct", prompts, cache, self_prompts=2, seed=3)
    assert [r["id"] for r in rows][:1] == ["r1"] and {r["id"] for r in rows[1:]} <= {"self001", "self002"}
    assert "Paris" in rows[0]["answer"] and all(r["answer"].strip() for r in rows)

    def no_loading(*args, **kwargs):
        raise AssertionError("model loaded")

    monkeypatch.setattr(ktools.models, "load_causal_lm", no_loading)
    assert replay_answers("SmolLM2-135M-Instruct", prompts, cache, self_prompts=2, seed=3) == rows
    with pytest.raises(AssertionError, match="model loaded"):   # another seed is another set of prompts
        replay_answers("SmolLM2-135M-Instruct", prompts, cache, self_prompts=2, seed=4)
