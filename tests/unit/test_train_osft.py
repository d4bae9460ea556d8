"""The training_hub OSFT backend: how TrainConfig maps to training_hub.osft()'s arguments,
and the errors where training_hub or a GPU is missing (the call itself needs a GPU)."""

from __future__ import annotations

import sys
import types

import pytest

from ktools.train import osft, trainer
from ktools.train.config import TrainConfig


@pytest.fixture
def config(tmp_path):
    return TrainConfig(mix_path=str(tmp_path / "mix.jsonl"), output_dir=str(tmp_path / "model"), max_seq_len=1024,
                       epochs=2.5, seed=7)


def test_arguments_follow_the_config_and_training_hubs_defaults(config, tmp_path):
    args = osft.osft_arguments(config, "/models/student", n_gpus=4)
    assert args["model_path"] == "/models/student" and args["data_path"] == str(tmp_path / "mix.jsonl")
    assert args["ckpt_output_dir"] == str(tmp_path / "model")
    assert (args["max_seq_len"], args["seed"], args["num_epochs"], args["nproc_per_node"]) == (1024, 7, 3, 4)
    assert args["learning_rate"] == 5e-6 and args["unfreeze_rank_ratio"] == 0.25  # the example's values
    assert osft.osft_arguments(config.replace(learning_rate=1e-5), "m")["learning_rate"] == 1e-5
    assert osft.osft_arguments(config, "m", n_gpus=0)["nproc_per_node"] == 1
    assert osft.osft_arguments(config, "m", effective_batch_size=32)["effective_batch_size"] == 32


def test_missing_training_hub_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "training_hub", None)  # makes `import training_hub` fail
    with pytest.raises(RuntimeError, match="pip install training-hub.*backend='sft'"):
        osft.import_training_hub()


def test_backend_osft_without_package_or_gpu_says_what_is_missing(monkeypatch):
    monkeypatch.setattr(trainer, "detect_backends", lambda: {"sft": True, "osft": False,
                                                             "training_hub_installed": False, "gpu": False})
    with pytest.raises(RuntimeError, match=r"installed: False, GPU: False.*backend='sft'"):
        trainer.choose_backend("osft")
    assert trainer.choose_backend("auto") == "sft"


def test_train_osft_calls_training_hub_with_the_mapped_arguments(config, monkeypatch):
    calls = []
    fake = types.ModuleType("training_hub")
    fake.osft = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, "training_hub", fake)
    monkeypatch.setattr("ktools.models.resolve_model_path", lambda name: "/resolved/" + name)
    result = osft.train_osft(config, n_gpus=2)
    assert calls == [osft.osft_arguments(config, "/resolved/" + config.model_name, n_gpus=2)]
    assert result.backend == "osft" and result.model_dir == config.output_dir and result.epochs_done == 3.0
