"""The teacher client: chat completions against any OpenAI-compatible endpoint.

    client = TeacherClient.from_settings(load_settings())
    result = await client.achat([{"role": "user", "content": "Hi"}], SamplingParams(), n=3)
    result = client.chat(...)          # same, synchronous; also inside Jupyter's running loop

What it guarantees:
- One concurrency limit per client, shared by every call and every event loop
  that uses it (a thread-safe limiter, not a per-loop semaphore).
- Retries with exponential backoff and full jitter on 408/409/429/5xx, connection
  errors, timeouts and unusable bodies, honouring `Retry-After` (seconds or HTTP
  date) and `retry-after-ms`; a 429's wait also pauses new requests of the client.
  The `openai` package's own retries are off, so every retry is ours and counted.
- `n` samples: asks for n choices in one request where the provider supports it
  and sends the missing ones as single requests when fewer come back (providers
  known to ignore `n` get n single requests up front). Single requests that fan
  out a seeded call get seeds seed+1, seed+2, ... so they are not n copies.
- Reasoning: `message.reasoning_content` / `message.reasoning`, or a leading
  `<think>…</think>` block stripped from the text, end up in `Choice.reasoning`.
- `stats`: requests sent, retries, errors (failed attempts), failures (calls that
  gave up), failovers (attempts moved to another endpoint), token usage.
- Several endpoints (`base_url="URL,URL#N,..."`, replicas of one model): requests are
  spread by `ktools.llm.endpoints` (least outstanding, cool-downs, failover without
  using a retry); `endpoint_stats()` reports each. One URL takes none of that path.

Speed: requests go through the real `openai` package but its typed layer is
skipped where it only costs CPU: the body is JSON-encoded once by us (no TypedDict
transform), the response is parsed from raw JSON (no pydantic models), telemetry
headers are omitted. Plain-http endpoints (local servers, vLLM, Ollama) also use a
lean keep-alive transport (`ktools.llm.transport`), and there `openai` builds the
request (URL, auth and default headers) once per client: each request is that one
with its own body, sent through `AsyncOpenAI._send_request` (openai's auth hooks),
and a non-2xx answer becomes openai's own `APIStatusError` — what `AsyncOpenAI.post`
does minus its per-request option copies and header merging (~0.1 ms each).
Other endpoints go through `AsyncOpenAI.request`. bench/client_overhead.py measures it.

The API key is held privately, registered with the config's log redaction, and
never put in a repr, a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import email.utils
import json
import logging
import math
import random
import ssl
import threading
import time
import urllib.request
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2
import openai

try:  # 10-20x faster than json for our bodies; the json module stays the fallback
    import orjson
except ImportError:  # pragma: no cover - a base dependency, but optional here
    orjson = None

try:  # the options object `AsyncOpenAI.post` builds; made once per client and copied per request
    from openai._models import FinalRequestOptions as _FinalRequestOptions
except ImportError:  # another openai layout: fall back to `post`, which builds it per request
    _FinalRequestOptions = None

from ktools.config import ConfigError, mask_secret, parse_base_urls, register_secret
from ktools.llm.endpoints import BUSY, FAILED, OK, REJECTED, EndpointPool
from ktools.llm.eventloop import new_event_loop
from ktools.llm.providers import get_preset
from ktools.llm.ratelimit import RateLimiter
from ktools.llm.reasoning import split_reasoning
from ktools.llm.transport import FastAsyncTransport, LeanAsyncClient, request_factory
from ktools.llm.types import ChatResult, Choice, SamplingParams, TeacherError, Usage

if TYPE_CHECKING:
    from ktools.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
MAX_RETRY_AFTER = 600.0  # seconds; a server asking for longer still gets retried after this
# A request that timed out is retried this many times, not max_retries times (one endpoint;
# with several, a timed-out endpoint is failed over as before): other
# failures answer fast, but timeouts x retries made one call wait up to 70 minutes.
MAX_TIMEOUT_RETRIES = 1
_TIMEOUT_HINT = "; a timed-out request is retried once: raise TEACHER_REQUEST_TIMEOUT for a slow teacher"
_DEFAULT_PARAMS = SamplingParams()


def _dumps(body: dict[str, Any]) -> bytes:
    """The request body as compact JSON bytes (what openai's own encoder would send, minus the spaces)."""
    if orjson is not None:
        try:
            return orjson.dumps(body)
        except TypeError:  # non-str keys, ints over 64 bits, ...: the json module's rules
            pass
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _loads(content: bytes) -> Any:
    """Parse a JSON answer; raises ValueError when it is not JSON."""
    if orjson is not None:
        try:
            return orjson.loads(content)
        except ValueError:  # NaN/Infinity, lone surrogates, ...: what the json module accepts still goes
            pass
    return json.loads(content)


def _plain_openai_client(client: openai.AsyncOpenAI) -> bool:
    """True when every request of `client` has the same URL and headers: a fixed API key, no
    key provider, workload identity or provider runtime (those change requests per call)."""
    needed = ("_build_request", "_send_request", "_make_status_error_from_response")
    return (all(hasattr(client, name) for name in needed) and isinstance(client.api_key, str)
            and all(getattr(client, name, None) is None
                    for name in ("_provider_runtime", "_api_key_provider", "workload_identity",
                                 "_workload_identity_auth")))


def _used_tokens(data: dict[str, Any]) -> int:
    usage = data.get("usage")
    if isinstance(usage, dict):
        return int(usage.get("total_tokens") or (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0))
    return 0


class _BadResponse(Exception):
    """A 2xx answer we cannot use (not JSON, no choices); retried like a 5xx."""


def _decode_answer(response: httpx2.Response, need_choice: bool) -> dict[str, Any]:
    """The JSON object of a 2xx answer, or _BadResponse (the checks `_request` makes inline)."""
    try:
        data = _loads(response.content)
    except ValueError:
        raise _BadResponse(f"the answer is not JSON (HTTP {response.status_code}, "
                           f"{response.headers.get('content-type', '?')}): {response.text[:200]!r}") from None
    if not isinstance(data, dict):
        raise _BadResponse(f"the answer is JSON but not an object: {str(data)[:200]!r}")
    if need_choice and not data.get("choices"):
        detail = data.get("error") or "empty choice list"
        raise _BadResponse(f"the answer has no choices ({str(detail)[:200]})")
    return data


class _Limiter:
    """A counting semaphore usable from several event loops (threads) at once.

    A released slot is handed straight to the oldest waiter, on that waiter's own
    loop, so the limit holds for the whole client whichever loop calls it.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = (
            collections.deque())

    async def acquire(self) -> None:
        with self._lock:
            if self.in_use < self.limit and not self._waiters:
                self.in_use += 1
                if self.in_use > self.peak:
                    self.peak = self.in_use
                return
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, fut))
        try:
            await fut
        except asyncio.CancelledError:
            with self._lock:
                try:
                    self._waiters.remove((loop, fut))
                    owned = False
                except ValueError:  # a slot was already handed to us
                    owned = not fut.cancelled()
            if owned:
                self.release()
            raise

    def release(self) -> None:
        with self._lock:
            if not self._waiters:
                self.in_use -= 1
                return
            loop, fut = self._waiters.popleft()  # the slot moves to this waiter; in_use unchanged
        if asyncio._get_running_loop() is loop:
            self._grant(fut)
        else:
            loop.call_soon_threadsafe(self._grant, fut)

    def _grant(self, fut: asyncio.Future[None]) -> None:
        if fut.done():  # the waiter was cancelled meanwhile: pass the slot on
            self.release()
        else:
            fut.set_result(None)


class _LoopThread:
    """An event loop running forever on a daemon thread, for sync entry points (uvloop if installed)."""

    def __init__(self, name: str):
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except KeyboardInterrupt:  # Ctrl-C / Jupyter interrupt: cancel the work, then re-raise
            fut.cancel()
            try:
                fut.result(5)
            except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError, Exception):
                pass
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


_shared_loop: _LoopThread | None = None
_shared_lock = threading.Lock()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from synchronous code and return its result.

    Works in a plain script and inside an already running event loop (Jupyter):
    the coroutine runs on one shared background event-loop thread, so clients
    and their connection pools survive from one call to the next.
    """
    global _shared_loop
    with _shared_lock:
        if _shared_loop is None or _shared_loop.loop.is_closed():
            _shared_loop = _LoopThread("ktools-run-sync")
        runner = _shared_loop
    if asyncio._get_running_loop() is runner.loop:
        raise RuntimeError("run_sync() called from inside its own loop; await the coroutine instead")
    return runner.run(coro)


def _uses_proxy(base_url: str) -> bool:
    """True when the environment routes `base_url` through a proxy (httpx2 honours it; our transport not)."""
    try:
        scheme, rest = base_url.split("://", 1)
        host = rest.split("/", 1)[0].split(":", 1)[0]
        proxies = urllib.request.getproxies()
        if not (proxies.get(scheme) or proxies.get("all")):
            return False
        return not urllib.request.proxy_bypass(host)
    except Exception:
        return True


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return MAX_RETRY_AFTER
    return max(0.0, seconds)


def _message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


class _ReasoningForm:
    """What the client learnt about how this model sends reasoning."""

    __slots__ = ("stripped_harmony", "template_opens")

    def __init__(self, stripped_harmony: bool):
        # gpt-oss, whose channel tokens a server may strip ("analysis…assistantfinal…")
        self.stripped_harmony = stripped_harmony
        # The chat template opens <think> in the prompt (DeepSeek-R1 distills, QwQ): only </think> comes back.
        self.template_opens = False


def _parse_choices(data: dict[str, Any], form: _ReasoningForm | bool = False) -> list[Choice]:
    """Choices of an answer, reasoning split off (see ktools.llm.reasoning). Once a reply showed a
    template-opened <think> (only the closing tag), a reply cut off before any closing tag is all
    reasoning: returned as such, with an empty answer, not as an answer to parse."""
    if not isinstance(form, _ReasoningForm):
        form = _ReasoningForm(bool(form))
    stripped_harmony = form.stripped_harmony
    raw = data.get("choices")
    if not isinstance(raw, list):
        return []
    if len(raw) > 1:
        raw = sorted(raw, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    choices = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        message = item.get("message") or {}
        text = _message_text(message.get("content"))
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if not isinstance(reasoning, str):  # e.g. a structured reasoning object: not text we can keep
            reasoning = None
        # Reasoning inside the text (<think>, a template-opened </think>, gpt-oss channels) is split off
        # here, so every caller sees the answer alone; a separate field and inline text are both kept.
        finish = item.get("finish_reason")
        if "think>" in text or "<|channel|>" in text or (stripped_harmony and text.lstrip().startswith("analysis")):
            if not form.template_opens and "</think" in text and "<think" not in text:
                form.template_opens = True
            text, inline = split_reasoning(text, stripped_harmony=stripped_harmony)
            if inline:
                reasoning = f"{reasoning}\n{inline}" if reasoning else inline
        elif form.template_opens and finish == "length" and text.strip() and not reasoning:
            text, reasoning = "", text.strip()
        choices.append(Choice(text=text, finish_reason=finish, reasoning=reasoning))
    return choices


class TeacherClient:
    """Async chat-completions client with retries, a concurrency limit and `n` fan-out.

    Use one client for a whole run so its limit is the run's limit.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, provider: str = "openai",
                 max_concurrency: int = 16, timeout: float = 600.0, max_retries: int = 6, *,
                 supports_n: bool | None = None, backoff_base: float = 0.5, backoff_max: float = 60.0,
                 fast_transport: bool | None = None, endpoint_failures: int = 3, endpoint_cooldown: float = 5.0,
                 endpoint_max_cooldown: float = 300.0, rpm: int | None = None, tpm: int | None = None,
                 rate_window: float = 60.0):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if not base_url:
            raise ConfigError("the teacher base URL is empty: set TEACHER_MODEL_BASE_URL")
        preset = get_preset(provider)
        self.provider = preset.name
        # Several endpoints (replicas, `URL,URL#N`): spread by ktools.llm.endpoints; one: no pool at all.
        self._pool: EndpointPool | None = None
        if "," in base_url or "#" in base_url:
            try:
                specs = parse_base_urls(base_url)
            except ValueError as exc:
                raise ConfigError(f"TEACHER_MODEL_BASE_URL={base_url!r} is invalid: expected {exc}") from None
            if len(specs) > 1:
                self._pool = EndpointPool(specs, max_concurrency, failures=endpoint_failures,
                                          cooldown=endpoint_cooldown, max_cooldown=endpoint_max_cooldown)
            elif specs[0][1]:  # one endpoint with a share: that is its limit
                max_concurrency = min(max_concurrency, specs[0][1])
            base_url = specs[0][0]
        self.base_url = base_url.rstrip("/")
        self.base_urls = [ep.url for ep in self._pool.endpoints] if self._pool else [self.base_url]
        self.model = model
        self._reasoning_form = _ReasoningForm("gpt-oss" in model.lower())
        self.max_concurrency = max_concurrency
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.supports_n = preset.supports_n if supports_n is None else supports_n
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._api_key = str.__str__(api_key) if api_key else preset.placeholder_key
        register_secret(self._api_key if api_key else None)
        plain_http = all(url.startswith("http://") and not _uses_proxy(url) for url in self.base_urls)
        if fast_transport and not plain_http:
            raise ValueError("fast_transport=True needs plain http:// teacher URLs without a proxy: leave it "
                             "unset for an https:// teacher (httpx2's own transport does TLS)")
        self.fast_transport = plain_http if fast_transport is None else fast_transport
        self._url = self.base_url + "/chat/completions"
        self._limiter = _Limiter(max_concurrency)
        # RPM/TPM (None: none of ours) and the server's x-ratelimit-* headers, which are always followed.
        self._rate = RateLimiter(rpm or None, tpm or None, window=rate_window)
        self._pause_until = 0.0  # monotonic time before which no request starts (after a 429)
        self._clients: dict[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = {}
        self._options_template: weakref.WeakKeyDictionary[openai.AsyncOpenAI, Any] = weakref.WeakKeyDictionary()
        self._direct: weakref.WeakKeyDictionary[openai.AsyncOpenAI, Any] = weakref.WeakKeyDictionary()
        self._direct_by_url: weakref.WeakKeyDictionary[openai.AsyncOpenAI, dict[str, Any]] = (
            weakref.WeakKeyDictionary())
        self._last: tuple[asyncio.AbstractEventLoop | None, openai.AsyncOpenAI | None] = (None, None)
        self._clients_lock = threading.Lock()
        self._loop_thread: _LoopThread | None = None
        self._stats_lock = threading.Lock()
        self._stats = {"calls": 0, "requests": 0, "retries": 0, "errors": 0, "failures": 0,
                       "fanout_requests": 0, "failovers": 0, "prompt_tokens": 0, "completion_tokens": 0}

    # --- construction from settings ---
    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> TeacherClient:
        """Build the client the settings describe; starts the embedded teacher for provider local."""
        preset = get_preset(settings.teacher_provider)
        base_url = settings.teacher_base_url or preset.base_url
        model = settings.teacher_model_name or preset.default_model
        if not model:
            raise ConfigError(
                f"TEACHER_MODEL_NAME is empty: set it to the model your {preset.name} endpoint serves "
                f"(e.g. in the root .env)")
        api_key = settings.teacher_api_key.reveal() if settings.teacher_api_key else ""
        if preset.name == "local" and not api_key:  # the key our own teacher's server requires, if any
            api_key = settings.local_teacher_api_key.reveal()
        api_key = api_key or preset.api_key_from_env()
        if preset.requires_key and not api_key:
            fallbacks = " or ".join(preset.key_env_fallbacks)
            raise ConfigError(
                f"TEACHER_MODEL_API_KEY is not set but provider {preset.name!r} needs an API key: put it in "
                f"the root .env as TEACHER_MODEL_API_KEY=... (or export {fallbacks}).")
        supports_n = kwargs.pop("supports_n", None)
        if preset.name == "local":
            if "," in base_url:
                raise ConfigError(f"TEACHER_MODEL_BASE_URL lists several endpoints ({base_url}) but the provider is "
                                  "local (the embedded teacher, one server): set TEACHER_PROVIDER=vllm (or the "
                                  "provider your replicas run) or give one URL")
            from ktools.llm.local import teacher as local_teacher  # lazy: the embedded teacher pulls in torch

            local_teacher.ensure_local_teacher(base_url)
            if supports_n is None:
                supports_n = getattr(local_teacher, "SUPPORTS_N", True)
        options: dict[str, Any] = {"max_concurrency": settings.max_concurrency,
                                   "timeout": settings.request_timeout, "max_retries": settings.max_retries,
                                   "endpoint_failures": settings.endpoint_failures,
                                   "endpoint_cooldown": settings.endpoint_cooldown,
                                   "endpoint_max_cooldown": settings.endpoint_max_cooldown,
                                   "rpm": getattr(settings, "teacher_rpm", None),
                                   "tpm": getattr(settings, "teacher_tpm", None)}
        options.update(kwargs)
        return cls(base_url, model, api_key or None, preset.name, supports_n=supports_n, **options)

    def __repr__(self) -> str:
        key = mask_secret(self._api_key) if self._api_key else "<unset>"
        return (f"TeacherClient(provider={self.provider!r}, base_url={','.join(self.base_urls)!r}, model={self.model!r}, "
                f"api_key={key}, max_concurrency={self.max_concurrency})")

    # --- accounting ---
    @property
    def stats(self) -> dict[str, int]:
        """Counters since creation: calls, requests (HTTP attempts), retries, errors (failed
        attempts), failures (calls that raised TeacherError), fanout_requests, tokens,
        and peak_concurrency (most requests ever in flight at once)."""
        with self._stats_lock:
            out = dict(self._stats)
        out["peak_concurrency"] = self._limiter.peak
        out["rate_waits"] = self._rate.waits
        out["rate_header_pauses"] = self._rate.header_pauses
        return out

    def endpoint_stats(self) -> list[dict[str, Any]]:
        """Per endpoint (several base URLs only; [] for one): url, share, state, requests, ok, errors,
        cooldowns, in_flight, peak_in_flight, latency_mean_ms/p50/p95 — since the client was created."""
        return self._pool.stats() if self._pool is not None else []

    def _count(self, **delta: int) -> None:
        with self._stats_lock:
            stats = self._stats
            for key, value in delta.items():
                stats[key] += value

    # --- the openai client of the running loop ---
    def _openai(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        last_loop, last_client = self._last
        if loop is last_loop and last_client is not None:
            return last_client
        with self._clients_lock:
            client = self._clients.get(loop)
            if client is None:
                for old in [lp for lp in self._clients if lp.is_closed()]:
                    del self._clients[old]  # its loop is gone; so are its connections
                client = self._make_openai()
                self._clients[loop] = client
            self._last = (loop, client)
        return client

    def _make_openai(self) -> openai.AsyncOpenAI:
        if self.fast_transport:
            http_client: httpx2.AsyncClient = LeanAsyncClient(
                FastAsyncTransport(max_keepalive=self.max_concurrency + 8), timeout=self.timeout)
        else:
            limits = httpx2.Limits(max_connections=self.max_concurrency + 8,
                                   max_keepalive_connections=self.max_concurrency + 8)
            http_client = openai.DefaultAsyncHttpxClient(limits=limits, timeout=self.timeout)
        # Telemetry headers cost CPU per request (httpx normalises every header several times).
        headers: dict[str, Any] = {
            name: openai.Omit() for name in (
                "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch",
                "X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Async",
                "x-stainless-retry-count", "x-stainless-read-timeout")}
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, max_retries=0,
                                    timeout=self.timeout, http_client=http_client, default_headers=headers)
        if _FinalRequestOptions is not None:
            # openai sets these two per request unless the request's own headers omit them
            omit = {"x-stainless-retry-count": openai.Omit(), "x-stainless-read-timeout": openai.Omit()}
            self._options_template[client] = _FinalRequestOptions.construct(
                method="post", url=self._url, headers=omit)
            if self.fast_transport and _plain_openai_client(client):
                self._direct[client] = request_factory(client._build_request(
                    _FinalRequestOptions.construct(method="post", url=self._url, headers=omit, content=b"")))
        return client

    def _endpoint_factory(self, client: openai.AsyncOpenAI, url: str) -> Any:
        """`_direct`'s request factory for another endpoint's URL (fan-out), built once per URL."""
        factories = self._direct_by_url.get(client)
        if factories is None:
            factories = self._direct_by_url[client] = {}
        make = factories.get(url)
        if make is None:
            omit = {"x-stainless-retry-count": openai.Omit(), "x-stainless-read-timeout": openai.Omit()}
            make = factories[url] = request_factory(client._build_request(
                _FinalRequestOptions.construct(method="post", url=url, headers=omit, content=b"")))
        return make

    async def _post(self, client: openai.AsyncOpenAI, body: dict[str, Any], url: str | None = None) -> httpx2.Response:
        """POST `body` as JSON through `client` to `url` (default: the chat URL of `base_url`);
        returns the raw response (errors raise as usual)."""
        content = _dumps(body)
        make = self._direct.get(client)
        if make is not None and url is not None and url != self._url:
            make = self._endpoint_factory(client, url)
        if make is not None:  # openai's request for this client, with this body (see the module doc)
            request = make(content)
            try:
                response = await client._send_request(request, stream=False)
            except httpx2.TimeoutException as exc:  # the exceptions AsyncOpenAI.request raises
                raise openai.APITimeoutError(request=request) from exc
            except (httpx2.RequestError, ssl.SSLError) as exc:
                raise openai.APIConnectionError(request=request) from exc
            if not response.is_success:
                raise client._make_status_error_from_response(response)
            return response
        template = self._options_template.get(client)
        if template is None:
            return await client.post(url or self._url, content=content, cast_to=httpx2.Response,
                                     options={"headers": {"Content-Type": "application/json"}})
        update: dict[str, Any] = {"content": content}
        if url is not None:
            update["url"] = url
        return await client.request(httpx2.Response, template.model_copy(update=update))

    # --- requests ---
    def _body(self, messages: list[dict[str, Any]], params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages,
                                "temperature": params.temperature, "max_tokens": params.max_tokens}
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.extra:
            body.update(params.extra)  # provider knobs, i.e. extra_body
            if "max_completion_tokens" in body:
                body.pop("max_tokens", None)
        return body

    def _estimate_tokens(self, body: dict[str, Any]) -> int:
        """What a request may use, for a tokens-per-minute limit: ~4 characters per prompt token plus
        the completion cap times n (providers reserve max_tokens against TPM too)."""
        if self._rate.tokens is None:
            return 0
        chars = sum(len(m.get("content") or "") if isinstance(m.get("content"), str) else 200
                    for m in body.get("messages") or () if isinstance(m, dict))
        cap = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        return chars // 4 + int(cap) * int(body.get("n") or 1)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        return random.uniform(0.0, min(self.backoff_max, self.backoff_base * (2.0 ** attempt)))

    async def _request(self, body: dict[str, Any], *, need_choice: bool) -> tuple[dict[str, Any], int]:
        """POST one chat completion with retries; returns (parsed JSON, HTTP attempts)."""
        if self._pool is not None:
            return await self._request_fanout(body, need_choice)
        attempt = timeouts = 0
        while True:
            if self._pause_until and self._pause_until > time.monotonic():
                await asyncio.sleep(self._pause_until - time.monotonic())
            await self._limiter.acquire()
            retry_after: float | None = None
            status: int | None = None
            try:
                # Rate last, while holding a concurrency slot: the time a request is admitted is the
                # time it is sent, so the window the limiter counts is the one the server sees.
                entry = await self._rate.acquire(self._estimate_tokens(body)) if self._rate.active else None
                self._count(requests=1)
                client = self._openai()
                # The per-request timeout is the http client's (connect/read/write/pool, set at creation).
                response = await self._post(client, body)
                self._rate.observe(response.headers)
                try:
                    data = _loads(response.content)
                except ValueError:
                    raise _BadResponse(f"the answer is not JSON (HTTP {response.status_code}, "
                                       f"{response.headers.get('content-type', '?')}): "
                                       f"{response.text[:200]!r}") from None
                if not isinstance(data, dict):
                    raise _BadResponse(f"the answer is JSON but not an object: {str(data)[:200]!r}")
                if need_choice and not data.get("choices"):
                    detail = data.get("error") or "empty choice list"
                    raise _BadResponse(f"the answer has no choices ({str(detail)[:200]})")
                if entry is not None and self._rate.tokens is not None:
                    self._rate.settle(entry, _used_tokens(data))
                return data, attempt + 1
            except openai.APIStatusError as exc:
                status = exc.status_code
                retryable = status in RETRYABLE_STATUS or status >= 500
                self._rate.observe(exc.response.headers)
                retry_after = parse_retry_after(exc.response.headers)
                reason = f"HTTP {status}: {self._short(exc)}"
            except (openai.APITimeoutError, TimeoutError):
                timeouts += 1
                retryable, reason = timeouts <= MAX_TIMEOUT_RETRIES, f"no answer within {self.timeout:g} s"
                reason += "" if retryable else _TIMEOUT_HINT
            except openai.APIConnectionError as exc:
                cause = exc.__cause__ or exc
                retryable, reason = True, f"connection error: {type(cause).__name__}: {cause}"
            except _BadResponse as exc:
                retryable, reason = True, str(exc)
            finally:
                self._limiter.release()
            self._count(errors=1)
            if not retryable or attempt >= self.max_retries:
                message = (f"teacher request to {self._url} (model {self.model!r}) failed after "
                           f"{attempt + 1} attempt(s): {reason}")
                if not retryable:
                    message += self._hint(status)
                elif status is None and reason.startswith("connection error"):
                    message += (f" — is the teacher running at {self.base_url}? Check TEACHER_MODEL_BASE_URL"
                                f"{' or start it with `ktools serve-teacher`' if self.provider == 'local' else ''}")
                raise TeacherError(self._redact(message), status=status, retryable=retryable)
            if retry_after is not None:
                delay = min(retry_after, MAX_RETRY_AFTER) + random.uniform(0.0, 0.1)
                if status == 429:  # the server is saturated: hold back every request of this client
                    self._pause_until = max(self._pause_until, time.monotonic() + delay)
            else:
                delay = self._backoff(attempt)
            attempt += 1
            self._count(retries=1)
            log.warning("teacher request failed (%s); retry %d/%d in %.1f s",
                        self._redact(reason), attempt, self.max_retries, delay)
            await asyncio.sleep(delay)

    async def _request_fanout(self, body: dict[str, Any], need_choice: bool) -> tuple[dict[str, Any], int]:
        """`_request` over several endpoints (see ktools.llm.endpoints).

        A failed attempt (connection error, timeout, 5xx, 429, unusable answer; also 401/403/404,
        which may be one misconfigured replica, though they never start a cool-down) goes at once to
        another endpoint that is up and has not failed this request yet: no backoff, no retry used.
        When no such endpoint is left, the attempt counts as one retry of `max_retries` with the
        usual backoff, and every endpoint may be tried again. A 429's wait pauses that endpoint only.
        """
        pool = self._pool
        assert pool is not None
        attempt = 0
        sent = 0
        tried: set[int] = set()
        while True:
            await self._limiter.acquire()
            endpoint = None
            outcome: str | None = None
            pause = 0.0
            retry_after: float | None = None
            status: int | None = None
            reason = ""
            started = 0.0
            try:
                endpoint = await pool.acquire(tried)
                # One limit for all replicas: RPM/TPM belong to the key or the deployment.
                entry = await self._rate.acquire(self._estimate_tokens(body)) if self._rate.active else None
                sent += 1
                self._count(requests=1)
                started = time.perf_counter()
                response = await self._post(self._openai(), body, endpoint.chat_url)
                self._rate.observe(response.headers)
                data = _decode_answer(response, need_choice)
                if entry is not None and self._rate.tokens is not None:
                    self._rate.settle(entry, _used_tokens(data))
                outcome = OK
                return data, sent
            except openai.APIStatusError as exc:
                status = exc.status_code
                retryable = status in RETRYABLE_STATUS or status >= 500
                self._rate.observe(exc.response.headers)
                retry_after = parse_retry_after(exc.response.headers)
                reason = f"HTTP {status}: {self._short(exc)}"
                if status in (429, 409, 425):
                    outcome, pause = BUSY, retry_after or 0.0
                elif retryable:
                    outcome, pause = FAILED, retry_after or 0.0
                else:  # 401/403/404 fail over below, but never rest an endpoint: a wrong model name
                    outcome = REJECTED  # would otherwise rest them all and make every failure slow
            except (openai.APITimeoutError, TimeoutError):
                retryable, reason, outcome = True, f"no answer within {self.timeout:g} s", FAILED
            except openai.APIConnectionError as exc:
                cause = exc.__cause__ or exc
                retryable, reason, outcome = True, f"connection error: {type(cause).__name__}: {cause}", FAILED
            except _BadResponse as exc:
                retryable, reason, outcome = True, str(exc), FAILED
            finally:
                if endpoint is not None:
                    pool.release(endpoint, outcome, time.perf_counter() - started, pause=pause,
                                  error=self._redact(reason)[:200])
                self._limiter.release()
            assert endpoint is not None
            self._count(errors=1)
            tried.add(endpoint.index)
            if (retryable or status in (401, 403, 404)) and pool.has_alternative(tried):
                self._count(failovers=1)
                log.info("teacher request failed on %s (%s); sending it to another endpoint",
                         endpoint.url, self._redact(reason))
                continue
            if not retryable or attempt >= self.max_retries:
                message = (f"teacher request to {endpoint.chat_url} (model {self.model!r}, one of "
                           f"{len(pool)} endpoints) failed after {sent} attempt(s): {reason}")
                if not retryable:
                    message += self._hint(status)
                elif status is None and reason.startswith("connection error"):
                    message += (f" — are the teachers running at {', '.join(self.base_urls)}? "
                                "Check TEACHER_MODEL_BASE_URL")
                raise TeacherError(self._redact(message), status=status, retryable=retryable)
            tried.clear()
            if retry_after is not None:
                delay = min(retry_after, MAX_RETRY_AFTER) + random.uniform(0.0, 0.1)
            else:
                delay = self._backoff(attempt)
            attempt += 1
            self._count(retries=1)
            log.warning("teacher request failed on every endpoint up (last %s: %s); retry %d/%d in %.1f s",
                        endpoint.url, self._redact(reason), attempt, self.max_retries, delay)
            await asyncio.sleep(delay)

    def _short(self, exc: openai.APIStatusError) -> str:
        try:
            body = exc.response.text
        except Exception:
            body = str(exc)
        return body.strip().replace("\n", " ")[:300]

    def _hint(self, status: int | None) -> str:
        if status in (401, 403):
            return " — check TEACHER_MODEL_API_KEY (and that it belongs to this provider)"
        if status == 404:
            return f" — check TEACHER_MODEL_BASE_URL ({self.base_url}) and TEACHER_MODEL_NAME ({self.model})"
        if status in (400, 422):
            return " — the endpoint rejected the request; check the sampling parameters it supports"
        return ""

    def _redact(self, text: str) -> str:
        key = self._api_key
        return text.replace(key, mask_secret(key)) if key and len(key) >= 4 else text

    async def achat(self, messages: list[dict[str, Any]], params: SamplingParams = _DEFAULT_PARAMS,
                    n: int = 1) -> ChatResult:
        """`n` samples for one conversation; raises TeacherError once retries are spent."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self._count(calls=1)
        body = self._body(messages, params)
        try:
            return await self._achat(body, n)
        except TeacherError:
            self._count(failures=1)
            raise

    async def _achat(self, body: dict[str, Any], n: int) -> ChatResult:
        choices: list[Choice] = []
        usage = Usage()
        sent = 0
        model = self.model
        if n > 1 and self.supports_n:
            data, attempts = await self._request({**body, "n": n}, need_choice=False)
            sent += attempts
            model = self._account(data, usage) or model
            choices = _parse_choices(data, self._reasoning_form)[:n]
            if len(choices) < n:
                log.debug("asked for n=%d, got %d choices: sending the rest as single requests", n, len(choices))
        missing = n - len(choices)
        if missing == 1 and not choices:
            data, attempts = await self._request(body, need_choice=True)
            sent += attempts
            model = self._account(data, usage) or model
            choices = _parse_choices(data, self._reasoning_form)[:1]
        elif missing > 0:
            self._count(fanout_requests=missing)
            seed = body.get("seed")
            bodies = [body if seed is None else {**body, "seed": seed + len(choices) + i} for i in range(missing)]
            if seed is not None and not choices:
                bodies[0] = body  # the first sample keeps the caller's seed
            results = await asyncio.gather(*(self._request(b, need_choice=True) for b in bodies),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            for data, attempts in results:  # type: ignore[misc]
                sent += attempts
                model = self._account(data, usage) or model
                choices.extend(_parse_choices(data, self._reasoning_form)[:1])
        return ChatResult(choices=choices, model=model, usage=usage, requests_sent=sent)

    def _account(self, data: dict[str, Any], usage: Usage) -> str | None:
        u = data.get("usage")
        if isinstance(u, dict):
            prompt = u.get("prompt_tokens") or 0
            completion = u.get("completion_tokens") or 0
            usage.prompt_tokens += prompt
            usage.completion_tokens += completion
            self._count(prompt_tokens=prompt, completion_tokens=completion)
        return data.get("model")

    # --- sync entry points ---
    def chat(self, messages: list[dict[str, Any]], params: SamplingParams = _DEFAULT_PARAMS,
             n: int = 1) -> ChatResult:
        """Synchronous `achat`; safe inside a running event loop (runs on the client's own loop thread)."""
        return self._sync(self.achat(messages, params, n))

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._clients_lock:
            if self._loop_thread is None or self._loop_thread.loop.is_closed():
                self._loop_thread = _LoopThread("ktools-teacher-client")
            runner = self._loop_thread
        if asyncio._get_running_loop() is runner.loop:
            coro.close()
            raise RuntimeError("TeacherClient.chat() called from the client's own loop; use await achat()")
        return runner.run(coro)

    # --- closing ---
    async def aclose(self) -> None:
        """Close the connections of the running loop's client and the sync loop thread."""
        loop = asyncio.get_running_loop()
        with self._clients_lock:
            client = self._clients.pop(loop, None)
            if self._last[0] is loop:
                self._last = (None, None)
        if client is not None:
            await client.close()
        await asyncio.to_thread(self._close_others)

    def close(self) -> None:
        """Close every connection pool this client opened (and its sync loop thread)."""
        running = asyncio._get_running_loop()
        with self._clients_lock:
            if running is not None and running in self._clients:
                client = self._clients.pop(running)
                running.create_task(client.close())
            self._last = (None, None)
        self._close_others()

    def _close_others(self) -> None:
        with self._clients_lock:
            items = list(self._clients.items())
            self._clients.clear()
            self._last = (None, None)
            thread, self._loop_thread = self._loop_thread, None
        for loop, client in items:
            # A loop that is not running belongs to a thread we cannot drive safely (it may be
            # about to run or close it); its pool goes with it. A running one closes its own pool,
            # unless it stops first (e.g. its run_until_complete just returned): then stop waiting.
            if loop.is_closed() or not loop.is_running():
                continue
            try:
                fut = asyncio.run_coroutine_threadsafe(client.close(), loop)
            except RuntimeError:  # closed meanwhile
                continue
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                try:
                    fut.result(0.05)
                    break
                except concurrent.futures.TimeoutError:
                    if not loop.is_running():
                        fut.cancel()
                        break
                except Exception as exc:  # closing is best effort
                    log.debug("closing a teacher connection pool failed: %s", exc)
                    break
        if thread is not None:
            thread.stop()

    async def __aenter__(self) -> TeacherClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> TeacherClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
