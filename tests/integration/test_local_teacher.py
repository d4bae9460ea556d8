"""The embedded teacher with the real SmolLM2, started as a background process on a free port."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import openai
import pytest

from ktools.config import EMBEDDED_MODEL_NAME
from ktools.llm.local import lifecycle

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def teacher_url():
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    # Two callers at once (as two notebooks would): the file lock must yield one server.
    results: list[str | BaseException] = []

    def call() -> None:
        try:
            results.append(lifecycle.ensure_local_teacher(url, timeout=600))
        except BaseException as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert results == [url, url], results
        yield url
    finally:
        lifecycle.stop("127.0.0.1", port)


@pytest.fixture(scope="module")
def client(teacher_url):
    with openai.OpenAI(base_url=teacher_url, api_key="unused", timeout=900, max_retries=0) as c:
        yield c


def test_one_server_for_concurrent_ensure(teacher_url):
    host, port = lifecycle.split_base_url(teacher_url)
    health = lifecycle.probe(teacher_url)
    assert health.ready and health.payload["port"] == port
    assert lifecycle.read_pid(port) == health.payload["pid"]  # the pid file names the one server


def test_cli_status_and_foreground_refuses_a_taken_port(teacher_url, capsys):
    from ktools.cli import main as ktools_main

    port = str(lifecycle.split_base_url(teacher_url)[1])
    assert ktools_main(["serve-teacher", "--status", "--port", port]) == 0
    assert ": ok (pid" in capsys.readouterr().out
    assert ktools_main(["serve-teacher", "--port", port]) == 1  # already served: a clear error, no second server
    assert "already answers" in capsys.readouterr().err


def test_models_and_real_answer(client):
    assert [m.id for m in client.models.list().data] == [EMBEDDED_MODEL_NAME]
    reply = client.chat.completions.create(model="any-name", messages=QUESTION, temperature=0, max_tokens=16)
    assert reply.model == EMBEDDED_MODEL_NAME
    assert "Paris" in reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 10 and 0 < reply.usage.completion_tokens <= 16
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_n_samples_seed_and_usage(client):
    kwargs = dict(model=EMBEDDED_MODEL_NAME, messages=[{"role": "user", "content": "Name a fruit."}],
                  n=2, temperature=1.0, max_tokens=8, seed=123)
    first = client.chat.completions.create(**kwargs)
    second = client.chat.completions.create(**kwargs)
    assert len(first.choices) == 2 and [c.index for c in first.choices] == [0, 1]
    assert [c.message.content for c in first.choices] == [c.message.content for c in second.choices]
    assert first.usage.completion_tokens <= 16 and first.usage.completion_tokens >= 2


def test_stop_string_and_length(client):
    counted = client.chat.completions.create(
        model=EMBEDDED_MODEL_NAME, temperature=0, max_tokens=40, stop=["4"],
        messages=[{"role": "user", "content": "Count from 1 to 10, separated by commas."}])
    choice = counted.choices[0]
    assert choice.finish_reason == "stop" and "4" not in choice.message.content
    assert "3" in choice.message.content
    long = client.chat.completions.create(
        model=EMBEDDED_MODEL_NAME, temperature=0, max_completion_tokens=5,
        messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}])
    assert long.choices[0].finish_reason == "length" and long.usage.completion_tokens == 5


def test_bad_requests_then_still_serving(client, teacher_url):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=EMBEDDED_MODEL_NAME, messages=[], max_tokens=4)
    too_long = httpx.post(f"{teacher_url}/chat/completions", timeout=120,
                          json={"messages": [{"role": "user", "content": "word " * 9000}], "max_tokens": 4})
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
    streamed = httpx.post(f"{teacher_url}/chat/completions", json={"messages": QUESTION, "stream": True})
    assert streamed.status_code == 400
    ok = client.chat.completions.create(model=EMBEDDED_MODEL_NAME, messages=QUESTION, temperature=0, max_tokens=4)
    assert ok.choices[0].message.content


def test_concurrent_requests_all_succeed(teacher_url):
    async def run() -> list[str]:
        async with openai.AsyncOpenAI(base_url=teacher_url, api_key="unused", timeout=900, max_retries=0) as c:
            replies = await asyncio.gather(*(
                c.chat.completions.create(model=EMBEDDED_MODEL_NAME, temperature=0.7, max_tokens=6, seed=i,
                                          n=1 + i % 2,
                                          messages=[{"role": "user", "content": f"Say a word about {topic}."}])
                for i, topic in enumerate(["cats", "rain", "tea", "maps", "jazz", "salt"])))
        return [choice.finish_reason for r in replies for choice in r.choices]

    reasons = asyncio.run(run())
    assert len(reasons) == 9 and set(reasons) <= {"stop", "length"}


def test_through_teacher_client(teacher_url, monkeypatch):
    from ktools.config import load_settings
    from ktools.llm import SamplingParams, TeacherClient

    monkeypatch.setenv("TEACHER_PROVIDER", "local")
    monkeypatch.setenv("TEACHER_MODEL_BASE_URL", teacher_url)
    client = TeacherClient.from_settings(load_settings())  # ensure_local_teacher finds it running
    try:
        result = client.chat(QUESTION, SamplingParams(temperature=0.7, max_tokens=10, seed=5), n=2)
    finally:
        client.close()
    assert len(result.choices) == 2 and all(c.text for c in result.choices)
    assert result.requests_sent == 1  # the embedded teacher honours n itself
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
