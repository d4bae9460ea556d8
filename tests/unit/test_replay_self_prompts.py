"""Self-written replay prompts: what is kept of a sampled user turn, and how the component
asks for them only to fill the share the prompts file leaves open."""

from __future__ import annotations

import json

import pytest

from ktools.knowledge import components
from ktools.knowledge.replay import clean_self_prompt, user_turn_prefix, write_self_prompts


@pytest.mark.parametrize("text, kept", [
    ("  Can you suggest a budget for a week in Lisbon?  ", "Can you suggest a budget for a week in Lisbon?"),
    ("Explain tides briefly.\n\nA: the moon", None),          # 3 words before the blank line
    ("Explain how tides work, please.\n\nA: the moon pulls", "Explain how tides work, please."),
    ("Hi there", None),                                        # too short to be a request
    (" ".join(["word"] * 61), None),                           # an essay, not a prompt
    ("What is <|im_start|> assistant doing here?", None),      # template markup
    ("1234 5678 9012 3456 !!!! ####", None),                   # mostly symbols
])
def test_clean_self_prompt(text, kept):
    assert clean_self_prompt(text) == kept


class _Tokenizer:
    """Words are token ids (1-based index in VOCAB); id 0 ends the turn."""
    VOCAB = ["<end>", "what", "is", "the", "capital", "of", "france", "tell", "me", "about", "tides", "please",
             "now", "how", "do", "bees", "make", "honey"]
    eos_token_id = 0
    pad_token_id = 0

    def apply_chat_template(self, messages, tokenize=False):
        return f"<sys>helper</sys><user>{messages[0]['content']}</user>"

    def __call__(self, text, add_special_tokens=False, return_tensors=None):
        import torch

        return {"input_ids": torch.tensor([[1, 2]])}

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(self.VOCAB[i] for i in ids)


class _Model:
    """Replays fixed continuations, so the test controls what is 'sampled'."""
    device = "cpu"

    def __init__(self, continuations):
        self.continuations = list(continuations)
        self.calls = 0

    def generate(self, input_ids, **kwargs):
        import torch

        assert kwargs["do_sample"] is True
        self.calls += 1
        rows = [self.continuations[(self.calls - 1 + k) % len(self.continuations)] for k in range(len(input_ids))]
        width = max(len(r) for r in rows)
        out = [list(input_ids[k].tolist()) + r + [0] * (width - len(r)) for k, r in enumerate(rows)]
        return torch.tensor(out)


def _ids(words):
    return [_Tokenizer.VOCAB.index(w) for w in words.split()]


def test_write_self_prompts_drops_cut_off_duplicate_and_held_out_questions():
    ended = _ids("how do bees make honey") + [0]
    copy_of_general = _ids("what is the capital of france") + [0]
    cut_off = _ids("tell me about tides please now now now")  # the longest, no end of turn: dropped
    other = _ids("tell me about tides please") + [0]
    model = _Model([ended, copy_of_general, cut_off, other, ended])
    prompts = write_self_prompts(model, _Tokenizer(), 5, seed=1, exclude=["What is the capital of France?"])
    texts = [p["prompt"] for p in prompts]
    assert texts == ["how do bees make honey", "tell me about tides please"]   # each once, in order
    assert [p["id"] for p in prompts] == ["self001", "self002"]
    assert model.calls == 2   # 4n = 20 attempts in batches of 16, then it stops with fewer than asked


def test_user_turn_prefix_stops_where_the_user_message_starts():
    assert user_turn_prefix(_Tokenizer()) == "<sys>helper</sys><user>"

    class NoTemplate:
        def apply_chat_template(self, *a, **k):
            raise ValueError("no chat template")

    assert user_turn_prefix(NoTemplate()) is None


def test_the_student_writes_only_what_the_prompt_file_leaves_of_the_share(tmp_path, monkeypatch):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"General prompt number {i}?"}) + "\n"
                               for i in range(4)))
    asked = {}

    def fake_answers(student, ps, cache, *, self_prompts=0, exclude=(), seed=0, progress=False):
        asked.update(n_file=len(ps), self_prompts=self_prompts, exclude=list(exclude))
        own = [{"id": f"self{k + 1:03d}", "prompt": f"own {k}", "answer": "a"} for k in range(self_prompts - 1)]
        return [{**p, "answer": "a"} for p in ps] + own

    monkeypatch.setattr(components, "replay_answers", fake_answers)
    train = {"key_facts_to_qa": [{"question": f"q{i}"} for i in range(80)]}

    def build(self_prompts):
        return components.build_knowledge(
            tmp_path / "none.jsonl", tmp_path / "none.json", train, components=("replay",), corpus_exam=False,
            exam_share=0.1, exam_max_per_source=10, replay_share=0.2, replay_prompts=prompts,
            replay_cache=tmp_path / "cache.json", student="student", seed=1, replay_self_prompts=self_prompts,
            replay_exclude=["held-out question?"])

    # 20 % of 80 other rows is 20 replay rows: 4 from the file, 16 for the student to write.
    result = build(100)
    assert asked == {"n_file": 4, "self_prompts": 16, "exclude": ["held-out question?"]}
    assert len(result.rows["replay"]) == 19
    assert any("15 of 19 prompts written by the student itself (asked for 16)" in n for n in result.notes)
    assert any("fewer than 20% of the mix" in n for n in result.notes)      # one came back short: said so
    # Capped by REPLAY_SELF_PROMPTS; 0 keeps today's behaviour (the file's prompts only).
    build(5)
    assert asked["self_prompts"] == 5
    result = build(0)
    assert asked["self_prompts"] == 0 and len(result.rows["replay"]) == 4
    assert any("REPLAY_SELF_PROMPTS lets the student write the rest" in n for n in result.notes)
