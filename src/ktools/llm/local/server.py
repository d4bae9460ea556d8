"""The HTTP front end of the embedded teacher: a small asyncio HTTP/1.1 server.

Why not a web framework: none is a dependency of ktools, and the API is four routes
of JSON. The front end only parses, validates and tokenises; generation happens in
the engine's worker thread, so any number of connections can wait cheaply while the
engine batches their requests. Keep-alive is supported (the openai client reuses
connections); a client that disconnects mid-request has its generation cancelled so
retries after a client-side timeout do not pile up work.

The server binds its port before loading the model, so a port conflict shows at
once and `/health` answers `{"status": "loading"}` (503) until the model is ready.

Two model sides (`--backend`): the transformers engine (`engine.py`, the default: the
faster of the two on this machine, see `bench/teacher_serving.py`) and llama.cpp on the
shipped GGUF (`llama_backend.py`: less memory, and it honours `response_format`). With `idle_timeout` the server exits by itself after
that many seconds without a request in flight, so a teacher that a run started in the
background does not hold its memory for hours after the run.

What it refuses (anything on the machine, or a web page in a browser, can reach it):
- a POST whose Content-Type is not JSON (415): a page can POST text/plain cross-origin
  without a CORS preflight and burn the CPU on generations; application/json needs one;
- a body over MAX_BODY_BYTES (413), checked from Content-Length or each chunk's size
  line before the bytes are read;
- connections past MAX_CONNECTIONS (503, closed at once);
- with an API key (`--api-key` or LOCAL_TEACHER_API_KEY), any /v1 request without
  `Authorization: Bearer <key>` (401); /health stays open for liveness checks.
Binding a host other than loopback logs a warning (and more so without a key).

Kept hand-written rather than moved onto aiohttp.web, on measurement (2 cores, 8
keep-alive clients x 500 GETs of /health, client in the same loop): 10.3-10.4k req/s
here vs 8.4-9.5k for aiohttp 3.14; aiohttp costs 7 packages (15 MB), 240 ms of import
vs 50 ms, and 36 MB RSS vs 23 MB. Speed is a wash next to generation (seconds per
request), so the choice rests on the dependency, and the limits aiohttp would bring
are the few lines above, each tested (tests/unit/test_hardening.py).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import signal
import time
from concurrent.futures import CancelledError as FutureCancelled
from typing import Any, Protocol

from ktools.config import EMBEDDED_MODEL_NAME
from ktools.llm.local import protocol
from ktools.llm.local.protocol import RequestError

log = logging.getLogger(__name__)

SERVICE_NAME = "ktools-local-teacher"
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_CONNECTIONS = 256  # far above MAX_CONCURRENCY's default 16; each idle one is a task and a socket


def exposure_warning(host: str, has_key: bool) -> str | None:
    """The warning to log when `host` is reachable from other machines (None on loopback)."""
    import ipaddress

    try:
        if host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to anything
    message = f"the embedded teacher is bound to {host}, reachable from other machines"
    if not has_key:
        message += "; anyone there can use it: set LOCAL_TEACHER_API_KEY (or --api-key), or bind 127.0.0.1"
    return message
DISCONNECT_POLL_SECONDS = 0.25
# An idle engine waits this long after a request for the rest of its burst (engine.py);
# `--forward generic` keeps today's engine as it was (no wait) for the bench's baseline.
GATHER_SECONDS = 0.1  # ...extended by each arrival, at most 0.5 s in all
IDLE_KEEPALIVE_SECONDS = 300.0


class Backend(Protocol):
    """What the front end needs from the model side (a fake one in unit tests)."""

    context_window: int

    def encode(self, messages: list[dict[str, str]]) -> list[int]: ...

    def submit(self, request: Any) -> Any: ...  # GenerationRequest -> concurrent Future

    def info(self) -> dict[str, Any]: ...


class ModelBackend:
    """The real thing: SmolLM2 through `ktools.models`, batched by `BatchEngine`."""

    def __init__(self, *, max_batch: int = 32, continuous: bool = True, threads: int | None = None,
                 dtype: str = "auto", model_name: str | None = None, forward: str = "lean", draft_tokens: int = 0):
        import torch

        from ktools.cpuload import ThreadGovernor
        from ktools.llm.local.engine import BatchEngine
        from ktools.models import load_causal_lm, load_tokenizer

        self.governor = ThreadGovernor(threads or default_threads(), fixed=threads is not None)
        torch.set_num_threads(self.governor.threads)
        self.tokenizer = load_tokenizer(model_name)
        self.dtype = resolve_dtype(dtype)
        model = load_causal_lm(model_name, device="cpu", dtype=getattr(torch, self.dtype))
        if forward not in ("lean", "generic"):
            raise ValueError(f"forward must be lean or generic (got {forward!r})")
        self.engine = BatchEngine(model, self.tokenizer, max_batch=max_batch, continuous=continuous,
                                  governor=self.governor, lean=forward == "lean", draft_tokens=draft_tokens,
                                  gather_seconds=GATHER_SECONDS if forward == "lean" else 0.0).start()
        self.context_window = self.engine.context_window

    @property
    def threads(self) -> int:
        return self.governor.threads

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=False)
        return list(encoded)

    def submit(self, request: Any) -> Any:
        return self.engine.submit(request)

    def grammar(self, response_format: dict[str, Any]) -> Any:
        """response_format -> a JsonSchemaGuide (token-mask constrained decoding), None for text."""
        from ktools.llm.local.jsonschema_guide import JsonSchemaGuide

        return JsonSchemaGuide.from_response_format(response_format)

    def info(self) -> dict[str, Any]:
        return {"backend": "transformers", "queue": self.engine.queue_depth, "active_sequences": self.engine.active_rows,
                "max_batch": self.engine.max_batch,
                "batching": "continuous" if self.engine.continuous else "static", "dtype": self.dtype,
                "forward": "lean" if self.engine.lean is not None else "generic",
                "draft_tokens": self.engine.draft_tokens,
                "threads": self.governor.threads, "threads_adaptive": not self.governor.fixed,
                "stats": dict(self.engine.stats)}

    def close(self) -> None:
        self.engine.shutdown()


def make_backend(kind: str = "transformers", **options: Any) -> Any:
    """The model side: "transformers" (the batching engine) or "llama" (llama.cpp on the GGUF)."""
    if kind == "llama":
        from ktools.llm.local import llama_backend

        if not llama_backend.available():
            raise RuntimeError("--backend llama needs llama-cpp-python: run `make llama` "
                               "(compiles it with the system gcc, ~15 min on 2 busy cores)")
        return llama_backend.LlamaBackend(max_batch=options.get("max_batch", 32), threads=options.get("threads"))
    if kind == "transformers":
        return ModelBackend(**options)
    raise ValueError(f"backend must be transformers or llama (got {kind!r})")


def default_threads() -> int:
    """All cores on an idle machine, half of them (1 on 2 cores) on a busy one.

    The teacher shares the machine with the notebook or pipeline that calls it. When the
    CPU is oversubscribed, torch's intra-op threads wait on each other at every barrier:
    measured here on 2 busy cores, a bf16 decode step at batch 16 took 730-753 ms with
    1 thread but 3149-4189 ms with 2. On the idle machine, the demo's step 03 got
    81 tokens/s aggregate with 2 threads against 54 with 1 (with other work running).
    So, like the trainer, we look at how busy the CPU is when the server starts: the
    cores in use now (`ktools.cpuload.busy_cores`), not the load average, which after
    step 01's evaluation still counts that finished work.
    `--threads` overrides the choice.
    """
    from ktools.cpuload import cpu_use

    return cpu_use().threads


def resolve_dtype(dtype: str) -> str:
    """"auto" -> bfloat16 where the CPU has native bf16 matmul (AVX512-BF16/AMX), else float32.

    Measured on this machine's AMD EPYC (avx512_bf16): a decode step at batch 8 took
    about half the time in bf16 (5.1-6.4 s vs 12.4-13.9 s on a heavily shared CPU) and
    prefill 1.1-1.9x less. Without native bf16, PyTorch emulates it and fp32 is faster.
    """
    if dtype != "auto":
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32 or bfloat16 (got {dtype!r})")
        return dtype
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return "float32"
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 413: "Payload Too Large", 415: "Unsupported Media Type",
           500: "Internal Server Error", 503: "Service Unavailable"}


class TeacherServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, backend_factory: Any = None,
                 model_id: str = EMBEDDED_MODEL_NAME, idle_timeout: float = 0.0, api_key: str | None = None,
                 max_connections: int = MAX_CONNECTIONS):
        self.host = host
        self._api_key = (api_key or "").encode() or None
        self.max_connections = max_connections
        self.port = port
        self.model_id = model_id
        self._backend_factory = backend_factory or ModelBackend
        self.backend: Any = None
        self.load_error: str | None = None
        self.started = int(time.time())
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._stopped: asyncio.Event | None = None  # created inside the running loop
        self.idle_timeout = idle_timeout  # seconds; 0 = serve until stopped
        self._in_flight = 0
        self._last_activity = time.monotonic()
        self._idle_watch: asyncio.Task | None = None

    # --- lifecycle ---
    async def start(self) -> None:
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  limit=MAX_HEADER_BYTES, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("embedded teacher listening on http://%s:%d/v1 (loading model)", self.host, self.port)
        warning = exposure_warning(self.host, self._api_key is not None)
        if warning:
            log.warning("%s", warning)
        asyncio.get_running_loop().run_in_executor(None, self._load_backend)
        if self.idle_timeout > 0:
            self._idle_watch = asyncio.create_task(self._stop_when_idle())

    async def _stop_when_idle(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.idle_timeout / 4))
            idle = time.monotonic() - self._last_activity
            if self._in_flight == 0 and idle >= self.idle_timeout:
                log.info("no request for %.0f s (idle timeout %.0f s): stopping", idle, self.idle_timeout)
                self.request_stop()
                return

    def _load_backend(self) -> None:
        started = time.perf_counter()
        try:
            self.backend = self._backend_factory()
        except Exception as exc:  # keep answering /health with the reason
            log.exception("could not load the embedded model")
            self.load_error = f"{type(exc).__name__}: {exc}"
            return
        log.info("embedded teacher ready: %s in %.1f s", self.model_id, time.perf_counter() - started)

    def request_stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    async def serve_until_stopped(self) -> None:
        assert self._stopped is not None and self._server is not None
        await self._stopped.wait()
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self.backend is not None and hasattr(self.backend, "close"):
            await asyncio.get_running_loop().run_in_executor(None, self.backend.close)
        log.info("embedded teacher stopped")

    @property
    def ready(self) -> bool:
        return self.backend is not None

    # --- connections ---
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= self.max_connections:
            try:
                await _send(writer, 503, protocol.error_body(
                    f"too many connections (limit {self.max_connections}); retry later", type_="server_error"),
                    keep_alive=False)
            except ConnectionError:
                pass
            finally:
                writer.close()
            return
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                try:
                    request = await asyncio.wait_for(_read_request(reader), IDLE_KEEPALIVE_SECONDS)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                except _HttpError as exc:
                    await _send(writer, exc.status, protocol.error_body(str(exc)), keep_alive=False)
                    return
                if request is None:
                    return
                method, path, headers, body = request
                keep_alive = headers.get("connection", "").lower() != "close"
                if not self._authorized(path, headers):
                    status, payload = 401, protocol.error_body(
                        "missing or wrong API key: send 'Authorization: Bearer <key>' (the client sends "
                        "LOCAL_TEACHER_API_KEY for the embedded teacher)", type_="authentication_error",
                        code="invalid_api_key")
                else:
                    status, payload = await self._route(method, path, body, reader)
                if status is None:  # the client went away
                    return
                await _send(writer, status, payload, keep_alive=keep_alive)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        except Exception:  # never let one connection take the server down
            log.exception("unexpected error while serving a connection")
        finally:
            writer.close()
            if task is not None:
                self._connections.discard(task)

    def _authorized(self, path: str, headers: dict[str, str]) -> bool:
        if self._api_key is None or path.split("?", 1)[0].rstrip("/") == "/health":
            return True
        given = headers.get("authorization", "")
        token = given[7:].strip() if given[:7].lower() == "bearer " else headers.get("x-api-key", "")
        return hmac.compare_digest(token.encode(), self._api_key)

    async def _route(self, method: str, path: str, body: bytes,
                     reader: asyncio.StreamReader) -> tuple[int | None, dict[str, Any]]:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/health":
            return self._health()
        if path in ("/v1/models", "/models"):
            if method != "GET":
                return 405, protocol.error_body(f"{method} is not allowed on {path}; use GET")
            return 200, protocol.models_body(self.model_id, self.started)
        if path.startswith("/v1/models/"):
            return 200, protocol.models_body(self.model_id, self.started)["data"][0]
        if path in ("/v1/chat/completions", "/chat/completions"):
            if method != "POST":
                return 405, protocol.error_body(f"{method} is not allowed on {path}; use POST")
            return await self._chat(body, reader)
        return 404, protocol.error_body(
            f"no route {method} {path}; this server offers GET /health, GET /v1/models and "
            "POST /v1/chat/completions", type_="not_found_error", code="not_found")

    def _health(self) -> tuple[int, dict[str, Any]]:
        payload: dict[str, Any] = {"service": SERVICE_NAME, "model": self.model_id, "pid": os.getpid(),
                                   "host": self.host, "port": self.port}
        if self.load_error:
            return 503, {**payload, "status": "error", "error": self.load_error}
        if not self.ready:
            return 503, {**payload, "status": "loading"}
        idle = {"idle_timeout": self.idle_timeout, "in_flight": self._in_flight,
                "idle_seconds": round(time.monotonic() - self._last_activity, 1)}
        return 200, {**payload, "status": "ok", **idle, **self.backend.info()}

    async def _chat(self, body: bytes, reader: asyncio.StreamReader) -> tuple[int | None, dict[str, Any]]:
        self._in_flight += 1
        try:
            return await self._generate(body, reader)
        finally:
            self._in_flight -= 1
            self._last_activity = time.monotonic()

    async def _generate(self, body: bytes, reader: asyncio.StreamReader) -> tuple[int | None, dict[str, Any]]:
        from ktools.llm.local.requests import EngineStopped, GenerationRequest

        try:
            parsed = protocol.parse_chat_request(_json(body))
            backend = await self._wait_ready()
            prompt_ids = backend.encode(parsed.messages)
            if len(prompt_ids) >= backend.context_window:
                raise protocol.context_error(len(prompt_ids), backend.context_window)
            max_tokens = min(parsed.max_tokens, backend.context_window - len(prompt_ids))
            request = GenerationRequest(prompt_ids, n=parsed.n, temperature=parsed.temperature,
                                        top_p=parsed.top_p, max_tokens=max_tokens, stop=parsed.stop,
                                        seed=parsed.seed, grammar=_grammar(backend, parsed.response_format))
            future = asyncio.wrap_future(backend.submit(request))
        except RequestError as exc:
            return exc.status, exc.body()
        except EngineStopped as exc:
            return 503, protocol.error_body(str(exc), type_="server_error")
        while True:
            done, _ = await asyncio.wait({future}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                break
            if reader.at_eof():
                request.cancel()
                future.cancel()
                log.info("client disconnected; generation cancelled")
                return None, {}
        try:
            result = future.result()
        except (asyncio.CancelledError, FutureCancelled):
            return 503, protocol.error_body("the request was cancelled", type_="server_error")
        except EngineStopped as exc:
            return 503, protocol.error_body(str(exc), type_="server_error")
        except Exception as exc:
            log.exception("generation failed")
            return 500, protocol.error_body(f"generation failed: {type(exc).__name__}: {exc}",
                                            type_="server_error")
        choices = [(c.text, c.finish_reason) for c in result.completions]
        completion_tokens = sum(c.completion_tokens for c in result.completions)
        return 200, protocol.completion_body(self.model_id, choices, result.prompt_tokens, completion_tokens)

    async def _wait_ready(self) -> Any:
        while self.backend is None:
            if self.load_error:
                raise RequestError(f"the embedded model failed to load: {self.load_error}", status=503,
                                   type_="server_error")
            await asyncio.sleep(0.2)
        return self.backend


def _grammar(backend: Any, response_format: dict[str, Any] | None) -> Any:
    if response_format is None:
        return None
    if not hasattr(backend, "grammar"):
        raise RequestError("response_format needs the llama.cpp backend of the embedded teacher "
                           "(`make llama`, then LOCAL_TEACHER_BACKEND=llama or serve-teacher --backend llama)",
                           param="response_format", code="unsupported_parameter")
    try:
        return backend.grammar(response_format)
    except ValueError as exc:
        raise RequestError(f"response_format: {exc}", param="response_format") from None


def _json(body: bytes) -> Any:
    if not body:
        raise RequestError("the request body is empty; send a JSON object with 'messages'")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"the request body is not valid JSON: {exc}") from None


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None  # clean close between requests
        raise _HttpError(400, "incomplete HTTP request head") from None
    except asyncio.LimitOverrunError:
        raise _HttpError(413, f"HTTP headers exceed {MAX_HEADER_BYTES} bytes") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _HttpError(400, f"malformed HTTP request line {lines[0][:100]!r}")
    method, path, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _HttpError(400, f"malformed HTTP header line {line[:100]!r}")
        headers[name.strip().lower()] = value.strip()
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    if method.upper() == "POST" and not _is_json(headers.get("content-type", "")):
        # Refused before the body is read; the connection closes since the body stays unread.
        raise _HttpError(415, f"Content-Type {headers.get('content-type') or '(none)'!r} is not JSON; "
                              "send the request body as application/json")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _HttpError(400, "Content-Length is not an integer") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise _HttpError(413, f"request body over {MAX_BODY_BYTES} bytes")
        body = await reader.readexactly(length) if length else b""
    return method.upper(), path, headers, body


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        try:
            size_line = await reader.readline()  # bounded by the reader's limit (MAX_HEADER_BYTES)
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise _HttpError(400, "malformed chunked request body") from None
        if size < 0 or len(body) + size > MAX_BODY_BYTES:  # before reading the chunk, not after
            raise _HttpError(413, f"request body over {MAX_BODY_BYTES} bytes")
        if size == 0:
            while (await reader.readline()).strip():
                pass  # trailers
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _send(writer: asyncio.StreamWriter, status: int, payload: dict[str, Any], *, keep_alive: bool) -> None:
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    writer.write(head.encode("latin-1") + data)
    await writer.drain()


def serve(host: str = "127.0.0.1", port: int = 8765, *, max_batch: int = 32, continuous: bool = True,
          forward: str = "lean", draft_tokens: int = 0,
          threads: int | None = None, dtype: str = "auto", on_ready: Any = None, backend: str = "transformers",
          idle_timeout: float = 0.0, api_key: str | None = None, max_connections: int = MAX_CONNECTIONS) -> None:
    """Run the teacher in the foreground until SIGINT/SIGTERM (or `idle_timeout` seconds without requests)."""

    async def main() -> None:
        server = TeacherServer(host, port, idle_timeout=idle_timeout, backend_factory=lambda: make_backend(
            backend, max_batch=max_batch, continuous=continuous, threads=threads, dtype=dtype,
            **({"forward": forward, "draft_tokens": draft_tokens} if backend == "transformers" else {})),
            api_key=api_key,
            max_connections=max_connections)
        await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_stop)
        if on_ready is not None:
            on_ready(server)
        await server.serve_until_stopped()

    asyncio.run(main())
