"""The scripted fake OpenAI server itself: endpoints, faults, recording, subprocess mode, speed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx2
import openai
import pytest

from ktools.testing import FakeOpenAIServer

MSG = [{"role": "user", "content": "hello fake server"}]


def sync_client(srv: FakeOpenAIServer, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="sk-x", max_retries=0, **kw)


def test_models_and_completion_shape():
    with FakeOpenAIServer(model="m-1") as srv:
        client = sync_client(srv)
        assert [m.id for m in client.models.list()] == ["m-1"]
        r = client.chat.completions.create(model="m-1", messages=MSG, n=3, max_tokens=100)
        assert [c.index for c in r.choices] == [0, 1, 2]
        assert all(c.finish_reason == "stop" for c in r.choices)
        assert r.usage.prompt_tokens == 4
        assert r.usage.completion_tokens == sum(len(c.message.content.split()) for c in r.choices)
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert srv.requests == [{"model": "m-1", "messages": MSG, "n": 3, "max_tokens": 100}]


def test_max_tokens_cuts_with_length():
    with FakeOpenAIServer(responder=lambda body, i: "one two three four five") as srv:
        r = sync_client(srv).chat.completions.create(model="m", messages=MSG, max_tokens=2)
        assert r.choices[0].message.content == "one two" and r.choices[0].finish_reason == "length"


def test_responder_dict_reasoning_and_malformed_text():
    def responder(body, index):
        return {"text": "{not json", "reasoning": "thought"} if index == 0 else "plain"

    with FakeOpenAIServer(responder=responder) as srv:
        raw = httpx2.post(srv.base_url + "/chat/completions", json={"model": "m", "messages": MSG, "n": 2}).json()
        first, second = raw["choices"]
        assert first["message"] == {"role": "assistant", "content": "{not json", "reasoning_content": "thought"}
        assert second["message"]["content"] == "plain"


def test_supports_n_false_returns_one_choice():
    with FakeOpenAIServer(supports_n=False) as srv:
        r = sync_client(srv).chat.completions.create(model="m", messages=MSG, n=4)
        assert len(r.choices) == 1


def test_faults_are_consumed_in_order():
    faults = ["429:2", "429ms:1500", "503", "empty", "fewer:2", "truncate", "garbage", "reset", "ok"]
    with FakeOpenAIServer(faults=faults) as srv:
        url = srv.base_url + "/chat/completions"
        body = {"model": "m", "messages": MSG, "n": 3}
        with httpx2.Client(timeout=5) as http:
            r = http.post(url, json=body)
            assert r.status_code == 429 and r.headers["retry-after"] == "2"
            r = http.post(url, json=body)
            assert r.status_code == 429 and r.headers["retry-after-ms"] == "1500"
            assert http.post(url, json=body).status_code == 503
            assert http.post(url, json=body).json()["choices"] == []
            assert len(http.post(url, json=body).json()["choices"]) == 2
            assert {c["finish_reason"] for c in http.post(url, json=body).json()["choices"]} == {"length"}
            r = http.post(url, json=body)
            assert r.status_code == 200 and r.text.startswith("<html>")
            with pytest.raises(httpx2.TransportError):
                http.post(url, json=body)
        with httpx2.Client(timeout=5) as http:
            assert len(http.post(url, json=body).json()["choices"]) == 3  # "ok", then ok forever
            assert len(http.post(url, json=body).json()["choices"]) == 3
        assert len(srv.requests) == 10


def test_timeout_fault_hangs_until_the_client_gives_up():
    with FakeOpenAIServer(faults=["timeout"]) as srv:
        started = time.monotonic()
        with pytest.raises(httpx2.ReadTimeout):
            httpx2.post(srv.base_url + "/chat/completions", json={"model": "m", "messages": MSG}, timeout=0.3)
        assert time.monotonic() - started >= 0.3
        # the hung request stops counting once its client is gone
        for _ in range(50):
            if srv.in_flight == 0:
                break
            time.sleep(0.02)
        assert srv.in_flight == 0


def test_latency_is_applied_and_adjustable():
    with FakeOpenAIServer(latency=0.6) as srv:
        client = sync_client(srv)
        started = time.monotonic()
        client.chat.completions.create(model="m", messages=MSG)
        assert 0.6 <= time.monotonic() - started < 2.0
        srv.latency = 0.0
        started = time.monotonic()
        client.chat.completions.create(model="m", messages=MSG)
        assert time.monotonic() - started < 0.5


def test_bad_requests_get_clear_4xx():
    with FakeOpenAIServer() as srv:
        r = httpx2.post(srv.base_url + "/chat/completions", content=b"{oops", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "invalid JSON" in r.json()["error"]["message"]
        assert httpx2.get(srv.base_url + "/nope").status_code == 404


def test_max_in_flight_and_dump(tmp_path):
    with FakeOpenAIServer(latency=0.1) as srv:
        async def burst():
            async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=20)) as http:
                await asyncio.gather(*(http.post(srv.base_url + "/chat/completions",
                                                 json={"model": "m", "messages": [{"role": "user", "content": str(i)}]})
                                       for i in range(30)))

        asyncio.run(burst())
        assert srv.max_in_flight == 20
        path = srv.dump_requests(tmp_path / "requests.jsonl")
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert sorted(int(b["messages"][0]["content"]) for b in lines) == list(range(30))


def test_subprocess_mode_with_log_and_responder(tmp_path):
    log_path = tmp_path / "bodies.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ktools.testing.fake_openai", "--port", "0", "--latency", "0.01",
         "--log", str(log_path), "--responder", "ktools.testing.fake_openai:echo_responder"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("FAKE_OPENAI_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        for i in range(3):
            r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"q{i}"}])
            # echo_responder: the text is the request body it got
            assert json.loads(r.choices[0].message.content)["messages"][0]["content"] == f"q{i}"
        stats = httpx2.get(url.rsplit("/v1", 1)[0] + "/_stats").json()
        assert stats["chat_requests"] == 3
    finally:
        proc.terminate()
        proc.wait(10)
    bodies = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [b["messages"][0]["content"] for b in bodies] == ["q0", "q1", "q2"]


def test_serves_many_concurrent_requests_quickly():
    """Not the benchmark, just a guard that the server is not the bottleneck: 1,000 requests at
    latency 0.1 s and concurrency 200 (ideal 0.5 s) through the lean transport, in one process."""
    from ktools.llm.transport import FastAsyncTransport

    with FakeOpenAIServer(latency=0.1) as srv:
        async def run():
            async with httpx2.AsyncClient(transport=FastAsyncTransport(), timeout=30) as http:
                body = {"model": "m", "messages": MSG}
                sem = asyncio.Semaphore(200)

                async def one():
                    async with sem:
                        return (await http.post(srv.base_url + "/chat/completions", json=body)).status_code

                await asyncio.gather(*(one() for _ in range(200)))
                started = time.monotonic()
                codes = await asyncio.gather(*(one() for _ in range(1000)))
                return time.monotonic() - started, codes

        elapsed, codes = asyncio.run(run())
        assert set(codes) == {200} and srv.stats()["answered"] == 1200
        assert srv.max_in_flight == 200
        assert elapsed < 6.0, f"{elapsed:.2f} s for an ideal of 0.5 s"  # generous: shared 2-core machine
