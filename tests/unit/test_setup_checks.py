"""ktools.setup_checks and `ktools status` without the real model (a scripted OpenAI server)."""

from __future__ import annotations

import socket

from ktools import setup_checks
from ktools.cli import main as ktools_main
from ktools.config import load_settings
from ktools.testing.fake_openai import FakeOpenAIServer

SECRET = "sk-unit-test-secret-99999999"


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_env_file_created_once(tmp_path):
    example = tmp_path / "example.env"
    example.write_text("TEACHER_PROVIDER=local\n")
    target = tmp_path / "root" / ".env"
    first = setup_checks.ensure_env_file(target, example)
    assert first.ok and "created" in first.detail and target.read_text() == "TEACHER_PROVIDER=local\n"
    target.write_text("EDITED=1\n")
    second = setup_checks.ensure_env_file(target, example)
    assert second.ok and "unchanged" in second.detail and target.read_text() == "EDITED=1\n"
    missing = setup_checks.ensure_env_file(tmp_path / "other.env", tmp_path / "nope.env")
    assert not missing.ok and missing.fix


def test_repo_env_example_lists_the_variables(repo_root):
    text = (repo_root / "00_Setup" / ".env.example").read_text()
    for name in ("TEACHER_PROVIDER", "TEACHER_MODEL_NAME", "TEACHER_MODEL_BASE_URL", "TEACHER_MODEL_API_KEY",
                 "STUDENT_MODEL_NAME"):
        assert f"\n{name}=" in text
    settings = load_settings(environ={}, repo_root=repo_root / "00_Setup")  # the template as a root .env
    assert settings.teacher_provider == "local" and settings.student_model_name == "SmolLM2-135M-Instruct"


def test_python_extras_and_fixes():
    checks = [setup_checks.check_python(), *setup_checks.check_extras()]
    assert checks[0].ok
    assert [c.name for c in checks[1:]] == [f"extra [{e}]" for e in setup_checks.EXTRAS]
    broken = setup_checks.Check("extra [docs]", False, "missing: pypdf", "pip install -e '.[docs]'")
    assert setup_checks.fixes([checks[0], broken]) == ["extra [docs]: pip install -e '.[docs]'"]


def test_step_outputs(tmp_output):
    (tmp_output / "step_02").mkdir(parents=True)
    (tmp_output / "step_02" / "chunks.jsonl").write_text("{}\n")
    rows = {r["step"]: r for r in setup_checks.step_outputs(load_settings(environ={"KTOOLS_OUTPUT_DIR": str(tmp_output)}))}
    assert rows["02"]["exists"] and rows["02"]["files"] == 1
    assert not rows["03"]["exists"] and rows["03"]["files"] == 0


def test_teacher_check_real_completion_and_masked_failure():
    with FakeOpenAIServer() as server:
        settings = load_settings(environ={"TEACHER_PROVIDER": "openai", "TEACHER_MODEL_BASE_URL": server.base_url,
                                          "TEACHER_MODEL_NAME": "m", "TEACHER_MODEL_API_KEY": SECRET})
        good = setup_checks.check_teacher(settings)
        assert good.ok and "answered in" in good.detail
        assert setup_checks.teacher_reachability(settings).ok
    dead = load_settings(environ={"TEACHER_PROVIDER": "openai", "TEACHER_MODEL_BASE_URL": _closed_url(),
                                  "TEACHER_MODEL_NAME": "m", "TEACHER_MODEL_API_KEY": SECRET,
                                  "TEACHER_REQUEST_TIMEOUT": "5"})
    bad = setup_checks.check_teacher(dead)
    assert not bad.ok and "TEACHER_MODEL_BASE_URL" in bad.fix and SECRET not in bad.detail + bad.fix
    assert not setup_checks.teacher_reachability(dead).ok


def test_embedded_teacher_not_started_when_told_not_to():
    settings = load_settings(environ={"TEACHER_PROVIDER": "local", "TEACHER_MODEL_BASE_URL": _closed_url()})
    check = setup_checks.check_teacher(settings, start_embedded=False)
    assert not check.ok and "serve-teacher --background" in check.fix
    reach = setup_checks.teacher_reachability(settings)
    assert not reach.ok and "not running" in reach.detail


def test_status_command_masks_the_key(monkeypatch, tmp_output, capsys):
    monkeypatch.setenv("TEACHER_MODEL_API_KEY", SECRET)
    assert ktools_main(["status", "--no-teacher"]) == 0
    out = capsys.readouterr().out
    assert "TEACHER_MODEL_API_KEY" in out and SECRET not in out and "step_02" in out
