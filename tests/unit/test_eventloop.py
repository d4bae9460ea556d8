"""ktools' own event loops: uvloop when installed, the standard loop on request."""

from __future__ import annotations

import pytest

from ktools.config import ConfigError
from ktools.llm import SamplingParams, TeacherClient
from ktools.llm.eventloop import ENV_VAR, loop_kind, new_event_loop
from ktools.testing import FakeOpenAIServer


def test_the_variable_chooses_the_loop(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "asyncio")
    loop = new_event_loop()
    assert loop_kind(loop) == "asyncio"
    loop.close()
    monkeypatch.setenv(ENV_VAR, "bogus")
    with pytest.raises(ConfigError, match=ENV_VAR):
        new_event_loop()


def test_uvloop_by_default_when_installed(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.delenv(ENV_VAR, raising=False)
    loop = new_event_loop()
    assert loop_kind(loop) == "uvloop"
    loop.close()


@pytest.mark.parametrize("kind", ["asyncio", "auto"])
def test_sync_client_works_on_either_loop(monkeypatch, kind):
    monkeypatch.setenv(ENV_VAR, kind)
    with FakeOpenAIServer(faults=["500", "ok"]) as server:
        client = TeacherClient(server.base_url, "fake-model", api_key="sk-x", max_retries=2, backoff_base=0.01)
        try:
            result = client.chat([{"role": "user", "content": "hi"}], SamplingParams(), n=2)
            expected = "asyncio" if kind == "asyncio" else ("uvloop" if _has_uvloop() else "asyncio")
            assert loop_kind(client._loop_thread.loop) == expected
        finally:
            client.close()
    assert len(result.choices) == 2 and result.requests_sent == 2  # one 500 retried, then n=2 in one request


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
