"""The embedded teacher on its llama.cpp backend (the real SmolLM2 GGUF), through the real
`openai` client: n samples, seeds, stop strings, JSON-schema constrained output, thread
choice reported by /health, and the idle timeout ending a background teacher."""

from __future__ import annotations

import json
import socket
import time

import openai
import pytest

from ktools.config import EMBEDDED_MODEL_NAME
from ktools.llm.local import lifecycle
from ktools.llm.local.llama_backend import available

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not available(), reason="llama-cpp-python is not installed (`make llama` builds it)")]

PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "city"],
          "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer"},
                         "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]}}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def teacher():
    port = _free_port()
    health = lifecycle.start_background("127.0.0.1", port, timeout=300, extra_args=["--backend", "llama"])
    try:
        yield f"http://127.0.0.1:{port}/v1", health.payload
    finally:
        lifecycle.stop("127.0.0.1", port)


@pytest.fixture(scope="module")
def client(teacher):
    with openai.OpenAI(base_url=teacher[0], api_key="unused", timeout=600, max_retries=0) as c:
        yield c


def test_health_names_the_backend_and_its_adaptive_threads(teacher):
    payload = teacher[1]
    assert payload["backend"] == "llama.cpp" and payload["threads_adaptive"] is True
    assert 1 <= payload["threads"] <= (__import__("os").cpu_count() or 1)
    assert payload["idle_timeout"] > 0  # background teachers always get one (LOCAL_TEACHER_IDLE_TIMEOUT)


def test_real_answer_n_seed_and_stop(client):
    # (Not the capital of France: its first token is a near-tie here, "L" 0.152 vs "The" 0.139,
    # against 0.140 / 0.152 in the transformers engine, so greedy answers differ.)
    reply = client.chat.completions.create(model=EMBEDDED_MODEL_NAME, temperature=0, max_tokens=24,
                                           messages=[{"role": "user", "content": "Count from 1 to 5."}])
    assert all(digit in reply.choices[0].message.content for digit in "12345")
    kwargs = dict(model=EMBEDDED_MODEL_NAME, messages=[{"role": "user", "content": "Name a fruit."}],
                  n=3, temperature=1.0, max_tokens=8, seed=7)
    first, second = client.chat.completions.create(**kwargs), client.chat.completions.create(**kwargs)
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert [c.message.content for c in first.choices] == [c.message.content for c in second.choices]
    counted = client.chat.completions.create(
        model=EMBEDDED_MODEL_NAME, temperature=0, max_tokens=40, stop=["4"],
        messages=[{"role": "user", "content": "Count from 1 to 10, separated by commas."}])
    assert counted.choices[0].finish_reason == "stop" and "4" not in counted.choices[0].message.content
    assert "3" in counted.choices[0].message.content


def test_json_schema_is_followed(client):
    reply = client.chat.completions.create(
        model=EMBEDDED_MODEL_NAME, temperature=0.8, max_tokens=120, n=3, seed=1,
        messages=[{"role": "user", "content": "Invent a person: name, age and city, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}})
    for choice in reply.choices:
        assert choice.finish_reason == "stop", choice.message.content
        person = json.loads(choice.message.content)
        assert set(person) == {"name", "age", "city"}
        assert isinstance(person["age"], int) and person["city"] in {"Paris", "Rome", "Oslo"}
    free = client.chat.completions.create(model=EMBEDDED_MODEL_NAME, temperature=0, max_tokens=300,
                                          response_format={"type": "json_object"},
                                          messages=[{"role": "user", "content": "A JSON object naming one animal."}])
    assert free.choices[0].finish_reason == "stop", free.choices[0].message.content  # not cut at max_tokens
    assert isinstance(json.loads(free.choices[0].message.content), dict)


def test_unsupported_schema_is_a_clear_400(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=EMBEDDED_MODEL_NAME, max_tokens=8, messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}}})
    assert "response_format" in str(info.value)


def test_idle_teacher_exits_by_itself():
    port = _free_port()
    lifecycle.start_background("127.0.0.1", port, timeout=300,
                               extra_args=["--backend", "llama", "--idle-timeout", "3"])
    pid = lifecycle.read_pid(port)
    assert pid is not None
    deadline = time.monotonic() + 60
    while lifecycle.read_pid(port) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    try:
        assert lifecycle.read_pid(port) is None, "the idle teacher was still running after 60 s"
        assert not lifecycle.probe(f"http://127.0.0.1:{port}/v1").reachable
    finally:
        lifecycle.stop("127.0.0.1", port)
