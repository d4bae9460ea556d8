"""ktools.config: precedence, masking (repr, table, logs), bad values naming the variable."""

from __future__ import annotations

import logging

import pytest

from ktools.config import ConfigError, Secret, load_settings, mask_secret

KEY = "sk-proj-CONFIGTESTKEY-9876543210"


@pytest.fixture
def layout(tmp_path):
    """A repo root with a root .env and a step folder with its own .env."""
    root = tmp_path / "repo"
    step = root / "03_Knowledge_Generation"
    step.mkdir(parents=True)
    (root / ".env").write_text("QA_PER_DOC=4\nTEACHER_MODEL_NAME=root-model\nCUT_SIZES=5,50\n")
    (step / ".env").write_text("QA_PER_DOC=5\nTEACHER_MODEL_NAME=step-model\n")
    return root, step


def test_precedence_env_over_step_over_root_over_default(layout):
    root, step = layout
    s = load_settings(step_dir=step, environ={"QA_PER_DOC": "6"}, repo_root=root)
    assert s.qa_per_doc == 6 and s.sources["QA_PER_DOC"] == "environment"
    assert s.teacher_model_name == "step-model" and s.sources["TEACHER_MODEL_NAME"] == str(step / ".env")
    assert s.cut_sizes == [5, 50] and s.sources["CUT_SIZES"] == str(root / ".env")
    assert s.number_of_summaries == 5 and "NUMBER_OF_SUMMARIES" not in s.sources  # default

    s = load_settings(step_dir=step, environ={}, repo_root=root)
    assert s.qa_per_doc == 5
    s = load_settings(environ={}, repo_root=root)  # no step folder: root .env
    assert s.qa_per_doc == 4 and s.teacher_model_name == "root-model"
    (root / ".env").unlink()
    s = load_settings(environ={}, repo_root=root)
    assert s.qa_per_doc == 3  # the default


def test_relative_step_dir_and_overrides(layout):
    root, _ = layout
    s = load_settings(step_dir="03_Knowledge_Generation", environ={"QA_PER_DOC": "6"}, repo_root=root,
                      qa_per_doc=9, cut_sizes="10, 2,2")
    assert s.qa_per_doc == 9 and s.sources["QA_PER_DOC"] == "parameter"
    assert s.cut_sizes == [2, 10]
    assert s.teacher_model_name == "step-model"
    with pytest.raises(ConfigError, match="unknown setting 'qa_per_dok'"):
        load_settings(environ={}, repo_root=root, qa_per_dok=1)


def test_empty_value_means_default(tmp_path):
    s = load_settings(environ={"QA_PER_DOC": "", "TEACHER_TEMPERATURE": "  "}, repo_root=tmp_path)
    assert s.qa_per_doc == 3 and s.temperature == 0.7


def test_provider_default_and_aliases(tmp_path):
    assert load_settings(environ={}, repo_root=tmp_path).teacher_provider == "local"
    s = load_settings(environ={"TEACHER_MODEL_BASE_URL": "http://h:8000/v1/"}, repo_root=tmp_path)
    assert s.teacher_provider == "openai" and s.teacher_base_url == "http://h:8000/v1"
    assert load_settings(environ={"TEACHER_PROVIDER": "Claude"}, repo_root=tmp_path).teacher_provider == "anthropic"


@pytest.mark.parametrize("name,value,expected", [
    ("QA_PER_DOC", "three", "an integer"),
    ("QA_PER_DOC", "0", "an integer >= 1"),
    ("CUT_SIZES", "5,x", "comma-separated positive integers"),
    ("TEACHER_TEMPERATURE", "3", "a number between 0.0 and 2.0"),
    ("SAVE_GPT_OSS_FORMAT", "maybe", "true or false"),
    ("TEACHER_PROVIDER", "skynet", "one of local, openai"),
    ("TEACHER_MODEL_BASE_URL", "localhost:8000", "an http(s) URL"),
    ("MAX_CONCURRENCY", "-2", "an integer >= 1"),
])
def test_bad_values_name_the_variable_and_expected_form(tmp_path, name, value, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(environ={name: value}, repo_root=tmp_path)
    message = str(info.value)
    assert name in message and repr(value) in message and expected in message
    assert "environment" in message


def test_bad_value_in_a_dotenv_names_the_file(tmp_path):
    (tmp_path / ".env").write_text("MAX_CONCURRENCY=lots\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, repo_root=tmp_path)
    assert "MAX_CONCURRENCY='lots'" in str(info.value) and str(tmp_path / ".env") in str(info.value)


def test_key_is_masked_in_repr_str_and_table(tmp_path):
    s = load_settings(environ={"TEACHER_MODEL_API_KEY": KEY}, repo_root=tmp_path)
    assert s.teacher_api_key.reveal() == KEY
    for text in (repr(s), str(s), repr(s.teacher_api_key), str(s.as_table()), f"{s!r}", repr([s])):
        assert KEY not in text
    row = next(r for r in s.as_table() if r["variable"] == "TEACHER_MODEL_API_KEY")
    assert row["value"] == mask_secret(KEY) and row["from"] == "environment"
    assert isinstance(s.teacher_api_key, Secret)


def test_key_is_masked_in_every_log_line(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    s = load_settings(environ={"TEACHER_MODEL_API_KEY": KEY}, repo_root=tmp_path)
    other = logging.getLogger("some.library")
    other.warning("sending Authorization: Bearer %s", s.teacher_api_key.reveal())
    other.info(f"key inline {KEY}")
    other.debug("settings %r / %s", s, s)
    assert len(caplog.records) >= 3
    assert KEY not in caplog.text
    assert mask_secret(KEY) in caplog.text


def test_bad_key_value_is_not_echoed(tmp_path):
    # the key cannot be "invalid", but the parameter path must not echo it either
    s = load_settings(environ={}, repo_root=tmp_path, teacher_api_key=KEY)
    assert s.teacher_api_key.reveal() == KEY and KEY not in repr(s)


def test_effective_tokenizer(tmp_path):
    s = load_settings(environ={}, repo_root=tmp_path)
    assert s.effective_tokenizer == s.student_model_name == "SmolLM2-135M-Instruct"
    s = load_settings(environ={"TOKENIZER_MODEL_NAME": "tok"}, repo_root=tmp_path)
    assert s.effective_tokenizer == "tok"


def test_mix_max_seq_len_and_its_old_name(tmp_path):
    assert load_settings(environ={"MIX_MAX_SEQ_LEN": "300"}, repo_root=tmp_path).max_seq_len == 300
    assert load_settings(environ={"MAX_SEQ_LEN": "400"}, repo_root=tmp_path).max_seq_len == 400  # still read
    both = load_settings(environ={"MIX_MAX_SEQ_LEN": "300", "MAX_SEQ_LEN": "400"}, repo_root=tmp_path)
    assert both.max_seq_len == 300
    with pytest.raises(ConfigError, match="^MAX_SEQ_LEN='x'"):
        load_settings(environ={"MAX_SEQ_LEN": "x"}, repo_root=tmp_path)


def test_every_setting_is_declared_once_on_the_dataclass():
    import dataclasses

    from ktools.config import _FIELDS, SECRET_FIELDS, Settings

    declared = [f.name for f in dataclasses.fields(Settings) if "env" in f.metadata]
    assert [f.attr for f in _FIELDS] == declared and len(set(declared)) == len(declared)
    assert {f.env for f in _FIELDS} >= {"KTOOLS_EVENT_LOOP", "KTOOLS_TORCH_THREADS", "KTOOLS_CACHE_DIR"}
    assert SECRET_FIELDS == {"teacher_api_key", "pdf_password", "local_teacher_api_key"}
    assert Settings().cut_sizes is not Settings().cut_sizes  # mutable defaults are not shared


def test_every_setting_is_in_an_env_example(repo_root):
    from ktools.config import _FIELDS

    text = "".join(p.read_text() for p in repo_root.glob("0*/.env.example"))
    assert [f.env for f in _FIELDS if f"{f.env}=" not in text] == []


def test_the_reference_tools_names_are_read_as_aliases(tmp_path):
    settings = load_settings(environ={"TOKENIZER_MODEL": "gpt2", "STUDENT_MODEL": "my/student",
                                      "OUTPUT_DATA_FOLDER": str(tmp_path / "out")}, repo_root=tmp_path)
    assert (settings.tokenizer_model_name, settings.student_model_name) == ("gpt2", "my/student")
    assert settings.output_dir == str(tmp_path / "out")
    assert settings.sources["TOKENIZER_MODEL_NAME"] == "environment, as TOKENIZER_MODEL"
    own = load_settings(environ={"TOKENIZER_MODEL": "gpt2", "TOKENIZER_MODEL_NAME": "other"}, repo_root=tmp_path)
    assert own.tokenizer_model_name == "other"  # ktools' own name wins


def test_unknown_ktools_and_teacher_variables_are_warned_about(tmp_path, caplog):
    (tmp_path / ".env").write_text("TEACHER_MODLE_NAME=typo\n")
    with caplog.at_level(logging.WARNING, logger="ktools.config"):
        load_settings(environ={"KTOOLS_OUTPUT_DIRR": "x", "KTOOLS_EVENT_LOOP": "asyncio", "OTHER_TOOL_X": "1",
                               "OPENAI_API_KEY": "sk-x", "KTOOLS_TRAIN_STRATEGY": "ddp"}, repo_root=tmp_path)
    warned = caplog.text
    assert "KTOOLS_OUTPUT_DIRR (from environment) is not a ktools setting" in warned
    assert f"TEACHER_MODLE_NAME (from {tmp_path / '.env'})" in warned
    assert "KTOOLS_EVENT_LOOP" not in warned and "OTHER_TOOL_X" not in warned and "KTOOLS_TRAIN_STRATEGY" not in warned


def test_provider_key_variables_are_read_through_the_settings_layers(tmp_path):
    from ktools.config import provider_api_key
    from ktools.llm.providers import get_preset

    (tmp_path / ".env").write_text("GOOGLE_API_KEY=from-dotenv-123\n")
    assert provider_api_key("gemini", environ={}, repo_root=tmp_path) == "from-dotenv-123"
    assert provider_api_key("gemini", environ={"GEMINI_API_KEY": "env-456"}, repo_root=tmp_path) == "env-456"
    assert get_preset("openai").api_key_from_env({"OPENAI_API_KEY": "sk-env"}) == "sk-env"
    assert provider_api_key("ollama", environ={"OPENAI_API_KEY": "x"}, repo_root=tmp_path) == ""
