"""ktools.models.cache_root reads KTOOLS_CACHE_DIR through ktools.config (one setting, same layers)."""

from __future__ import annotations

import pytest

from ktools.config import ConfigError, load_settings, setting
from ktools.models import cache_root


def test_environment_and_settings_choose_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KTOOLS_CACHE_DIR", str(tmp_path / "from_env"))
    monkeypatch.setenv("TEACHER_TEMPERATURE", "not-a-number")  # another bad setting does not matter here
    assert cache_root() == tmp_path / "from_env" and (tmp_path / "from_env").is_dir()
    settings = load_settings(environ={"KTOOLS_CACHE_DIR": str(tmp_path / "given")}, repo_root=tmp_path)
    assert cache_root(settings) == tmp_path / "given"


def test_setting_reads_one_value_like_load_settings(tmp_path):
    (tmp_path / ".env").write_text("KTOOLS_CACHE_DIR=/from/dotenv\nMAX_CONCURRENCY=7\n")
    assert setting("cache_dir", environ={}, repo_root=tmp_path) == "/from/dotenv"
    assert setting("cache_dir", environ={"KTOOLS_CACHE_DIR": "/env/wins"}, repo_root=tmp_path) == "/env/wins"
    assert setting("max_concurrency", environ={}, repo_root=tmp_path) == 7
    assert setting("cache_dir", environ={"KTOOLS_CACHE_DIR": " "}, repo_root=tmp_path / "none") == ""
    with pytest.raises(ConfigError, match="MAX_CONCURRENCY='x' \\(from environment\\) is invalid"):
        setting("max_concurrency", environ={"MAX_CONCURRENCY": "x"}, repo_root=tmp_path)
    with pytest.raises(ConfigError, match="unknown setting 'cache'"):
        setting("cache", environ={}, repo_root=tmp_path)
