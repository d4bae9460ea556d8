"""Multi-GPU launch: strategy choice, the torchrun command line, the workers' environment,
Trainer arguments, and that 0-1 GPU trains in this process (GPU counts are injected)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ktools.train import launch
from ktools.train.callbacks import TimeLimitCallback
from ktools.train.config import TrainConfig
from ktools.train.distributed import DistContext, trainer_arguments
from ktools.train.hardware import count_parameters
from ktools.train.launch import (
    choose_strategy,
    plan_launch,
    torchrun_command,
    training_memory_bytes,
    worker_env,
)

GiB = 2**30


@pytest.fixture
def config(tmp_path):
    return TrainConfig(mix_path=str(tmp_path / "mix.jsonl"), checkpoints_dir=str(tmp_path / "ckpt"),
                       report_dir=str(tmp_path / "report"), output_dir=str(tmp_path / "model"))


def test_launch_config_is_not_among_the_checkpoints(config, tmp_path):
    # rank 0 clears the checkpoint folder when a new run starts
    assert launch.launch_config_path(config) == tmp_path / "report" / "launch_config.json"
    assert launch.launch_config_path(config.replace(report_dir="")) == tmp_path / "launch_config.json"


@pytest.mark.parametrize("n_gpus", [0, 1])
@pytest.mark.parametrize("requested", ["auto", "ddp", "fsdp"])
def test_zero_or_one_gpu_trains_in_this_process(config, n_gpus, requested):
    plan = plan_launch(config, requested, n_gpus=n_gpus, gpu_bytes=80 * GiB, n_params=10**9)
    assert plan.in_process and plan.strategy == "single" and plan.nproc == 1
    assert plan.command == () and not plan.env


@pytest.mark.parametrize("n_gpus", [2, 8])
def test_several_gpus_launch_one_torchrun_worker_each(config, n_gpus, tmp_path):
    plan = plan_launch(config, "auto", n_gpus=n_gpus, gpu_bytes=80 * GiB, n_params=135_000_000, environ={})
    assert (plan.strategy, plan.nproc) == ("ddp", n_gpus)
    command = list(plan.command)
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert command[command.index("--nproc_per_node") + 1] == str(n_gpus)
    assert "--standalone" in command and "--master_port" not in command
    worker = command[command.index("-m", 3):]
    assert worker == ["-m", "ktools.train.worker", "--config", str(tmp_path / "report" / "launch_config.json"),
                      "--strategy", "ddp"]
    assert plan.env["KTOOLS_TRAIN_STRATEGY"] == "ddp" and plan.env["PYTHONUNBUFFERED"] == "1"


def test_a_fixed_master_port_replaces_the_standalone_rendezvous(tmp_path):
    command = torchrun_command(4, tmp_path / "c.json", "fsdp", python="python3", master_port=29511)
    assert "--standalone" not in command
    assert command[command.index("--master_port") + 1] == "29511"
    assert command[command.index("--master_addr") + 1] == "127.0.0.1"
    assert command[-2:] == ["--strategy", "fsdp"]


def test_auto_strategy_shards_a_model_that_outgrows_one_gpu(config):
    # 8B parameters x 16 bytes (weights, grads, Adam) = 128 GB > 80% of 80 GiB: fsdp.
    big = plan_launch(config, "auto", n_gpus=8, gpu_bytes=80 * GiB, n_params=8 * 10**9, environ={})
    assert big.strategy == "fsdp" and big.estimated_bytes == 128 * 10**9 and "fsdp" in big.reason
    # 3B: 48 GB < 64 GiB usable: ddp.
    assert plan_launch(config, "auto", n_gpus=8, gpu_bytes=80 * GiB, n_params=3 * 10**9, environ={}).strategy == "ddp"
    # LoRA trains only adapters: 8B x 4.8 bytes = 38 GB fits.
    lora = config.replace(method="lora")
    assert plan_launch(lora, "auto", n_gpus=2, gpu_bytes=80 * GiB, n_params=8 * 10**9, environ={}).strategy == "ddp"
    # An explicit choice is kept.
    assert plan_launch(config, "fsdp", n_gpus=2, gpu_bytes=80 * GiB, n_params=10**6, environ={}).strategy == "fsdp"


def test_unknown_model_size_or_gpu_memory_means_ddp():
    assert choose_strategy("auto", 4, None, 80 * GiB)[0] == "ddp"
    assert choose_strategy("auto", 4, 10**12, None)[0] == "ddp"
    with pytest.raises(ValueError, match="strategy must be one of"):
        choose_strategy("deepspeed", 4, None, None)


def test_fsdp_with_lora_is_refused_with_a_way_out(config):
    with pytest.raises(ValueError, match="strategy='ddp' or method='full'"):
        plan_launch(config.replace(method="lora"), "fsdp", n_gpus=2, environ={})


def test_training_memory_estimate():
    assert training_memory_bytes(1000, "full") == 16000
    assert training_memory_bytes(1000, "lora") == 4800


def test_worker_env_shares_the_cores_and_keeps_the_callers_settings():
    base = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin"}
    env = worker_env(4, "ddp", base, cpu_count=16)
    assert env["OMP_NUM_THREADS"] == "4" and env["HF_HUB_OFFLINE"] == "1" and env["PATH"] == "/usr/bin"
    assert env["TOKENIZERS_PARALLELISM"] == "false" and env["KTOOLS_TRAIN_STRATEGY"] == "ddp"
    assert "OMP_NUM_THREADS" not in base  # the caller's mapping is not changed
    assert worker_env(8, "ddp", {"OMP_NUM_THREADS": "2"}, cpu_count=4)["OMP_NUM_THREADS"] == "2"
    assert worker_env(8, "ddp", {}, cpu_count=4)["OMP_NUM_THREADS"] == "1"


def test_trainer_arguments_are_transformers_arguments():
    from transformers import TrainingArguments

    assert trainer_arguments("single", cuda=False) == {}
    ddp = trainer_arguments("ddp", cuda=False)
    assert ddp == {"ddp_backend": "gloo", "ddp_find_unused_parameters": False}
    assert trainer_arguments("ddp", cuda=True)["ddp_backend"] == "nccl"
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    assert set(ddp) <= names  # constructing them needs a process group: the torchrun test does

    fsdp = trainer_arguments("fsdp", cuda=True, layer_classes=["LlamaDecoderLayer"])
    assert fsdp["fsdp"] in (True, "full_shard auto_wrap")
    assert fsdp["fsdp_config"]["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert fsdp["fsdp_config"]["state_dict_type"] == "FULL_STATE_DICT"
    assert set(fsdp) <= names


def test_count_parameters_reads_safetensors_headers(tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5)}, str(tmp_path / "model-1.safetensors"))
    save_file({"c": torch.zeros(2, 2, 2)}, str(tmp_path / "model-2.safetensors"))
    assert count_parameters(tmp_path) == 12 + 5 + 8
    assert count_parameters(tmp_path / "model-2.safetensors") == 8
    assert count_parameters("HuggingFaceTB/not-a-local-dir") is None


def test_dist_context_from_torchrun_env():
    env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}
    single = DistContext.from_env("single", env)
    assert not single.enabled and single.is_main and single.world_size == 1
    assert single.any(True) and single.sum(7) == 7  # no collectives without peers
    ddp = DistContext.from_env("ddp", env)
    assert (ddp.rank, ddp.local_rank, ddp.world_size, ddp.is_main) == (3, 1, 4, False)
    assert ddp.model_device(cuda=True) == "cuda:1" and ddp.model_device(cuda=False) == "cpu"
    assert DistContext.from_env("fsdp", env).model_device(cuda=True) == "cpu"  # FSDP shards it onto the GPUs


def test_time_limit_is_agreed_between_workers():
    state = SimpleNamespace(global_step=1, max_steps=10)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    votes = []
    callback = TimeLimitCallback(3600, agree=lambda over: votes.append(over) or True)  # another rank is over
    callback.on_train_begin(None, state, control)
    callback.on_step_end(None, state, control)
    assert votes == [False] and control.should_training_stop and callback.triggered


def test_run_training_trains_in_process_without_gpus(config, monkeypatch):
    calls = []
    monkeypatch.setattr("ktools.train.trainer.train", lambda cfg, progress=True: calls.append(cfg) or "result")
    monkeypatch.setattr(launch, "stream_process", lambda *a, **k: pytest.fail("no subprocess without GPUs"))
    assert launch.run_training(config, "auto", n_gpus=0) == "result"
    assert calls == [config]


def _fake_worker(report: dict, code: int = 0):
    seen = {}

    def stream(command, env, sink):
        seen.update(command=list(command), env=dict(env))
        sink("[rank 0] training...\n")
        if code == 0:
            path = json.loads(Path(command[command.index("--config") + 1]).read_text())["report_dir"]
            Path(path).mkdir(parents=True, exist_ok=True)
            (Path(path) / "train_report.json").write_text(json.dumps(report))
        return code

    return seen, stream


def test_run_training_launches_workers_and_reads_rank0s_report(config, monkeypatch, tmp_path):
    report = {"model_dir": config.output_dir, "method": "full", "backend": "sft", "steps": 4, "planned_steps": 4,
              "steps_per_epoch": 2, "epochs_done": 2.0, "train_seconds": 1.0, "tokens_trained": 10,
              "tokens_per_second": 10.0, "first_loss": 3.0, "final_loss": 2.0, "losses": [[1, 3.0], [4, 2.0]],
              "world_size": 2, "strategy": "ddp", "a_future_field": 1}
    seen, stream = _fake_worker(report)
    monkeypatch.setattr(launch, "stream_process", stream)
    monkeypatch.setattr(launch, "count_parameters", lambda path: 135_000_000)
    monkeypatch.setattr(launch, "gpu_memory_bytes", lambda: 24 * GiB)
    out = []
    result = launch.run_training(config, "auto", n_gpus=2, sink=out.append)
    assert result.steps == 4 and result.world_size == 2 and result.losses == [(1, 3.0), (4, 2.0)]
    assert out == ["[rank 0] training...\n"]
    written = json.loads((tmp_path / "report" / "launch_config.json").read_text())
    assert TrainConfig(**written) == config  # the workers train exactly this config


def test_run_training_reports_a_failed_launch(config, monkeypatch):
    seen, stream = _fake_worker({}, code=3)
    monkeypatch.setattr(launch, "stream_process", stream)
    with pytest.raises(RuntimeError, match="exit code 3.*torch.distributed.run"):
        launch.run_training(config, "ddp", n_gpus=2, sink=lambda text: None)


def test_stream_process_passes_output_through_as_it_comes():
    chunks = []
    code = launch.stream_process([sys.executable, "-c", "import sys; print('a'); sys.stderr.write('b\\r'); "
                                  "sys.exit(2)"], {"PATH": "/usr/bin"}, chunks.append)
    assert code == 2 and "".join(chunks).replace("\r\n", "\n") in ("a\nb\r", "b\ra\n")


def test_cli_has_the_strategy_option():
    import argparse

    from ktools.cli import train as cli_train

    parser = argparse.ArgumentParser()
    cli_train.register(parser)
    assert parser.parse_args([]).strategy == "auto"
    assert parser.parse_args(["--strategy", "fsdp"]).strategy == "fsdp"


def test_run_training_calibrates_the_saved_model_on_the_held_out_set(config, monkeypatch, tmp_path):
    from ktools.train.result import TrainResult

    trained = TrainResult(model_dir=str(tmp_path / "model"), method="full", backend="sft", steps=1, planned_steps=1,
                          steps_per_epoch=1, epochs_done=1.0, train_seconds=1.0, tokens_trained=1,
                          tokens_per_second=1.0, first_loss=1.0, final_loss=1.0,
                          report_path=str(tmp_path / "report" / "train_report.json"))
    monkeypatch.setattr("ktools.train.trainer.train", lambda cfg, progress=True: trained)
    calls = []
    monkeypatch.setattr("ktools.train.calibrate.calibrate_model",
                        lambda model_dir, path, report_path=None: calls.append((model_dir, path, report_path))
                        or {"temperature": 1.4})
    held_out = str(tmp_path / "eval_set.jsonl")
    result = launch.run_training(config.replace(calibration_path=held_out), "auto", n_gpus=0)
    assert calls == [(trained.model_dir, held_out, trained.report_path)]
    assert result.calibration == {"temperature": 1.4}
    calls.clear()
    assert launch.run_training(config, "auto", n_gpus=0).calibration == {"temperature": 1.4}  # unchanged object
    assert calls == []  # calibration_path "" (the TrainConfig default): no calibration


def test_train_config_from_settings_calibrates_on_step_04s_held_out_set(tmp_output):
    from ktools.config import load_settings
    from ktools.paths import OutputPaths

    settings = load_settings()
    config = TrainConfig.from_settings(settings, cut=1)
    assert config.calibration_path == str(OutputPaths.from_settings(settings).eval_set)
    assert config.fingerprint() == config.replace(calibration_path="").fingerprint()  # resuming ignores it
