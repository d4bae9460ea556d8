"""A scripted OpenAI-compatible server on 127.0.0.1 for tests and benchmarks.

    with FakeOpenAIServer(latency=0.2, faults=["429:1", "500", "ok"]) as server:
        client = TeacherClient(server.base_url, "fake-model")
        ...
        server.requests        # JSON bodies received (chat completions), in arrival order
        server.max_in_flight   # the most chat requests it ever held at once

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) over a raw
asyncio Protocol: no web framework, so one core serves several thousand
requests per second and a benchmark measures the client, not the server. Latency
is a timer per request, not a sleeping task.

`rate_limit=(N, S)` makes it a provider with a rate limit: at most N chat requests per S
seconds, `x-ratelimit-remaining-requests` / `-reset-requests` on every answer, and a 429
with `Retry-After` for each request over the limit.

`capacity=N` (`--capacity N`) makes it a server of limited capacity, like one vLLM
replica: at most N chat requests are worked on at once (each for `latency`), the
rest wait in arrival order, so a client sending more only queues.

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (honours `n` unless
`supports_n=False`; proper `usage`, `finish_reason`), and `GET /_stats` (counters,
for the subprocess mode).

`responder(body, index) -> str | dict` makes the text of choice `index` (0..n-1) of
a request; a dict may carry "text", "finish_reason" and "reasoning" (sent as
`message.reasoning_content`, or the field named by "reasoning_field", e.g. "reasoning").
Reasoning counts against `max_tokens` before the answer, as on a real server. It can
return anything, e.g. malformed JSON text. `ktools.testing.provider_fakes` has responders
that behave like particular providers (thinking models, JSON schema, no `n`).

Faults are consumed one per chat request, in order (then "ok" forever):
    "ok"          normal answer
    "429[:S]"     429 with `Retry-After: S` (seconds; default 1)
    "429ms:MS"    429 with `retry-after-ms: MS`
    "429date:S"   429 with `Retry-After` as an HTTP date S seconds ahead
    "500", "503", any other 3-digit status: that status with an error body
    "reset"       connection reset (RST) without an answer
    "timeout"     never answers (hangs until the client gives up)
    "slow:S"      answers after S seconds instead of the server latency
    "empty"       200 with an empty choice list
    "fewer:K"     200 with only K choices whatever `n` asked
    "truncate"    every choice cut short with finish_reason "length"
    "garbage"     200 whose body is not JSON

Run standalone (a separate process, for benchmarks):
    python -m ktools.testing.fake_openai --port 0 --latency 0.2 [--responder mod:fn] [--log FILE]
prints `FAKE_OPENAI_URL=http://127.0.0.1:PORT/v1` once listening; `--log` appends one
JSON line per chat request body received.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import email.utils
import importlib
import json
import logging
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

Responder = Callable[[dict[str, Any], int], "str | dict[str, Any]"]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 408: "Request Timeout",
            429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_MAX_HEAD = 64 * 1024


def default_responder(body: dict[str, Any], index: int) -> str:
    """A deterministic answer naming the choice index and the start of the last user message."""
    messages = body.get("messages") or [{}]
    last = messages[-1].get("content", "") if isinstance(messages[-1], dict) else ""
    if not isinstance(last, str):
        last = json.dumps(last)
    seed = body.get("seed")
    return f"Answer {index} to: {last[:60]}" + (f" [seed {seed}]" if seed is not None else "")


def echo_responder(body: dict[str, Any], index: int) -> str:
    """The request body as JSON text (to check what a client sent): `--responder ktools.testing.fake_openai:echo_responder`."""
    return json.dumps(body, ensure_ascii=False)


def _count_words(messages: Any) -> int:
    total = 0
    if isinstance(messages, list):
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                total += len(content.split()) + 1
            elif content is not None:
                total += len(json.dumps(content).split())
    return total


def _parse_fault(spec: str) -> tuple[str, float | int | None]:
    spec = spec.strip().lower()
    kind, _, arg = spec.partition(":")
    if kind in {"ok", "reset", "timeout", "hang", "empty", "truncate", "garbage"}:
        return ("timeout" if kind == "hang" else kind), None
    if kind in {"429ms", "429date", "slow"}:
        return kind, float(arg)
    if kind == "fewer":
        return kind, int(arg)
    if kind.isdigit() and len(kind) == 3:
        return "status", (int(kind), float(arg) if arg else None)
    raise ValueError(f"unknown fault spec {spec!r}; see ktools.testing.fake_openai docs")


class _Connection(asyncio.Protocol):
    """One client connection: parse requests one at a time, answer via the server."""

    __slots__ = ("server", "transport", "buf", "busy", "closed", "pending", "holds_slot")

    def __init__(self, server: _ServerCore):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False  # a request is being answered (HTTP/1.1: answers go in order)
        self.closed = False
        self.pending: asyncio.TimerHandle | None = None
        self.holds_slot = False  # counted in the server's capacity

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.busy:
            # A hung or still-delayed request whose client went away.
            self.busy = False
            self.server.in_flight -= 1
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        self.server.end_slot(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self.process()

    def process(self) -> None:
        while not self.busy and not self.closed:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > _MAX_HEAD:
                    self.reply(431, b'{"error":{"message":"headers too large"}}', keep_alive=False)
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                self.reply(400, b'{"error":{"message":"bad request line"}}', keep_alive=False)
                return
            length = 0
            keep_alive = True
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    keep_alive = False
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    self.reply(501, b'{"error":{"message":"chunked bodies not supported"}}', keep_alive=False)
                    return
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = bytes(self.buf[end + 4:total])
            del self.buf[:total]
            self.busy = True
            self.server.handle(self, method, target, body, keep_alive)

    def reply(self, status: int, payload: bytes, headers: Iterable[tuple[str, str]] = (),
              keep_alive: bool = True, content_type: str = "application/json") -> None:
        if self.closed or self.transport is None:
            return
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                f"content-type: {content_type}", f"content-length: {len(payload)}"]
        head.extend(f"{k}: {v}" for k, v in headers)
        if not keep_alive:
            head.append("connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        self.busy = False
        if not keep_alive:
            self.transport.close()
            self.closed = True
        elif self.buf:
            self.process()

    def reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0), like a crashed upstream."""
        if self.transport is None or self.closed:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()


class _ServerCore:
    """State and request handling; lives on the server's event loop."""

    def __init__(self, responder: Responder | None, latency: float, faults: Iterable[str] | None,
                 supports_n: bool, model: str, record: bool, log_file: IO[str] | None, capacity: int = 0,
                 rate_limit: tuple[int, float] | None = None):
        self.responder = responder or default_responder
        self.latency = float(latency)
        self.capacity = int(capacity or 0)  # 0: unlimited
        self.working = 0  # requests holding a capacity slot
        self.queue: collections.deque[tuple[_Connection, dict[str, Any], tuple[str, Any], bool]] = (
            collections.deque())
        self.supports_n = supports_n
        self.model = model
        self.record = record
        self.log_file = log_file
        self.lock = threading.Lock()
        self.faults: collections.deque[tuple[str, Any]] = collections.deque(
            _parse_fault(f) for f in (faults or ()))
        self.requests: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each chat request
        self.connections: set[_Connection] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.chat_requests = 0
        self.answered = 0
        self.counter = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        # (requests, window seconds): a provider's rate limit - x-ratelimit-* headers on every
        # answer, 429 with Retry-After for a request over the limit.
        self.rate_limit = rate_limit
        self.rate_window: collections.deque[float] = collections.deque()
        self.rate_limited = 0

    # --- routing ---
    def handle(self, conn: _Connection, method: str, target: str, body: bytes, keep_alive: bool) -> None:
        path = target.split("?", 1)[0].rstrip("/")
        if method == "POST" and path.endswith("/chat/completions"):
            self.chat(conn, body, keep_alive)
        elif method == "GET" and path.endswith("/models"):
            payload = {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0,
                                                   "owned_by": "ktools-fake"}]}
            conn.reply(200, json.dumps(payload).encode(), keep_alive=keep_alive)
        elif method == "GET" and path == "/_stats":
            conn.reply(200, json.dumps(self.stats()).encode(), keep_alive=keep_alive)
        else:
            conn.reply(404, json.dumps({"error": {"message": f"no route {method} {path}"}}).encode(),
                       keep_alive=keep_alive)

    def stats(self) -> dict[str, Any]:
        return {"chat_requests": self.chat_requests, "answered": self.answered,
                "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                "connections": len(self.connections), "queued": len(self.queue)}

    def chat(self, conn: _Connection, raw: bytes, keep_alive: bool) -> None:
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            conn.reply(400, json.dumps({"error": {"message": f"invalid JSON body: {exc}"}}).encode(),
                       keep_alive=keep_alive)
            return
        with self.lock:
            fault = self.faults.popleft() if self.faults else ("ok", None)
            if self.rate_limit is not None and fault[0] == "ok":
                fault = self._rate_check()
            self.chat_requests += 1
            if self.record:
                self.requests.append(body)
                self.arrivals.append(time.monotonic())
        if self.log_file is not None:
            line = raw.decode("utf-8") if b"\n" not in raw else json.dumps(body)
            self.log_file.write(line + "\n")
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        kind, arg = fault
        if kind == "timeout":
            return  # hold the request: in_flight drops when the client disconnects
        if kind == "reset":
            self.in_flight -= 1
            conn.busy = False
            conn.reset()
            return
        if self.capacity and self.working >= self.capacity:
            self.queue.append((conn, body, fault, keep_alive))
            return
        self.begin(conn, body, fault, keep_alive)

    def _rate_check(self) -> tuple[str, Any]:
        """Count this request against the rate limit: ("ok", None) or a 429 fault with its wait."""
        limit, window = self.rate_limit  # type: ignore[misc]
        now = time.monotonic()
        while self.rate_window and self.rate_window[0] <= now - window:
            self.rate_window.popleft()
        if len(self.rate_window) >= limit:
            self.rate_limited += 1
            return "status", (429, round(self.rate_window[0] + window - now, 3))
        self.rate_window.append(now)
        return "ok", None

    def rate_headers(self) -> list[tuple[str, str]]:
        if self.rate_limit is None:
            return []
        limit, window = self.rate_limit
        now = time.monotonic()
        live = [t for t in self.rate_window if t > now - window]
        # As OpenAI documents it: the time until the limit is back to its initial state (all slots free).
        reset = (live[-1] + window - now) if live else 0.0
        return [("x-ratelimit-limit-requests", str(limit)),
                ("x-ratelimit-remaining-requests", str(max(0, limit - len(live)))),
                ("x-ratelimit-reset-requests", f"{max(reset, 0.0):.3f}s")]

    def begin(self, conn: _Connection, body: dict[str, Any], fault: tuple[str, Any], keep_alive: bool) -> None:
        if self.capacity:
            self.working += 1
            conn.holds_slot = True
        kind, arg = fault
        delay = arg if kind == "slow" else self.latency
        if delay > 0:
            conn.pending = self.loop.call_later(delay, self.answer, conn, body, fault, keep_alive)
        else:
            self.answer(conn, body, fault, keep_alive)

    def end_slot(self, conn: _Connection) -> None:
        """`conn`'s request stops counting against the capacity; queued requests start."""
        if conn.holds_slot:
            conn.holds_slot = False
            self.working -= 1
        while self.queue and self.working < self.capacity:
            waiting = self.queue.popleft()
            if not waiting[0].closed:
                self.begin(*waiting)

    def answer(self, conn: _Connection, body: dict[str, Any], fault: tuple[str, Any], keep_alive: bool) -> None:
        conn.pending = None
        if conn.holds_slot:
            self.end_slot(conn)
        if conn.closed:
            return
        self.in_flight -= 1
        self.answered += 1
        kind, arg = fault
        if kind == "status" or kind in {"429ms", "429date"}:
            status, headers = 429, []
            if kind == "status":
                status, retry = arg
                if status == 429:
                    headers.append(("retry-after", _fmt_seconds(1.0 if retry is None else retry)))
                    headers.extend(self.rate_headers())
                elif retry is not None:
                    headers.append(("retry-after", _fmt_seconds(retry)))
            elif kind == "429ms":
                headers.append(("retry-after-ms", _fmt_seconds(arg)))
            else:
                headers.append(("retry-after", email.utils.formatdate(time.time() + arg, usegmt=True)))
            err = {"error": {"message": f"injected fault: HTTP {status}", "type": "fake_fault", "code": status}}
            conn.reply(status, json.dumps(err).encode(), headers, keep_alive=keep_alive)
            return
        if kind == "garbage":
            conn.reply(200, b"<html>this is not json", keep_alive=keep_alive, content_type="text/html")
            return
        try:
            payload = self.completion(body, kind, arg)
        except Exception as exc:  # a responder bug must not kill the server
            log.exception("responder failed")
            err = {"error": {"message": f"responder raised {type(exc).__name__}: {exc}"}}
            conn.reply(500, json.dumps(err).encode(), keep_alive=keep_alive)
            return
        conn.reply(200, json.dumps(payload).encode(), self.rate_headers(), keep_alive=keep_alive)

    def completion(self, body: dict[str, Any], kind: str, arg: Any) -> dict[str, Any]:
        n = body.get("n") or 1
        if not isinstance(n, int) or n < 1:
            n = 1
        if not self.supports_n:
            n = 1
        if kind == "empty":
            n = 0
        elif kind == "fewer":
            n = min(n, arg)
        choices = []
        completion_tokens = 0
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        for i in range(n):
            out = self.responder(body, i)
            reasoning_field = "reasoning_content"
            if isinstance(out, dict):
                text = str(out.get("text", ""))
                finish = out.get("finish_reason", "stop")
                reasoning = out.get("reasoning")
                reasoning_field = out.get("reasoning_field", reasoning_field)
            else:
                text, finish, reasoning = str(out), "stop", None
            words = text.split()
            # Like a real server, reasoning is generated first and counts against max_tokens:
            # a long thought leaves little or nothing of the cap for the answer.
            thought = reasoning.split() if reasoning else []
            if isinstance(max_tokens, int) and thought and len(thought) >= max_tokens:
                reasoning, text, words, finish = " ".join(thought[:max_tokens]), "", [], "length"
                thought = thought[:max_tokens]
            room = max_tokens - len(thought) if isinstance(max_tokens, int) else None
            if kind == "truncate":
                text = " ".join(words[: max(1, len(words) // 2)])
                finish = "length"
                words = text.split()
            elif room is not None and len(words) > room:
                text = " ".join(words[:room])
                finish = "length"
                words = words[:room]
            completion_tokens += len(words) + len(thought)
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if reasoning is not None:
                message[reasoning_field] = reasoning
            choices.append({"index": i, "message": message, "finish_reason": finish, "logprobs": None})
        self.counter += 1
        prompt_tokens = _count_words(body.get("messages"))
        return {
            "id": f"chatcmpl-fake-{self.counter}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class FakeOpenAIServer:
    """The scripted server, run on a background thread; a context manager.

    `latency` and `supports_n` may be changed while it runs; `add_faults` appends
    fault specs. Counters and `requests` are safe to read from the test's thread.
    """

    def __init__(self, responder: Responder | None = None, latency: float = 0.0,
                 faults: Iterable[str] | None = None, port: int = 0, *, host: str = "127.0.0.1",
                 supports_n: bool = True, model: str = "fake-model", record: bool = True,
                 log_path: str | Path | None = None, capacity: int = 0,
                 rate_limit: tuple[int, float] | None = None):
        self.host = host
        self.port = port
        self._log_fh = open(log_path, "a", encoding="utf-8", buffering=1) if log_path else None  # noqa: SIM115
        self._core = _ServerCore(responder, latency, faults, supports_n, model, record, self._log_fh, capacity,
                                 rate_limit)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- adjustable behaviour ---
    @property
    def latency(self) -> float:
        return self._core.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._core.latency = float(value)

    @property
    def supports_n(self) -> bool:
        return self._core.supports_n

    @supports_n.setter
    def supports_n(self, value: bool) -> None:
        self._core.supports_n = bool(value)

    def add_faults(self, faults: Iterable[str]) -> None:
        parsed = [_parse_fault(f) for f in faults]
        with self._core.lock:
            self._core.faults.extend(parsed)

    # --- what happened ---
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._core.lock:
            return list(self._core.requests)

    @property
    def arrivals(self) -> list[float]:
        """`time.monotonic()` at which each chat request arrived."""
        with self._core.lock:
            return list(self._core.arrivals)

    @property
    def rate_limited(self) -> int:
        """Requests answered 429 because they were over `rate_limit`."""
        return self._core.rate_limited

    @property
    def max_in_flight(self) -> int:
        return self._core.max_in_flight

    @property
    def in_flight(self) -> int:
        return self._core.in_flight

    def stats(self) -> dict[str, Any]:
        return self._core.stats()

    def dump_requests(self, path: str | Path) -> Path:
        """Write the received chat bodies as JSONL (one per line)."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as fh:
            for body in self.requests:
                fh.write(json.dumps(body, ensure_ascii=False) + "\n")
        return path

    # --- lifecycle ---
    async def serve(self) -> asyncio.AbstractServer:
        """Start listening on the running loop (used by the thread and by the CLI)."""
        loop = asyncio.get_running_loop()
        self._core.loop = loop
        self._server = await loop.create_server(lambda: _Connection(self._core), self.host, self.port,
                                                backlog=2048, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self._server

    def start(self) -> FakeOpenAIServer:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"fake OpenAI server failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.serve())
        except BaseException as exc:  # report to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._core.connections):
            if conn.transport is not None:
                conn.transport.abort()
        await asyncio.sleep(0)

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            fut.result(5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._thread = None
            if self._log_fh is not None:
                self._log_fh.close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _load_responder(spec: str) -> Responder:
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise SystemExit(f"--responder must look like package.module:function, got {spec!r}")
    return getattr(importlib.import_module(module_name), func_name)


async def _main_async(args: argparse.Namespace) -> None:
    server = FakeOpenAIServer(
        responder=_load_responder(args.responder) if args.responder else None,
        latency=args.latency, faults=args.faults.split(",") if args.faults else None, port=args.port,
        host=args.host, supports_n=not args.no_n, model=args.model, record=False, log_path=args.log,
        capacity=args.capacity)
    await server.serve()
    print(f"FAKE_OPENAI_URL={server.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server._shutdown()
    if server._log_fh is not None:
        server._log_fh.close()
    print(json.dumps(server.stats()), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ktools.testing.fake_openai",
                                     description="Scripted OpenAI-compatible server for tests/benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port (printed)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--capacity", type=int, default=0,
                        help="at most this many chat requests worked on at once, the rest queue (0: unlimited)")
    parser.add_argument("--responder", help="module:function making choice texts")
    parser.add_argument("--faults", help="comma-separated fault specs consumed one per request")
    parser.add_argument("--no-n", action="store_true", help="ignore n (always one choice), like Anthropic")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--log", help="append each chat request body as one JSON line to this file")
    args = parser.parse_args(argv)
    # Standalone (benchmarks): on ktools' own loop, uvloop when installed, so the server
    # answers a burst of requests sooner and a benchmark measures the client, not it.
    from ktools.llm.eventloop import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
