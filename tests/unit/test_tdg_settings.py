"""GENERATOR_* / OLLAMA_* settings: precedence (CLI > env > step .env > root .env > defaults) and provider mapping."""

from __future__ import annotations

import pytest

from ktools.compat.training_data_generator.settings import (
    DEFAULT_OLLAMA_BASE_URL,
    load_tdg_settings,
    map_provider,
    resolve_generate_config,
)
from ktools.config import ConfigError


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "03_Knowledge_Generation").mkdir()
    return tmp_path


def write_env(path, **values):
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def test_precedence_cli_env_step_env_root_env_default(repo):
    write_env(repo / ".env", GENERATOR_MODEL="root-model", GENERATOR_TEMPERATURE="0.1",
              GENERATOR_MAX_TOKENS="111", GENERATOR_QUESTIONS_PER_CHUNK="4")
    write_env(repo / "03_Knowledge_Generation" / ".env", GENERATOR_TEMPERATURE="0.2", GENERATOR_MAX_TOKENS="222")
    environ = {"GENERATOR_MAX_TOKENS": "333", "GENERATOR_PROVIDER": "openai",
               "GENERATOR_BASE_URL": "http://127.0.0.1:9/v1"}
    cfg = resolve_generate_config({"questions_per_chunk": 7}, environ=environ, repo_root=repo)
    s = cfg.settings
    assert s.teacher_model_name == "root-model"  # root .env
    assert s.temperature == 0.2  # step .env beats root .env
    assert s.max_tokens == 333  # environment beats both
    assert cfg.questions_per_chunk == 7  # CLI beats all
    assert cfg.sources["questions_per_chunk"] == "command line"
    assert cfg.sources["max_tokens"].startswith("GENERATOR_MAX_TOKENS (environment")
    assert cfg.resume is True  # default on

    empty = repo / "elsewhere"
    empty.mkdir()
    defaults = resolve_generate_config({}, environ={}, repo_root=empty)
    assert defaults.questions_per_chunk == 3 and defaults.resume is True
    assert defaults.settings.teacher_provider == "local" and defaults.settings.max_tokens == 1024


def test_generator_vars_beat_teacher_vars(repo):
    environ = {"TEACHER_MODEL_NAME": "teacher-model", "TEACHER_TEMPERATURE": "0.9",
               "GENERATOR_MODEL": "generator-model", "TEACHER_MAX_TOKENS": "500"}
    cfg = resolve_generate_config({}, environ=environ, repo_root=repo)
    assert cfg.settings.teacher_model_name == "generator-model"
    assert cfg.settings.temperature == 0.9 and cfg.settings.max_tokens == 500  # TEACHER_* still used when no GENERATOR_*
    assert cfg.sources["temperature"].startswith("TEACHER_TEMPERATURE")


def test_bad_values_name_variable_origin_and_fix(repo):
    write_env(repo / ".env", GENERATOR_TEMPERATURE="warm")
    with pytest.raises(ConfigError, match=r"GENERATOR_TEMPERATURE='warm' \(from .*\.env\) is invalid: expected a number"):
        load_tdg_settings(environ={}, repo_root=repo)
    (repo / ".env").unlink()
    with pytest.raises(ConfigError, match="GENERATOR_RESUME='maybe'.*true or false"):
        load_tdg_settings(environ={"GENERATOR_RESUME": "maybe"}, repo_root=repo)
    with pytest.raises(ConfigError, match="provider 'llama' is unknown"):
        resolve_generate_config({"provider": "llama"}, environ={}, repo_root=repo)


@pytest.mark.parametrize("name, base, ollama, expected", [
    ("local", None, "http://192.168.50.133:11434", ("ollama", "http://192.168.50.133:11434/v1")),
    ("local", None, "http://h:11434/v1/", ("ollama", "http://h:11434/v1")),
    ("local", None, None, ("local", None)),
    ("local", "http://ollama:11434", None, ("ollama", "http://ollama:11434/v1")),  # QAGenerator(base_url=...)
    ("local", "http://127.0.0.1:8765/v1", None, ("local", "http://127.0.0.1:8765/v1")),
    ("ollama", None, None, ("ollama", DEFAULT_OLLAMA_BASE_URL)),
    ("ollama", "http://o:1", None, ("ollama", "http://o:1/v1")),
    ("claude", None, None, ("anthropic", None)),
    ("Anthropic", None, None, ("anthropic", None)),
    ("gemini", None, None, ("gemini", None)),
    ("vllm", "http://v:8000/v1", None, ("vllm", "http://v:8000/v1")),
    ("openai", None, "http://ignored:11434", ("openai", None)),
    (None, None, None, (None, None)),
])
def test_provider_mapping(name, base, ollama, expected):
    assert map_provider(name, base_url=base, ollama_base_url=ollama) == expected


def test_local_with_ollama_env_is_ollama_and_without_is_embedded(repo):
    cfg = resolve_generate_config({"provider": "local", "model": "qwen3:14b"},
                                  environ={"OLLAMA_BASE_URL": "http://10.0.0.5:11434", "OLLAMA_TOP_K": "40",
                                           "OLLAMA_REPEAT_PENALTY": "1.1", "OLLAMA_NUM_PREDICT": "512",
                                           "OLLAMA_TOP_P": "0.9"}, repo_root=repo)
    s = cfg.settings
    assert (s.teacher_provider, s.teacher_base_url, s.teacher_model_name) == \
        ("ollama", "http://10.0.0.5:11434/v1", "qwen3:14b")
    assert s.max_tokens == 512  # num_predict is what bounds an Ollama answer
    assert cfg.top_p == 0.9 and cfg.sampling_extra() == (("top_k", 40), ("repeat_penalty", 1.1))

    embedded = resolve_generate_config({"provider": "local"}, environ={}, repo_root=repo)
    assert embedded.settings.teacher_provider == "local" and embedded.settings.uses_embedded_teacher
    vllm = resolve_generate_config({"provider": "vllm", "base_url": "http://v:8000/v1", "repeat_penalty": 1.2},
                                   environ={}, repo_root=repo)
    assert vllm.sampling_extra() == (("repetition_penalty", 1.2),)


def test_api_key_sources_and_masking(repo):
    environ = {"GENERATOR_PROVIDER": "claude", "ANTHROPIC_API_KEY": "sk-ant-secret-123456",
               "TEACHER_MODEL_API_KEY": "teacher-key-abcdef"}
    cfg = resolve_generate_config({}, environ=environ, repo_root=repo)
    assert cfg.settings.teacher_provider == "anthropic"
    assert cfg.settings.teacher_api_key.reveal() == "sk-ant-secret-123456"
    assert cfg.sources["api_key"] == "ANTHROPIC_API_KEY"
    shown = repr(cfg) + str(cfg.describe()) + repr(cfg.settings)
    assert "sk-ant-secret-123456" not in shown
    cli = resolve_generate_config({"api_key": "cli-key-0987654321"}, environ=environ, repo_root=repo)
    assert cli.settings.teacher_api_key.reveal() == "cli-key-0987654321"
    teacher = resolve_generate_config({"provider": "openai"}, environ={"TEACHER_MODEL_API_KEY": "tk-1234567890"},
                                      repo_root=repo)
    assert teacher.settings.teacher_api_key.reveal() == "tk-1234567890"


def test_batch_processing_maps_to_concurrency(repo):
    assert resolve_generate_config({}, environ={"GENERATOR_BATCH_PROCESSING": "8"},
                                   repo_root=repo).settings.max_concurrency == 8
    # true = concurrent with the usual limit; false has no effect (ktools always pipelines)
    for value in ("true", "false"):
        cfg = resolve_generate_config({}, environ={"GENERATOR_BATCH_PROCESSING": value, "MAX_CONCURRENCY": "5"},
                                      repo_root=repo)
        assert cfg.settings.max_concurrency == 5
    cli = resolve_generate_config({"batch_processing": 3}, environ={"GENERATOR_BATCH_PROCESSING": "8"},
                                  repo_root=repo)
    assert cli.settings.max_concurrency == 3
    both = resolve_generate_config({"batch_processing": 3, "max_concurrency": 2}, environ={}, repo_root=repo)
    assert both.settings.max_concurrency == 2


def test_directories_resume_and_stop(repo):
    environ = {"GENERATOR_PROCESS_DIR": "/data/chunks", "GENERATOR_OUTPUT_DIR": "/data/qa",
               "GENERATOR_OUTPUT_FILE": "/data/results/training_data.json", "GENERATOR_RESUME": "false"}
    cfg = resolve_generate_config({"stop": ["###", "END"]}, environ=environ, repo_root=repo)
    assert str(cfg.chunks_dir) == "/data/chunks" and str(cfg.qa_dir) == "/data/qa"
    assert str(cfg.output_file) == "/data/results/training_data.json"
    assert cfg.resume is False and cfg.stop == ("###", "END")
    assert resolve_generate_config({"resume": True}, environ=environ, repo_root=repo).resume is True


def test_embedded_names_the_embedded_teacher_whatever_url_is_around(tmp_path):
    from ktools.config import load_settings

    assert map_provider("embedded", ollama_base_url="http://gpu:11434") == ("local", None)
    assert map_provider("local", ollama_base_url="http://gpu:11434")[0] == "ollama"  # the reference tool's local
    assert load_settings(environ={"TEACHER_PROVIDER": "embedded"}, repo_root=tmp_path).uses_embedded_teacher
