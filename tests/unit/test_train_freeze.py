"""Frozen embeddings: an optimizer step on a tiny model leaves the embeddings and the head
unchanged, tied or not, and still trains the blocks."""

from __future__ import annotations

import pytest
import torch

from ktools.train.freeze import freeze_embeddings


def _tiny_llama(tie: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tie)
    return LlamaForCausalLM(config)


@pytest.mark.parametrize("tie, names, parameters", [
    (True, ("input embeddings = output head (tied)",), 64 * 32),
    (False, ("input embeddings", "output head"), 2 * 64 * 32),
])
def test_a_training_step_moves_the_blocks_but_not_the_embeddings(tie, names, parameters):
    model = _tiny_llama(tie)
    frozen = freeze_embeddings(model)
    assert frozen.names == names and frozen.parameters == parameters
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, 64, (2, 12))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    after = dict(model.named_parameters())
    assert torch.equal(model.get_input_embeddings().weight, before["model.embed_tokens.weight"])
    assert torch.equal(model.get_output_embeddings().weight,
                       before["lm_head.weight" if not tie else "model.embed_tokens.weight"])
    assert not torch.equal(after["model.layers.0.mlp.up_proj.weight"], before["model.layers.0.mlp.up_proj.weight"])


def test_the_training_config_freezes_only_when_asked(tmp_path):
    from ktools.train.config import TrainConfig

    mix = tmp_path / "mix.jsonl"
    mix.write_text("")
    plain = TrainConfig(model_name="m", mix_path=str(mix))
    assert plain.freeze_embeddings is False
    assert plain.fingerprint() != plain.replace(freeze_embeddings=True).fingerprint()   # not resumed across


def _llama_of(layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2))


def test_frozen_lower_blocks_keep_their_weights_and_get_no_gradient():
    from ktools.train.freeze import freeze_lower_layers

    model = _llama_of(4)
    block = sum(p.numel() for p in model.model.layers[0].parameters())
    frozen = freeze_lower_layers(model, 2)
    assert frozen.names == ("transformer blocks 0-1 of 4",) and frozen.parameters == 2 * block
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, 64, (2, 12))
    model(input_ids=ids, labels=ids).loss.backward()
    # No gradient is even computed below the lowest learning block: that is the time saved.
    assert all(p.grad is None for layer in model.model.layers[:2] for p in layer.parameters())
    optimizer.step()
    after = dict(model.named_parameters())
    for name in ("model.layers.0.mlp.up_proj.weight", "model.layers.1.self_attn.q_proj.weight"):
        assert torch.equal(after[name], before[name]), name
    for name in ("model.layers.2.mlp.up_proj.weight", "model.layers.3.self_attn.q_proj.weight"):
        assert not torch.equal(after[name], before[name]), name


@pytest.mark.parametrize("count", [-1, 4, 9])
def test_freezing_every_block_or_a_negative_count_is_refused_with_the_range(count):
    from ktools.train.freeze import freeze_lower_layers

    with pytest.raises(ValueError, match=r"0\.\.3 for a model of 4 transformer blocks"):
        freeze_lower_layers(_llama_of(4), count)


def test_the_config_refuses_lower_layers_for_lora_and_negative_counts(tmp_path):
    from ktools.train.config import TrainConfig

    mix = tmp_path / "mix.jsonl"
    mix.write_text("")
    plain = TrainConfig(model_name="m", mix_path=str(mix))
    assert plain.freeze_lower_layers == 0
    assert plain.fingerprint() != plain.replace(freeze_lower_layers=10).fingerprint()   # not resumed across
    with pytest.raises(ValueError, match="full fine-tuning"):
        plain.replace(method="lora", freeze_lower_layers=2)
    with pytest.raises(ValueError, match=">= 0"):
        plain.replace(freeze_lower_layers=-1)
