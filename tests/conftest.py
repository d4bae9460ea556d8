"""Shared fixtures. Tests never touch the real output/ folder: `tmp_output` points
KTOOLS_OUTPUT_DIR at a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def tmp_output(tmp_path, monkeypatch) -> Path:
    out = tmp_path / "output"
    monkeypatch.setenv("KTOOLS_OUTPUT_DIR", str(out))
    return out


@pytest.fixture(autouse=True)
def _no_network_hub(monkeypatch):
    # Nothing may reach a model hub at run time.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    yield


def pytest_configure(config):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
