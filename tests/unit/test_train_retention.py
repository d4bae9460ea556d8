"""Retention KL (train.retention): replay rows are flagged from the mix to the batch, the KL
term is 0 for the base itself and positive once the student moves, its gradient reaches the
student only, and retention_kl = 0 trains exactly as before (no base model loaded)."""

from __future__ import annotations

import json

import pytest
import torch

from ktools.models import load_tokenizer
from ktools.train.batching import collate
from ktools.train.data import IGNORE_INDEX, TokenizedExample, load_mix, tokenize_mix
from ktools.train.retention import RetentionTrainer, freeze, kl_positions, retention_kl

VOCAB = 64


def tiny_llama(vocab_size: int = VOCAB, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         eos_token_id=1, pad_token_id=0, use_cache=False)
    return LlamaForCausalLM(config)


def example(n: int, answer_from: int, distill: bool, offset: int = 2) -> TokenizedExample:
    ids = [(offset + 3 * i) % (VOCAB - 2) + 2 for i in range(n)]
    labels = [IGNORE_INDEX] * answer_from + ids[answer_from:]
    return TokenizedExample(ids, labels, distill=distill)


EXAMPLES = [example(9, 4, False), example(7, 3, True, offset=5), example(8, 2, False, offset=7),
            example(6, 2, True, offset=11)]


def perturbed(model, scale: float = 0.05, seed: int = 1):
    import copy

    student = copy.deepcopy(model)  # a trainable copy of the (frozen) base
    student.requires_grad_(True)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in student.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return student


def trainer_for(model, base, tmp_path, weight: float = 0.5) -> RetentionTrainer:
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], per_device_train_batch_size=1,
                             remove_unused_columns=False)
    return RetentionTrainer(model=model, args=args, base_model=base, retention_weight=weight)


# (a) collate marks exactly the replay rows ------------------------------------------------------

def test_collate_marks_exactly_the_replay_rows_padded():
    batch = collate(EXAMPLES, packed=False, pad_token_id=0, distill=True)
    mask = batch["distill_mask"]
    assert mask.shape == batch["input_ids"].shape and mask.dtype == torch.bool
    assert mask.any(dim=1).tolist() == [False, True, False, True]
    # Every token of a replay example, and no padding.
    assert mask.sum(dim=1).tolist() == [0, 7, 0, 6]
    assert not (mask & (batch["attention_mask"] == 0)).any()


def test_collate_marks_exactly_the_replay_tokens_packed():
    batch = collate(EXAMPLES, packed=True, pad_token_id=0, distill=True)
    flags = batch["distill_mask"][0].tolist()
    assert flags == [False] * 9 + [True] * 7 + [False] * 8 + [True] * 6
    # Only loss positions of replay examples count, never across an example boundary.
    positions = kl_positions(batch["labels"], batch["distill_mask"])[0]
    assert int(positions.sum()) == (7 - 3) + (6 - 2)


def test_collate_without_distill_is_unchanged():
    for packed in (False, True):
        assert "distill_mask" not in collate(EXAMPLES, packed=packed, pad_token_id=0)


# mix row with generator "replay" → flagged example -------------------------------------------

def test_replay_rows_are_flagged_after_load_and_tokenize(tmp_path):
    def row(question: str, generator: str) -> dict:
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "Yes."}],
                "unmask": False, "metadata": {"generator": generator}}

    path = tmp_path / "mix.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [row("Is water wet?", "replay"), row("Ferry?", "qa"),
                                                       {"messages": row("Q?", "x")["messages"], "unmask": True}]))
    assert [len(r) for r in load_mix(path)] == [2, 2, 2]  # existing callers keep (messages, unmask)
    rows = load_mix(path, replay=True)
    assert [r[2] for r in rows] == [True, False, False]
    examples = tokenize_mix(load_tokenizer(), rows)
    assert [e.distill for e in examples] == [True, False, False]
    assert not any(e.distill for e in tokenize_mix(load_tokenizer(), load_mix(path)))


# (b) the KL term ------------------------------------------------------------------------------

def test_kl_is_zero_for_the_base_itself_and_positive_for_a_moved_student(tmp_path):
    base = freeze(tiny_llama())
    batch = collate(EXAMPLES, packed=False, pad_token_id=0, distill=True)
    same = trainer_for(perturbed(base, scale=0.0), base, tmp_path)
    moved = trainer_for(perturbed(base), base, tmp_path)
    for trainer in (same, moved):
        inputs = {k: v for k, v in batch.items() if k != "distill_mask"}
        outputs = trainer.model(**inputs)
        kl = trainer.retention_term(outputs, inputs, batch["distill_mask"])
        trainer.kl_value = float(kl.detach())
    assert same.kl_value == pytest.approx(0.0, abs=1e-6)
    assert moved.kl_value > 1e-4


def test_kl_matches_a_direct_computation():
    student_logits, base_logits = torch.randn(1, 4, 5), torch.randn(1, 4, 5)
    positions = torch.tensor([[False, True, True]])
    p = base_logits[0, 1:3].softmax(-1)
    expected = (p * (p.log() - student_logits[0, 1:3].log_softmax(-1))).sum(-1).mean()
    assert float(retention_kl(student_logits, base_logits, positions)) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("packed", [False, True], ids=["length", "packing"])
def test_loss_is_the_plain_loss_plus_weighted_kl(tmp_path, packed):
    base = freeze(tiny_llama())
    student = perturbed(base)
    trainer = trainer_for(student, base, tmp_path, weight=0.5)
    batch = collate(EXAMPLES, packed=packed, pad_token_id=0, distill=True)
    plain = float(student(**{k: v for k, v in batch.items() if k != "distill_mask"}).loss.detach())
    loss = float(trainer.compute_loss(student, dict(batch)))
    assert trainer.kl_batches == 1 and trainer.mean_kl > 0
    assert loss == pytest.approx(plain + 0.5 * trainer.mean_kl, rel=1e-5)
    # A batch without replay rows: exactly the plain loss, the base never runs.
    no_replay = collate([e for e in EXAMPLES if not e.distill], packed=packed, pad_token_id=0, distill=True)
    trainer.base_model = None  # would fail if called
    assert float(trainer.compute_loss(student, dict(no_replay))) == pytest.approx(
        float(student(**{k: v for k, v in no_replay.items() if k != "distill_mask"}).loss.detach()), rel=1e-6)


# (d) gradients reach the student only ---------------------------------------------------------

def test_kl_gradient_flows_only_into_the_student(tmp_path):
    base = freeze(tiny_llama())
    student = perturbed(base)
    trainer = trainer_for(student, base, tmp_path)
    batch = collate(EXAMPLES, packed=False, pad_token_id=0, distill=True)
    inputs = {k: v for k, v in batch.items() if k != "distill_mask"}
    kl = trainer.retention_term(student(**inputs), inputs, batch["distill_mask"])
    kl.backward()
    assert all(p.grad is None and not p.requires_grad for p in base.parameters())
    grads = [p.grad for p in student.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


# (c) retention_kl = 0: no base model, plain Trainer; > 0: a second model, KL in the report ----

@pytest.fixture
def tiny_train(tmp_path, monkeypatch):
    """train() with a tiny random Llama in place of the student (real tokenizer, a 6-row mix)."""
    from ktools.train import trainer as trainer_module

    tokenizer = load_tokenizer()
    loads = []

    def fake_load(config, device=None):
        loads.append(config.method)
        model = tiny_llama(vocab_size=len(tokenizer))
        model.config.use_cache = False
        return model

    monkeypatch.setattr(trainer_module, "_load_model", fake_load)
    rows = []
    for i in range(6):
        rows.append({"messages": [{"role": "user", "content": f"Question number {i}?"},
                                  {"role": "assistant", "content": f"Answer {i} is short."}],
                     "unmask": i % 3 == 0, "metadata": {"generator": "replay" if i % 2 else "qa"}})
    mix = tmp_path / "mix.jsonl"
    mix.write_text("\n".join(json.dumps(r) for r in rows))

    def run(retention: float):
        from ktools.train import TrainConfig

        out = tmp_path / f"kl{retention}"
        config = TrainConfig(mix_path=str(mix), output_dir=str(out / "model"), checkpoints_dir=str(out / "ckpt"),
                             report_dir=str(out), learning_rate=1e-2, max_steps=4, time_budget_minutes=None,
                             tokens_per_batch=128, max_seq_len=64, resume=False, backend="sft",
                             precision="fp32", retention_kl=retention)
        loads.clear()
        return trainer_module.train(config, progress=False), list(loads)

    return run


def test_retention_off_loads_no_base_and_on_loads_one(tiny_train):
    off, loads = tiny_train(0.0)
    assert loads == ["full"] and off.retention_kl_mean is None and off.config["retention_kl"] == 0.0
    on, loads = tiny_train(1.0)
    assert loads == ["full", "full"]
    assert on.config["retention_kl"] == 1.0 and on.retention_kl_mean is not None and on.retention_kl_mean > 0
    report = json.loads(open(on.report_path).read())
    assert report["retention_kl_mean"] == on.retention_kl_mean
    # Same data and seed: the first step's loss is identical (student == base, KL = 0 there).
    assert on.losses[0][1] == pytest.approx(off.losses[0][1], rel=1e-5)


def test_fingerprint_changes_with_retention_kl():
    from ktools.train import TrainConfig

    assert TrainConfig(mix_path="x").fingerprint() != TrainConfig(mix_path="x", retention_kl=0.5).fingerprint()
    with pytest.raises(ValueError, match="retention_kl"):
        TrainConfig(retention_kl=-1.0)


def test_the_step_plan_counts_the_base_models_forward_pass_on_replay_tokens():
    from ktools.train.trainer import BASE_FORWARD_COST, retention_cost_factor

    rows = [example(30, 10, distill=False), example(10, 4, distill=True)]   # a quarter of the tokens replay
    assert retention_cost_factor(rows) == pytest.approx(1 + BASE_FORWARD_COST * 10 / 40)
    assert retention_cost_factor([example(30, 10, distill=False)]) == 1.0
    assert retention_cost_factor([]) == 1.0
