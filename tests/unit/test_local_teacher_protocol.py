"""The embedded teacher without the real model: wire format, HTTP server (fake backend),
sampling, the batch KV cache and the batching engine (tiny random Llama), lifecycle checks."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from concurrent.futures import Future

import httpx
import pytest
import torch

from ktools.llm.local import lifecycle, protocol
from ktools.llm.local.engine import BatchEngine, Completion, GenerationRequest, GenerationResult
from ktools.llm.local.kv import BatchKV
from ktools.llm.local.protocol import RequestError, parse_chat_request
from ktools.llm.local.sampling import choose_tokens
from ktools.llm.local.server import TeacherServer

MSG = [{"role": "user", "content": "hello"}]


# --- protocol ---------------------------------------------------------------------------

def test_defaults_and_fields():
    req = parse_chat_request({"messages": MSG, "n": 3, "temperature": 0, "top_p": 0.9, "max_tokens": 7,
                              "stop": "END", "seed": 4, "model": "anything"})
    assert (req.n, req.temperature, req.top_p, req.max_tokens, req.stop, req.seed) == (3, 0.0, 0.9, 7, ("END",), 4)
    assert parse_chat_request({"messages": MSG}).max_tokens == protocol.DEFAULT_MAX_TOKENS
    assert parse_chat_request({"messages": MSG, "max_completion_tokens": 9, "max_tokens": 3}).max_tokens == 9
    assert parse_chat_request({"messages": MSG, "stop": ["a", "b"]}).stop == ("a", "b")


def test_content_parts_and_developer_role():
    req = parse_chat_request({"messages": [{"role": "developer", "content": "sys"},
                                           {"role": "user", "content": [{"type": "text", "text": "a"}, "b"]},
                                           {"role": "assistant", "content": None}]})
    assert req.messages == [{"role": "system", "content": "sys"}, {"role": "user", "content": "ab"},
                            {"role": "assistant", "content": ""}]


@pytest.mark.parametrize("body, param", [
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": MSG, "n": 0}, "n"),
    ({"messages": MSG, "n": "2"}, "n"),
    ({"messages": MSG, "n": True}, "n"),
    ({"messages": MSG, "temperature": 3}, "temperature"),
    ({"messages": MSG, "temperature": "hot"}, "temperature"),
    ({"messages": MSG, "top_p": 0}, "top_p"),
    ({"messages": MSG, "max_tokens": 0}, "max_tokens"),
    ({"messages": MSG, "stop": 5}, "stop"),
    ({"messages": MSG, "seed": 1.5}, "seed"),
    ({"messages": MSG, "stream": True}, "stream"),
])
def test_bad_requests_name_the_field(body, param):
    with pytest.raises(RequestError) as info:
        parse_chat_request(body)
    assert info.value.status == 400
    assert info.value.param == param
    assert info.value.body()["error"]["type"] == "invalid_request_error"


def test_completion_body_shape():
    body = protocol.completion_body("m", [("a", "stop"), ("b", "length")], 10, 5)
    assert [c["finish_reason"] for c in body["choices"]] == ["stop", "length"]
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert body["choices"][1]["message"] == {"role": "assistant", "content": "b"}


# --- HTTP server over a fake backend -----------------------------------------------------

class FakeBackend:
    """Echoes the last user message; honours n, stop and max_tokens like the engine does."""

    context_window = 200

    def __init__(self, delay: float = 0.05):
        self.delay = delay
        self.requests: list[GenerationRequest] = []

    def encode(self, messages):
        return [ord(c) % 100 for c in messages[-1]["content"]]

    def submit(self, request: GenerationRequest) -> Future:
        self.requests.append(request)

        def answer() -> None:
            time.sleep(self.delay)
            if request.cancelled:
                request.future.cancel()
                return
            completions = []
            for i in range(request.n):
                text = f"echo {i} " + "x" * 50
                reason = "stop"
                if request.stop and request.stop[0] in text:
                    text = text[: text.index(request.stop[0])]
                elif len(text) > request.max_tokens:
                    text, reason = text[: request.max_tokens], "length"
                completions.append(Completion(text, reason, len(text)))
            request.future.set_result(GenerationResult(completions, len(request.prompt_ids)))

        threading.Thread(target=answer, daemon=True).start()
        return request.future

    def info(self):
        return {"queue": 0}


@pytest.fixture
def fake_server():
    backend = FakeBackend()
    loop = asyncio.new_event_loop()
    server = TeacherServer("127.0.0.1", 0, backend_factory=lambda: backend)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    serving = asyncio.run_coroutine_threadsafe(server.serve_until_stopped(), loop)
    deadline = time.monotonic() + 10
    while not server.ready and time.monotonic() < deadline:
        time.sleep(0.01)
    server.backend_fake = backend
    yield server
    loop.call_soon_threadsafe(server.request_stop)
    serving.result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def test_http_routes_and_errors(fake_server):
    with httpx.Client() as client:  # one keep-alive connection across good and bad requests
        health = client.get(_url(fake_server, "/health")).json()
        assert health["service"] == lifecycle.SERVICE_NAME and health["status"] == "ok"
        models = client.get(_url(fake_server, "/v1/models")).json()
        assert models["data"][0]["id"] == "SmolLM2-135M-Instruct"
        ok = client.post(_url(fake_server, "/v1/chat/completions"),
                         json={"model": "any", "messages": MSG, "n": 2, "max_tokens": 10})
        assert ok.status_code == 200
        body = ok.json()
        assert len(body["choices"]) == 2 and body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["prompt_tokens"] == 5 and body["usage"]["completion_tokens"] == 20
        stopped = client.post(_url(fake_server, "/v1/chat/completions"), json={"messages": MSG, "stop": ["0"]})
        assert stopped.json()["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "echo "},
                                                "finish_reason": "stop", "logprobs": None}
        bad_json = client.post(_url(fake_server, "/v1/chat/completions"), content=b"{oops",
                               headers={"Content-Type": "application/json"})
        assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
        assert client.post(_url(fake_server, "/v1/chat/completions"), json={"n": 1}).status_code == 400
        too_long = client.post(_url(fake_server, "/v1/chat/completions"),
                               json={"messages": [{"role": "user", "content": "y" * 300}]})
        assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
        assert client.get(_url(fake_server, "/v1/chat/completions")).status_code == 405
        assert client.get(_url(fake_server, "/nowhere")).status_code == 404
        # still serving after all of that
        assert client.post(_url(fake_server, "/v1/chat/completions"), json={"messages": MSG}).status_code == 200


def test_max_tokens_clamped_to_context(fake_server):
    httpx.post(_url(fake_server, "/v1/chat/completions"),
               json={"messages": [{"role": "user", "content": "z" * 150}], "max_tokens": 1000})
    assert fake_server.backend_fake.requests[-1].max_tokens == 50


def test_malformed_http_does_not_kill_the_server(fake_server):
    with socket.create_connection(("127.0.0.1", fake_server.port)) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        assert b"400" in sock.recv(1000).split(b"\r\n")[0]
    with socket.create_connection(("127.0.0.1", fake_server.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")  # then hang up
    chunked = b'{"messages": [{"role": "user", "content": "hi"}]}'
    with socket.create_connection(("127.0.0.1", fake_server.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\n\r\n"
                     + f"{len(chunked):x}\r\n".encode() + chunked + b"\r\n0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    assert httpx.get(_url(fake_server, "/health")).status_code == 200


def test_client_disconnect_cancels_generation(fake_server):
    fake_server.backend_fake.delay = 1.0
    body = json.dumps({"messages": MSG}).encode()
    with socket.create_connection(("127.0.0.1", fake_server.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode()
                     + b"\r\n\r\n" + body)
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    request = fake_server.backend_fake.requests[-1]
    while not request.cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert request.cancelled


def test_concurrent_requests(fake_server):
    async def many() -> list[int]:
        async with httpx.AsyncClient() as client:
            responses = await asyncio.gather(*(client.post(_url(fake_server, "/v1/chat/completions"),
                                                           json={"messages": MSG}) for _ in range(40)))
        return [r.status_code for r in responses]

    assert asyncio.run(many()) == [200] * 40


# --- lifecycle -------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probe_and_ensure_against_ours_and_foreign(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("KTOOLS_CACHE_DIR", str(tmp_path))
    ours = f"http://127.0.0.1:{fake_server.port}/v1"
    assert lifecycle.probe(ours).ready
    assert lifecycle.ensure_local_teacher(ours) == ours
    closed = f"http://127.0.0.1:{_free_port()}/v1"
    assert not lifecycle.probe(closed).reachable
    from ktools.testing.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as foreign:
        health = lifecycle.probe(foreign.base_url)
        assert health.reachable and not health.ours
        with pytest.raises(lifecycle.LocalTeacherError, match="Something else is answering"):
            lifecycle.ensure_local_teacher(foreign.base_url)


def test_remote_url_is_never_started(monkeypatch):
    monkeypatch.setattr(lifecycle, "spawn", lambda *a, **k: pytest.fail("must not spawn for a remote host"))
    with pytest.raises(lifecycle.LocalTeacherError, match="not on this machine"):
        lifecycle.ensure_local_teacher("http://192.0.2.1:8765/v1", timeout=1)


def test_url_helpers():
    assert lifecycle.split_base_url("http://localhost:9000/v1") == ("localhost", 9000)
    assert lifecycle.server_root("http://127.0.0.1:8765/v1") == "http://127.0.0.1:8765"
    assert lifecycle.is_loopback("http://localhost:1/v1") and not lifecycle.is_loopback("https://api.openai.com/v1")


# --- sampling ---------------------------------------------------------------------------

def test_sampling_greedy_topp_and_seed():
    logits = torch.tensor([[0.0, 5.0, 1.0, 0.0], [3.0, 0.0, 0.0, 2.9], [3.0, -30.0, -30.0, 2.9]])
    temps = torch.tensor([0.0, 1.0, 1.0])
    top_ps = torch.tensor([1.0, 0.01, 1.0])

    def draw(seed: int) -> list[int]:
        gens = [torch.Generator().manual_seed(seed + i) for i in range(3)]
        return choose_tokens(logits, temps, top_ps, gens).tolist()

    first = draw(1)
    assert first[0] == 1  # greedy
    assert first[1] == 0  # top_p tiny -> only the best token
    assert draw(1) == first  # same seeds, same draws
    seen = {draw(s)[2] for s in range(40)}
    assert seen == {0, 3}  # sampling visits both likely tokens, never the unlikely ones


# --- batch KV cache ---------------------------------------------------------------------

def test_kv_merge_select_and_grow():
    a = BatchKV([torch.ones(2, 1, 3, 2)], [torch.ones(2, 1, 3, 2)], 3)
    b = BatchKV([torch.full((1, 1, 5, 2), 2.0)], [torch.full((1, 1, 5, 2), 2.0)], 5)
    a.merge(b)
    assert a.rows == 3 and a.length == 5
    keys = a.keys[0][:, 0, :5, 0]
    assert keys.tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [2, 2, 2, 2, 2]]
    a.select(torch.tensor([0, 1]), drop_left=2)
    assert a.length == 3 and a.keys[0][:, 0, :3, 0].tolist() == [[1, 1, 1], [1, 1, 1]]
    a.ensure_capacity(a.capacity + 1)
    assert a.keys[0][:, 0, :3, 0].tolist() == [[1, 1, 1], [1, 1, 1]]
    a.repeat_rows([2, 1])
    assert a.rows == 3


# --- engine on a tiny random Llama ------------------------------------------------------

class TinyTokenizer:
    pad_token_id = 0
    eos_token_id = 1
    unk_token_id = None

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(f"t{i}" for i in ids if i > 1)

    def convert_tokens_to_ids(self, token):
        return None


@pytest.fixture(scope="module")
def tiny_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         eos_token_id=1, pad_token_id=0)
    return LlamaForCausalLM(config).eval()


def _greedy_reference(model, prompt: list[int], steps: int) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        for _ in range(steps):
            token = int(model(input_ids=ids).logits[0, -1].argmax())
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return ids[0, len(prompt):].tolist()


@pytest.mark.parametrize("options", [{"lean": False}, {"lean": True}, {"lean": True, "draft_tokens": 3}],
                         ids=["generic", "lean", "lean+drafts"])
def test_continuous_batching_matches_single_sequence_greedy(tiny_model, options):
    engine = BatchEngine(tiny_model, TinyTokenizer(), max_batch=8, **options)
    assert (engine.lean is not None) == options["lean"]
    engine.eos_ids = set()  # run every row to its max_tokens so lengths differ only by request
    engine.start()
    try:
        # The second prompt repeats itself, so the drafter has n-grams to propose.
        prompts = [[5, 6, 7], [8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10], [20, 21]]
        budgets = [12, 5, 9]
        first = engine.submit(GenerationRequest(prompts[0], temperature=0, max_tokens=budgets[0]))
        time.sleep(0.05)  # let it start decoding so the others join a running batch
        rest = [engine.submit(GenerationRequest(p, n=2, temperature=0, max_tokens=b))
                for p, b in zip(prompts[1:], budgets[1:], strict=True)]
        results = [f.result(30) for f in (first, *rest)]
    finally:
        engine.shutdown()
    for prompt, budget, result in zip(prompts, budgets, results, strict=True):
        expected = " ".join(f"t{i}" for i in _greedy_reference(tiny_model, prompt, budget) if i > 1)
        assert all(c.text == expected and c.finish_reason == "length" for c in result.completions)
        assert result.prompt_tokens == len(prompt)
    if options.get("draft_tokens"):
        assert engine.stats["drafted"] > 0  # the speculative path ran


def test_lean_forward_matches_transformers_logits(tiny_model):
    from ktools.llm.local.lean import LeanLlama, decode_mask

    lean = LeanLlama(tiny_model)
    prompts = [[5, 6, 7, 8], [9, 10]]
    kv, logits = lean.prefill(prompts, 16)
    with torch.inference_mode():
        for prompt, row in zip(prompts, logits, strict=True):
            expected = tiny_model(input_ids=torch.tensor([prompt])).logits[0, -1]
            torch.testing.assert_close(row, expected, atol=1e-4, rtol=1e-4)
        # One decode step with two inputs per row (a token and a draft) against the full sequence.
        pad = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
        valid = torch.ones((2, 2), dtype=torch.bool)
        ids = torch.tensor([[11, 12], [13, 14]])
        positions = torch.tensor([[4, 5], [2, 3]])
        out = lean.forward(ids, positions, kv, decode_mask(pad, valid), keep=valid)
        for i, prompt in enumerate(prompts):
            full = tiny_model(input_ids=torch.tensor([prompt + ids[i].tolist()])).logits[0, -2:]
            torch.testing.assert_close(out[2 * i : 2 * i + 2], full, atol=1e-4, rtol=1e-4)


def test_drafter_proposes_what_followed_the_last_ngram():
    from ktools.llm.local.speculative import Drafter

    drafter = Drafter([1, 2, 3, 4, 5, 6, 1, 2], ngram=2)
    assert drafter.propose(3) == [3, 4, 5]
    drafter.append(3)  # "2 3" was last seen followed by 4
    assert drafter.propose(2) == [4, 5]
    drafter.append(9)
    assert drafter.propose(2) == []


def test_speculative_verification_keeps_the_distribution():
    from ktools.llm.local.speculative import verify

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2, 1e-9], [0.25, 0.25, 0.25, 0.25]]))
    generator = torch.Generator().manual_seed(3)
    counts = torch.zeros(4)
    trials = 4000
    for _ in range(trials):
        (accepted, token), = verify(logits, [[1]], [1.0], [1.0], [generator])
        counts[accepted[0] if accepted else token] += 1
    torch.testing.assert_close(counts / trials, torch.tensor([0.5, 0.3, 0.2, 0.0]), atol=0.03, rtol=0)
    # Greedy: a draft is kept only where it is the argmax; the next token is the argmax.
    assert verify(logits, [[0]], [0.0], [1.0], [generator]) == [([0], 0)]
    assert verify(logits, [[2]], [0.0], [1.0], [generator]) == [([], 0)]


def test_nucleus_from_top_candidates_equals_full_sort():
    from ktools.llm.local import sampling

    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(6, 500) * 3, dim=-1)
    top_p = torch.tensor([0.1, 0.5, 0.9, 0.95, 0.99, 1.0])
    torch.testing.assert_close(sampling._nucleus(probs, top_p), sampling._nucleus_full(probs, top_p))
    sampling_k = sampling.NUCLEUS_CANDIDATES
    try:
        sampling.NUCLEUS_CANDIDATES = 5  # forces the fallback for wide nuclei
        torch.testing.assert_close(sampling._nucleus(probs, top_p), sampling._nucleus_full(probs, top_p))
    finally:
        sampling.NUCLEUS_CANDIDATES = sampling_k


def test_engine_seed_stop_and_eos(tiny_model):
    engine = BatchEngine(tiny_model, TinyTokenizer(), max_batch=4).start()
    try:
        def run(**kw) -> GenerationResult:
            return engine.submit(GenerationRequest([3, 4, 5], temperature=1.0, max_tokens=20, **kw)).result(30)

        a, b = run(seed=11, n=3), run(seed=11, n=3)
        assert [c.text for c in a.completions] == [c.text for c in b.completions]
        assert len({c.text for c in a.completions}) > 1  # the n samples differ
        words = a.completions[0].text.split()
        if len(words) >= 2:
            cut = run(seed=11, n=1, stop=(words[1],))
            assert cut.completions[0].finish_reason == "stop"
            assert words[1] not in cut.completions[0].text
        engine.eos_ids = {int(_greedy_reference(tiny_model, [3, 4, 5], 1)[0])}
        eos = engine.submit(GenerationRequest([3, 4, 5], temperature=0, max_tokens=20)).result(30)
        assert eos.completions[0].finish_reason == "stop" and eos.completions[0].completion_tokens == 1
    finally:
        engine.shutdown()


def test_engine_failure_fails_requests_but_keeps_running(tiny_model):
    engine = BatchEngine(tiny_model, TinyTokenizer(), max_batch=4).start()
    try:
        with pytest.raises(IndexError):  # a token id outside the vocabulary
            engine.submit(GenerationRequest([999], temperature=0, max_tokens=3)).result(30)
        ok = engine.submit(GenerationRequest([3, 4], temperature=0, max_tokens=3)).result(30)
        assert ok.completions[0].completion_tokens == 3
        assert engine.stats["errors"] == 1
    finally:
        engine.shutdown()


# --- response_format json_schema on the transformers engine ------------------------------

def test_json_schema_guide_states():
    from ktools.generate.structured import SCHEMAS, judge_schema
    from ktools.llm.local.jsonschema_guide import JsonSchemaGuide, UnsupportedSchema

    facts = JsonSchemaGuide(SCHEMAS["list"][1])
    assert facts.state("") == "prefix"
    assert facts.state('{ "facts": ["a \\"b\\"", "c') == "prefix"
    assert facts.state('{"facts": ["a", "c"]}') == "complete"
    assert facts.state('{"facts": ["a", "c"]} ') == "complete"
    assert facts.state('{"fact') == "prefix"
    assert facts.state('{"other": []}') == "invalid"
    assert facts.state('{"facts": [1]}') == "invalid"
    assert facts.state('{"facts": []}x') == "invalid"
    assert facts.state("{" + " " * 40) == "invalid"  # endless whitespace is cut off
    judge = JsonSchemaGuide(judge_schema(5)[1])
    assert judge.state('{"score": 1') == "prefix"  # the document goes on after the score
    assert judge.state('{"score": 7') == "invalid"
    assert judge.state('{"score": 4, "reason": "fine"}') == "complete"
    pairs = JsonSchemaGuide(SCHEMAS["qa_pairs"][1])
    assert pairs.state('{"pairs": [{"question": "q", "answer": "a"}]}') == "complete"
    assert pairs.state('{"pairs": [{"answer": "a"}]}') == "invalid"
    anything = JsonSchemaGuide.from_response_format({"type": "json_object"})
    assert anything.state('{"x": [1, {"y": null}], "z": -2.5}') == "complete"
    assert anything.state("[1]") == "invalid"
    assert JsonSchemaGuide.from_response_format({"type": "text"}) is None
    with pytest.raises(UnsupportedSchema):
        JsonSchemaGuide({"anyOf": [{"type": "string"}]})


class CharTokenizer(TinyTokenizer):
    """Ids 2.. are single characters, enough to spell JSON."""

    CHARS = '{}[]":, 0123456789abcdefghijklmnopqrstuvwxyz.-_ABCDEFGHIJKLMNO'

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.CHARS[i - 2] for i in ids if 2 <= i < 2 + len(self.CHARS))


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "generic"])
def test_engine_honours_a_json_schema(tiny_model, lean):
    import json

    from ktools.llm.local.jsonschema_guide import JsonSchemaGuide

    schema = {"type": "object", "properties": {"score": {"type": "integer", "enum": [0, 1, 2, 3]},
                                               "ok": {"type": "boolean"}},
              "required": ["score", "ok"], "additionalProperties": False}
    engine = BatchEngine(tiny_model, CharTokenizer(), max_batch=4, lean=lean).start()
    try:
        guided = [engine.submit(GenerationRequest([3, 4, 5], temperature=t, max_tokens=60, seed=7, n=2,
                                                  grammar=JsonSchemaGuide(schema))) for t in (0.0, 1.0)]
        plain = engine.submit(GenerationRequest([3, 4, 5], temperature=0, max_tokens=10))
        results = [f.result(60) for f in guided]
        assert plain.result(60).completions[0].completion_tokens == 10  # unguided rows share the batch
    finally:
        engine.shutdown()
    for result in results:
        for completion in result.completions:
            assert completion.finish_reason == "stop", completion
            value = json.loads(completion.text)
            assert value["score"] in (0, 1, 2, 3) and isinstance(value["ok"], bool)


def test_idle_engine_gathers_a_burst_into_one_prefill(tiny_model):
    engine = BatchEngine(tiny_model, TinyTokenizer(), max_batch=8, gather_seconds=0.3).start()
    try:
        futures = []
        for prompt in ([3, 4], [5, 6, 7], [8]):
            futures.append(engine.submit(GenerationRequest(prompt, temperature=0, max_tokens=4)))
            time.sleep(0.05)  # a burst arriving over 0.1 s, as HTTP requests do
        for future in futures:
            future.result(30)
        assert engine.stats["prefills"] == 1
    finally:
        engine.shutdown()
