"""TeacherClient against the scripted fake server, over real HTTP with the real `openai` package."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import sys
import threading
import time
import types

import pytest

from ktools.config import ConfigError, load_settings
from ktools.llm import ChatResult, SamplingParams, TeacherClient, TeacherError, run_sync
from ktools.llm.client import parse_retry_after, split_reasoning
from ktools.llm.transport import _Connection
from ktools.testing import FakeOpenAIServer

MSG = [{"role": "user", "content": "What is the capital of Atlantis?"}]
SECRET = "sk-test-SECRETKEY-0123456789abcdef"


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def make_client(srv: FakeOpenAIServer, **kw) -> TeacherClient:
    kw.setdefault("max_retries", 3)
    kw.setdefault("timeout", 5.0)
    kw.setdefault("backoff_base", 0.01)
    return TeacherClient(srv.base_url, "fake-model", api_key=SECRET, **kw)


def test_plain_answer_and_usage(server):
    client = make_client(server)
    result = client.chat(MSG, SamplingParams(temperature=0.2, max_tokens=50, seed=3))
    assert isinstance(result, ChatResult)
    assert result.choices[0].text.startswith("Answer 0 to: What is the capital")
    assert result.choices[0].finish_reason == "stop"
    assert result.requests_sent == 1
    body = server.requests[0]
    assert body["model"] == "fake-model" and body["temperature"] == 0.2 and body["max_tokens"] == 50
    assert body["seed"] == 3 and "n" not in body
    # usage: what the server reported
    assert result.usage.prompt_tokens == 7  # 6 words + 1 per message
    assert result.usage.completion_tokens == len(result.choices[0].text.split())
    client.close()


def test_usage_accounting_over_many_calls(server):
    client = make_client(server)

    async def many():
        return await asyncio.gather(*(client.achat([{"role": "user", "content": "one two three"}], n=2)
                                      for _ in range(10)))

    results = run_sync(many())
    stats = client.stats
    assert stats["calls"] == 10 and stats["requests"] == 10 and stats["retries"] == 0
    assert stats["prompt_tokens"] == sum(r.usage.prompt_tokens for r in results) == 10 * 4
    assert stats["completion_tokens"] == sum(r.usage.completion_tokens for r in results) > 0
    assert all(len(r.choices) == 2 for r in results)
    client.close()


def test_extra_goes_into_the_body(server):
    client = make_client(server)
    client.chat(MSG, SamplingParams(top_p=0.9, stop=("\n\n",), extra=(("top_k", 5), ("repetition_penalty", 1.1))))
    body = server.requests[0]
    assert body["top_k"] == 5 and body["repetition_penalty"] == 1.1
    assert body["top_p"] == 0.9 and body["stop"] == ["\n\n"]
    client.close()


def test_429_retry_after_is_honoured(server):
    server.add_faults(["429:1"])
    client = make_client(server)
    result = client.chat(MSG)
    assert result.choices and result.requests_sent == 2
    first, second = server.arrivals[:2]
    waited = second - first
    assert 1.0 <= waited < 2.5, f"waited {waited:.3f} s for Retry-After: 1"
    assert client.stats["retries"] == 1 and client.stats["errors"] == 1
    client.close()


@pytest.mark.parametrize("fault,expected", [("429ms:400", 0.4), ("429date:2", 1.0)])
def test_retry_after_ms_and_http_date(server, fault, expected):
    server.add_faults([fault])
    client = make_client(server)
    client.chat(MSG)
    waited = server.arrivals[1] - server.arrivals[0]
    # an HTTP date has one-second resolution: "2 s ahead" may mean anything from 1 to 2 s
    assert expected <= waited < expected + 2.0
    client.close()


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    import email.utils

    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= parse_retry_after({"retry-after": date}) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


@pytest.mark.parametrize("fault", ["500", "503", "reset", "garbage", "empty"])
def test_transient_fault_then_success(server, fault):
    server.add_faults([fault])
    client = make_client(server)
    result = client.chat(MSG)
    assert len(result.choices) == 1 and result.choices[0].text.startswith("Answer 0")
    assert result.requests_sent == 2
    assert len(server.requests) == 2
    assert client.stats["retries"] == 1 and client.stats["failures"] == 0
    client.close()


def test_timeout_then_success(server):
    server.add_faults(["timeout"])
    client = make_client(server, timeout=0.5)
    started = time.monotonic()
    result = client.chat(MSG)
    elapsed = time.monotonic() - started
    assert result.choices and client.stats["retries"] == 1
    assert 0.5 <= elapsed < 3.0
    client.close()


def test_retries_exhausted_raise_teacher_error(server):
    server.add_faults(["500"] * 3)
    client = make_client(server, max_retries=2)
    with pytest.raises(TeacherError) as info:
        client.chat(MSG)
    assert info.value.status == 500 and info.value.retryable
    assert "3 attempt(s)" in str(info.value)
    assert len(server.requests) == 3
    stats = client.stats
    assert stats["requests"] == 3 and stats["retries"] == 2 and stats["failures"] == 1
    client.close()


def test_nothing_listening_gives_a_clear_error():
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = TeacherClient(f"http://127.0.0.1:{port}/v1", "m", provider="local", max_retries=1, backoff_base=0.01)
    with pytest.raises(TeacherError) as info:
        client.chat(MSG)
    message = str(info.value)
    assert "connection error" in message and "2 attempt(s)" in message
    assert "TEACHER_MODEL_BASE_URL" in message and "ktools serve-teacher" in message
    assert info.value.status is None and info.value.retryable
    client.close()


def test_client_error_is_not_retried(server):
    server.add_faults(["404"])
    client = make_client(server)
    with pytest.raises(TeacherError) as info:
        client.chat(MSG)
    assert info.value.status == 404 and not info.value.retryable
    assert "TEACHER_MODEL_BASE_URL" in str(info.value)
    assert len(server.requests) == 1
    client.close()


def test_n_fans_out_when_fewer_choices_come_back(server):
    server.add_faults(["fewer:1"])
    client = make_client(server)
    result = client.chat(MSG, SamplingParams(seed=10), n=3)
    assert len(result.choices) == 3
    bodies = server.requests
    assert bodies[0]["n"] == 3
    assert [b.get("n") for b in bodies[1:]] == [None, None]
    # the singles get distinct seeds, so they are not three copies of one sample
    assert sorted(b["seed"] for b in bodies) == [10, 11, 12]
    assert len({c.text for c in result.choices}) == 3
    assert result.requests_sent == 3
    assert client.stats["fanout_requests"] == 2
    client.close()


def test_n_fans_out_when_server_ignores_n():
    with FakeOpenAIServer(supports_n=False) as srv:
        client = make_client(srv)
        result = client.chat(MSG, n=4)
        assert len(result.choices) == 4 and result.requests_sent == 4
        client.close()


def test_empty_choice_list_for_n_request_fans_out(server):
    server.add_faults(["empty"])
    client = make_client(server)
    result = client.chat(MSG, n=2)
    assert len(result.choices) == 2 and len(server.requests) == 3
    client.close()


def test_provider_known_to_ignore_n_fans_out_up_front(server):
    client = TeacherClient(server.base_url, "claude-x", api_key=SECRET, provider="anthropic")
    assert client.supports_n is False
    result = client.chat(MSG, n=3)
    assert len(result.choices) == 3
    assert len(server.requests) == 3 and all("n" not in b for b in server.requests)
    client.close()


def test_concurrency_never_exceeds_the_limit():
    with FakeOpenAIServer(latency=0.05) as srv:
        client = make_client(srv, max_concurrency=7)

        async def many():
            return await asyncio.gather(*(client.achat(MSG, n=2) for _ in range(60)))

        results = run_sync(many())
        assert len(results) == 60
        assert srv.max_in_flight == 7  # reached, never exceeded
        assert client.stats["peak_concurrency"] == 7
        client.close()


def test_limit_is_shared_between_loops_and_threads():
    """Sync calls (client loop thread) and async calls (another loop) share one limit."""
    with FakeOpenAIServer(latency=0.03) as srv:
        client = make_client(srv, max_concurrency=5)
        errors: list[BaseException] = []

        def sync_worker():
            try:
                for _ in range(10):
                    client.chat(MSG)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sync_worker) for _ in range(4)]
        for t in threads:
            t.start()

        async def async_part():
            await asyncio.gather(*(client.achat(MSG) for _ in range(40)))
            for t in threads:
                await asyncio.to_thread(t.join)
            await client.aclose()  # this loop ends here: close its pool while it runs

        asyncio.run(async_part())
        assert not errors
        assert len(srv.requests) == 80
        assert srv.max_in_flight <= 5
        assert client.stats["peak_concurrency"] <= 5
        client.close()


def test_cancelled_waiters_do_not_leak_slots(server):
    server.latency = 0.2
    client = make_client(server, max_concurrency=2)

    async def scenario():
        tasks = [asyncio.create_task(client.achat(MSG)) for _ in range(6)]
        await asyncio.sleep(0.05)
        for t in tasks[2:]:
            t.cancel()  # 4 waiting for a slot
        await asyncio.gather(*tasks, return_exceptions=True)
        # both slots must be free again
        await asyncio.gather(*(client.achat(MSG) for _ in range(2)))
        await client.aclose()

    asyncio.run(scenario())
    assert client._limiter.in_use == 0
    client.close()


def test_sync_chat_inside_a_running_event_loop(server):
    """What a Jupyter cell does: call the sync API while a loop runs in this thread."""
    client = make_client(server)

    async def notebook_cell():
        asyncio.get_running_loop()  # a loop is running here
        first = client.chat(MSG)
        second = run_sync(client.achat(MSG, n=2))
        return first, second

    first, second = asyncio.run(notebook_cell())
    assert first.choices and len(second.choices) == 2
    client.close()


def test_run_sync_in_a_plain_script():
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    assert run_sync(add(2, 3)) == 5
    assert run_sync(add(1, 1)) == 2


def test_async_use_on_several_loops(server):
    client = make_client(server)
    async def one_run():
        try:
            return await client.achat(MSG)
        finally:
            await client.aclose()

    for _ in range(3):  # each asyncio.run is a new loop: the client must not reuse a dead pool
        result = asyncio.run(one_run())
        assert result.choices
    client.close()


def test_proxy_or_https_uses_the_stock_transport(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert not TeacherClient("http://gpu-box:8000/v1", "m").fast_transport
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.delenv("http_proxy", raising=False)
    assert TeacherClient("http://gpu-box:8000/v1", "m").fast_transport
    assert not TeacherClient("https://api.example.com/v1", "m").fast_transport


def test_the_lean_transport_is_plain_http_only():
    # No TLS branch to keep untested: asking for it over https is an error that says what to do,
    # and the transport itself refuses an https URL before opening a connection.
    import httpx2

    from ktools.llm.transport import FastAsyncTransport

    with pytest.raises(ValueError, match="fast_transport=True needs plain http"):
        TeacherClient("https://api.example.com/v1", "m", fast_transport=True)

    async def scenario():
        async with httpx2.AsyncClient(transport=FastAsyncTransport()) as http:
            await http.get("https://127.0.0.1:9/x")

    with pytest.raises(httpx2.UnsupportedProtocol, match="plain http only"):
        asyncio.run(scenario())


def test_stock_httpx_transport_path(server):
    server.add_faults(["500"])
    client = make_client(server, fast_transport=False)
    assert client.chat(MSG, n=2).choices[1].text.startswith("Answer 1")
    assert client.stats["retries"] == 1
    client.close()


def test_reasoning_fields_and_think_blocks():
    def responder(body, index):
        if index == 0:
            return {"text": "The answer is 4.", "reasoning": "2+2=4"}
        if index == 1:
            return "<think>\nadd them\n</think>\n\nIt is 4."
        return {"text": "<think>still thinking about", "finish_reason": "length"}

    with FakeOpenAIServer(responder=responder) as srv:
        client = make_client(srv)
        result = client.chat(MSG, n=3)
        a, b, c = result.choices
        assert (a.text, a.reasoning) == ("The answer is 4.", "2+2=4")
        assert (b.text, b.reasoning) == ("It is 4.", "add them")
        assert (c.text, c.reasoning, c.truncated) == ("", "still thinking about", True)
        client.close()
    assert split_reasoning("no think here") == ("no think here", None)


def test_truncated_completion_is_flagged(server):
    server.add_faults(["truncate"])
    client = make_client(server)
    choice = client.chat(MSG).choices[0]
    assert choice.finish_reason == "length" and choice.truncated
    client.close()


def test_key_never_in_logs_exceptions_or_repr(server, caplog):
    caplog.set_level(logging.DEBUG)
    server.add_faults(["500", "401"])
    client = make_client(server)
    with pytest.raises(TeacherError) as info:
        client.chat(MSG)
    assert info.value.status == 401
    assert "TEACHER_MODEL_API_KEY" in str(info.value)
    assert caplog.records, "expected log records (retry warning, openai/httpx debug)"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "retry 1/3" in logged
    for text in (logged, caplog.text, str(info.value), repr(info.value), repr(client), str(client.stats)):
        assert SECRET not in text
    client.close()


def test_from_settings_requires_a_key_for_openai(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = load_settings(environ={"TEACHER_PROVIDER": "openai", "TEACHER_MODEL_NAME": "gpt-x"},
                             repo_root=tmp_path)
    with pytest.raises(ConfigError, match="TEACHER_MODEL_API_KEY"):
        TeacherClient.from_settings(settings)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # the provider's own variable is a fallback
    client = TeacherClient.from_settings(settings)
    assert client.base_url == "https://api.openai.com/v1" and client.model == "gpt-x"
    assert not client.fast_transport  # https goes through the stock httpx transport
    assert SECRET not in repr(client)


def test_from_settings_uses_settings_values(server, tmp_path):
    settings = load_settings(environ={"TEACHER_PROVIDER": "vllm", "TEACHER_MODEL_BASE_URL": server.base_url,
                                      "TEACHER_MODEL_NAME": "served", "MAX_CONCURRENCY": "3",
                                      "TEACHER_REQUEST_TIMEOUT": "7", "TEACHER_MAX_RETRIES": "1"},
                             repo_root=tmp_path)
    client = TeacherClient.from_settings(settings)
    assert (client.provider, client.model, client.max_concurrency, client.timeout, client.max_retries) == (
        "vllm", "served", 3, 7.0, 1)
    assert client.chat(MSG).choices
    assert server.requests[0]["model"] == "served"
    client.close()


def test_from_settings_local_starts_the_embedded_teacher(server, tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("ktools.llm.local.teacher")
    fake.ensure_local_teacher = lambda base_url, **kw: calls.append(base_url)
    monkeypatch.setitem(sys.modules, "ktools.llm.local.teacher", fake)
    import ktools.llm.local

    # `from ktools.llm.local import teacher` reads the package attribute once an earlier
    # test has imported the real module, so replace it there too (order-independent).
    monkeypatch.setattr(ktools.llm.local, "teacher", fake, raising=False)
    settings = load_settings(environ={"TEACHER_PROVIDER": "local", "TEACHER_MODEL_BASE_URL": server.base_url},
                             repo_root=tmp_path)
    client = TeacherClient.from_settings(settings)
    assert calls == [server.base_url]
    assert client.model == "SmolLM2-135M-Instruct" and client.provider == "local"
    client.close()


# --- the lean transport's HTTP/1.1 parsing (framings the fake server does not produce) ---

def _parse_bytes(*pieces: bytes):
    conn = _Connection(asyncio.new_event_loop())
    result = None
    for piece in pieces:
        conn.buf += piece
        result = conn._parse()
    conn.loop.close()
    return result, conn


def test_transport_parses_chunked_bodies_split_anywhere():
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
           b"5\r\n{\"a\":\r\n4;ext=1\r\n 12}\r\n0\r\n\r\n")
    for cut in range(1, len(raw)):
        result, conn = _parse_bytes(raw[:cut], raw[cut:])
        assert result is not None, cut
        status, _, headers, body = result
        assert status == 200 and body == b'{"a": 12}' and conn.keep_alive


def test_transport_handles_interim_and_close_framing():
    result, conn = _parse_bytes(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                b"Connection: close\r\n\r\nok")
    assert result[0] == 200 and result[3] == b"ok" and not conn.keep_alive


def test_transport_decodes_gzip_responses():
    payload = gzip.compress(b'{"choices": []}')

    async def scenario():
        import httpx2

        from ktools.llm.transport import FastAsyncTransport

        async def handle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
                         + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with httpx2.AsyncClient(transport=FastAsyncTransport()) as http:
            response = await http.get(f"http://127.0.0.1:{port}/x")
        srv.close()
        return response

    response = asyncio.run(scenario())
    assert response.json() == {"choices": []}


def test_lean_client_builds_the_request_httpx2_would():
    import httpx2

    from ktools.llm.transport import FastAsyncTransport, LeanAsyncClient

    async def scenario():
        lean = LeanAsyncClient(FastAsyncTransport(), timeout=7.0)
        stock = httpx2.AsyncClient(timeout=7.0, trust_env=False)
        args = dict(content=b'{"a": 1}', timeout=httpx2.Timeout(3.0),
                    headers=[("Accept", "application/json"), ("Content-Type", "application/json"),
                             ("Authorization", "Bearer k"), ("user-agent", "ua/1")])
        url = "http://127.0.0.1:9/v1/chat/completions"
        mine, theirs = lean.build_request("POST", url, **args), stock.build_request("POST", url, **args)
        again = lean.build_request("POST", url, **args)  # cached URL and timeout
        plain = lean.build_request("GET", "http://h:1/v1/models", params={"q": "1"})  # httpx2's own path
        await lean.aclose()
        await stock.aclose()
        return mine, theirs, again, plain

    mine, theirs, again, plain = asyncio.run(scenario())
    for request in (mine, again):
        assert request.url == theirs.url and request.method == theirs.method
        assert sorted(request.headers.multi_items()) == sorted(theirs.headers.multi_items())
        assert request.headers.raw[0] == (b"Host", b"127.0.0.1:9")
        assert request.content == theirs.content and request.extensions == theirs.extensions
    assert plain.url.params["q"] == "1" and plain.method == "GET"


def test_lean_client_sends_and_reads_like_httpx2():
    """One real exchange: bytes on the wire, gzip body decoded, cookies kept, redirects not followed."""
    from ktools.llm.transport import FastAsyncTransport, LeanAsyncClient

    payload = gzip.compress(b'{"ok": true}')
    heads: list[bytes] = []

    async def scenario():
        async def handle(reader, writer):
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                heads.append(head)
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")) or 0)
                await reader.readexactly(length)
                if b"/moved" in head.split(b"\r\n")[0]:
                    writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /v1/x\r\nContent-Length: 0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nSet-Cookie: s=1; Path=/\r\n"
                                 b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
                await writer.drain()
            writer.close()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with LeanAsyncClient(FastAsyncTransport(), timeout=5.0) as http:
            request = http.build_request("POST", f"http://127.0.0.1:{port}/v1/x", content=b"{}",
                                         headers=[("Content-Type", "application/json")])
            first = await http.send(request)
            second = await http.post(f"http://127.0.0.1:{port}/v1/x", content=b"{}")  # with the cookie
            moved = await http.send(http.build_request("POST", f"http://127.0.0.1:{port}/v1/moved", content=b""))
        srv.close()
        return first, second, moved

    first, second, moved = asyncio.run(scenario())
    assert first.json() == {"ok": True} and first.request is not None and first.elapsed.total_seconds() >= 0
    assert heads[0].startswith(b"POST /v1/x HTTP/1.1\r\n") and b"\r\nContent-Length: 2\r\n" in heads[0]
    assert b"\r\ncookie: s=1" in heads[1].lower()
    assert moved.status_code == 307 and moved.next_request is not None
    assert moved.next_request.url.path == "/v1/x" and len(heads) == 3


def test_unencoded_bodies_skip_the_decoder_and_read_the_same():
    import httpx2

    from ktools.llm import transport

    assert transport._PREREAD  # this httpx2 accepts a pre-read body; if not, responses fall back to read()
    request = httpx2.Request("POST", "http://127.0.0.1/v1/x")
    body = '{"text": "caf\u00e9 \u2014 ok"}'.encode()
    for headers in ([(b"Content-Type", b"application/json")], [(b"Content-Encoding", b"identity")]):
        fast = transport._response(200, headers, body, request, b"OK")
        slow = httpx2.Response(200, headers=headers, content=body, request=request)
        assert (fast.content, fast.text, fast.json()) == (slow.content, slow.text, slow.json())
        assert fast.is_closed and fast.request is request
    gz = transport._response(200, [(b"Content-Encoding", b"gzip")], gzip.compress(body), request, b"OK")
    assert gz.content == body


def test_json_fast_path_and_its_fallbacks():
    from ktools.llm.client import _dumps, _loads

    body = {"model": "m", "messages": [{"role": "user", "content": "caf\u00e9 \"q\" \n"}], "temperature": 0.7}
    assert json.loads(_dumps(body)) == body
    assert json.loads(_dumps({"extra": {1: "non-str key"}})) == {"extra": {"1": "non-str key"}}  # json's rules
    assert json.loads(_dumps({"seed": 2**70})) == {"seed": 2**70}
    assert _loads(b'{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    assert _loads(b'{"logprob": -Infinity}') == {"logprob": float("-inf")}  # accepted as the json module does
    with pytest.raises(ValueError):
        _loads(b"<html>not json")
