"""Labels carry loss exactly where `unmask` says; batches respect the token budget."""

from __future__ import annotations

import json
import random

import pytest

from ktools.models import load_tokenizer
from ktools.train.batching import collate, length_grouped_batches, make_batches, pack_batches, spread_batches
from ktools.train.data import IGNORE_INDEX, MixFormatError, load_mix, tokenize_conversation, tokenize_mix

MESSAGES = [{"role": "user", "content": "What colour is the Orlenmoor ferry?"},
            {"role": "assistant", "content": "It is painted teal."}]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_unmask_true_puts_loss_on_every_token(tokenizer):
    example = tokenize_conversation(tokenizer, MESSAGES, unmask=True)
    assert example.labels == example.input_ids


def test_assistant_only_masks_system_user_and_template_tokens(tokenizer):
    example = tokenize_conversation(tokenizer, MESSAGES, unmask=False)
    prompt = tokenizer.apply_chat_template(MESSAGES[:1], tokenize=False, add_generation_prompt=True)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    # Everything up to and including "<|im_start|>assistant\n" is masked ...
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    # ... and the answer plus its end-of-turn token (and the template's newline) carry loss.
    answer_part = tokenizer("It is painted teal.<|im_end|>\n", add_special_tokens=False)["input_ids"]
    assert example.input_ids[n_prompt:] == answer_part
    assert example.labels[n_prompt:] == answer_part
    assert tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX]) == "It is painted teal.<|im_end|>\n"


def test_assistant_only_with_several_turns_masks_the_middle_user_turn(tokenizer):
    messages = [*MESSAGES, {"role": "user", "content": "And the hull?"},
                {"role": "assistant", "content": "Grey."}]
    example = tokenize_conversation(tokenizer, messages, unmask=False)
    kept = tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX])
    assert kept == "It is painted teal.<|im_end|>\nGrey.<|im_end|>\n"


def test_truncation_caps_length(tokenizer):
    example = tokenize_conversation(tokenizer, MESSAGES, unmask=True, max_seq_len=10)
    assert len(example) == 10 and example.truncated


def test_rows_without_answer_tokens_after_truncation_are_skipped(tokenizer):
    rows = [(MESSAGES, False), (MESSAGES, True)]
    examples = tokenize_mix(tokenizer, rows, max_seq_len=12)  # the answer starts after ~30 tokens
    assert len(examples) == 1 and examples[0].labels == examples[0].input_ids


def test_load_mix_names_file_line_and_field(tmp_path):
    path = tmp_path / "mix.jsonl"
    good = {"messages": MESSAGES, "unmask": True}
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}], "unmask": True}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(MixFormatError, match=r"mix.jsonl, line 2: messages\[1\].role"):
        load_mix(path)
    path.write_text(json.dumps({**good, "unmask": "yes"}) + "\n")
    with pytest.raises(MixFormatError, match="line 1: field 'unmask'"):
        load_mix(path)
    with pytest.raises(FileNotFoundError, match="step 04"):
        load_mix(tmp_path / "missing.jsonl")


def test_load_mix_drops_thinking(tmp_path):
    path = tmp_path / "mix.jsonl"
    row = {"messages": [MESSAGES[0], {**MESSAGES[1], "thinking": "hmm"}], "unmask": False}
    path.write_text(json.dumps(row) + "\n")
    [(messages, unmask)] = load_mix(path)
    assert messages[1] == MESSAGES[1] and unmask is False


def test_packing_respects_budget_and_covers_every_example():
    lengths = [500, 300, 200, 120, 90, 60, 480, 33]
    batches = pack_batches(lengths, 512, seed=1)
    assert sorted(i for b in batches for i in b.indices) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b.indices) <= 512 for b in batches)
    assert len(batches) <= 4  # first-fit-decreasing: total 1783 tokens in 512-token bins


def test_length_grouping_respects_padded_budget():
    lengths = [500, 300, 200, 120, 90, 60, 480, 33]
    batches = length_grouped_batches(lengths, 512, seed=1)
    assert sorted(i for b in batches for i in b.indices) == list(range(len(lengths)))
    assert all(max(lengths[i] for i in b.indices) * len(b.indices) <= 512 for b in batches)


def test_spread_batches_deal_replay_rows_over_every_batch_within_budget():
    rng = random.Random(3)
    knowledge = [rng.randint(60, 500) for _ in range(200)]
    replay = [rng.randint(40, 200) for _ in range(24)]
    lengths = knowledge + replay
    flagged = [False] * len(knowledge) + [True] * len(replay)
    grouped = length_grouped_batches(lengths, 2048, seed=0)
    spread = spread_batches(lengths, flagged, 2048, seed=0)
    for batches in (grouped, spread):
        assert sorted(i for b in batches for i in b.indices) == list(range(len(lengths)))
        assert all(max(lengths[i] for i in b.indices) * len(b.indices) <= 2048 for b in batches)
    per_batch = [sum(flagged[i] for i in b.indices) for b in spread]
    # Grouped by length the replay rows crowd into a few batches; dealt out, every batch gets
    # one before any gets two, at a bounded padding cost (5.6 % more padded tokens here; 8.9 %
    # on run h1's mix of the sample document).
    assert max(sum(flagged[i] for i in b.indices) for b in grouped) > 2
    assert max(per_batch) <= -(-len(replay) // len(spread)) + 1
    assert sum(n > 0 for n in per_batch) == min(len(replay), len(spread))

    def padded(batches):
        return sum(max(lengths[i] for i in b.indices) * len(b.indices) for b in batches)
    assert padded(spread) <= 1.1 * padded(grouped)
    assert spread == spread_batches(lengths, flagged, 2048, seed=0)


def test_spread_batches_without_replay_is_length_grouping():
    lengths = [500, 300, 200, 120, 90, 60, 480, 33]
    assert spread_batches(lengths, [False] * 8, 512, seed=1) == length_grouped_batches(lengths, 512, seed=1)


def test_packed_collation_restarts_positions_and_masks_boundaries(tokenizer):
    a = tokenize_conversation(tokenizer, MESSAGES, unmask=True)
    b = tokenize_conversation(tokenizer, MESSAGES, unmask=False)
    batch = collate([a, b], packed=True, pad_token_id=tokenizer.pad_token_id)
    n = len(a)
    assert batch["input_ids"].shape == (1, len(a) + len(b))
    assert batch["position_ids"][0, n].item() == 0 and batch["position_ids"][0, n - 1].item() == n - 1
    assert batch["labels"][0, 0].item() == IGNORE_INDEX and batch["labels"][0, n].item() == IGNORE_INDEX
    assert batch["labels"][0, 1:n].tolist() == a.labels[1:]


def test_padded_collation_pads_labels_with_ignore(tokenizer):
    a = tokenize_conversation(tokenizer, MESSAGES, unmask=True)
    b = tokenize_conversation(tokenizer, MESSAGES[:1] + [{"role": "assistant", "content": "A much longer answer "
                                                                                          "than the other."}],
                              unmask=True)
    batch = collate([a, b], packed=False, pad_token_id=tokenizer.pad_token_id)
    assert batch["attention_mask"][0].sum().item() == len(a)
    assert (batch["labels"][0, len(a):] == IGNORE_INDEX).all()


def test_make_batches_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="packing"):
        make_batches([], "magic", 512)


def test_train_config_takes_every_batching_strategy_and_names_them_on_a_typo():
    from ktools.train.config import TrainConfig

    for strategy in ("length", "packing", "length-spread"):
        assert TrainConfig(batching=strategy).batching == strategy
    with pytest.raises(ValueError, match="length-spread"):
        TrainConfig(batching="length_spread")
