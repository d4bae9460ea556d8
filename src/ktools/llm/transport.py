"""A lean HTTP/1.1 keep-alive transport for `httpx2.AsyncClient` (what `openai` runs on).

Why: the stock transport (httpcore2 over anyio) costs ~2 ms of CPU per request
here, and its pool checks every open connection (a `poll` syscall each) before
every request, so at 200 connections the client, not the teacher, becomes the
bottleneck (measured: 4–5 ms CPU per request, 10× the latency-bound wall time).
This transport keeps a LIFO stack of idle connections per host on plain asyncio
Protocols: a request is one `write`, a response is parsed from the bytes as they
arrive, nothing is scanned. httpx2 still builds the request and the response
(content decoding, headers), and `openai` still does everything above it.

Scope: HTTP/1.1 with Content-Length, chunked or read-until-close bodies, over
plain TCP. No TLS: the client picks this transport only for `http://` teachers
(local servers, a GPU box on the LAN), where the per-request CPU matters; an
`https://` API goes through httpx2's stock transport, which verifies certificates
the way users expect. Proxies are not supported either: the client uses the stock
transport when a proxy is configured for the URL.

A request whose connection dies before any response byte arrived is NOT re-sent
here: it surfaces as a connection error so the client's retry loop (which counts
retries) decides. Idle connections are dropped after 4 s, before common servers'
keep-alive timeouts (uvicorn: 5 s), so that race is rare.

`LeanAsyncClient` is the `httpx2.AsyncClient` handed to `openai` with this
transport: what `openai` asks of it (build a request from a URL, a header list
and a body; send it) takes a short path — cached URL objects, one header merge,
no auth/redirect/event-hook generators — and anything else (params, cookies,
files, auth, redirects, hooks) goes through httpx2's own code.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from typing import Any

import httpx2
from httpx2._client import USE_CLIENT_DEFAULT, UseClientDefault

SET_COOKIE = "ktools_set_cookie"  # response extension: the response sets cookies
_KEEPALIVE_EXPIRY = 4.0  # < uvicorn's default 5 s idle timeout, so we rarely race a server close
_MAX_HEAD = 256 * 1024
# A chat completion is kilobytes; a body past this is refused as it arrives (declared
# length, chunk sizes or bytes read until close), so a server sending 300 MB costs
# ktools at most this much memory. The engine caps each sample's length on top.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def _check_body_size(size: int) -> None:
    if size > MAX_RESPONSE_BYTES:
        raise ValueError(f"response body over the {MAX_RESPONSE_BYTES // 2**20} MB cap for a teacher reply")


class _StaleConnection(Exception):
    """The connection closed before any byte of the response arrived."""


class _Connection(asyncio.Protocol):
    __slots__ = ("transport", "buf", "waiter", "closed", "received", "head", "mode", "remaining",
                 "body", "keep_alive", "idle_since", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[Any] | None = None
        self.closed = False
        self.received = False
        self.head: tuple[int, bytes, list[tuple[bytes, bytes]]] | None = None
        self.mode = ""  # "length" | "chunked" | "close"
        self.remaining = 0
        self.body = bytearray()
        self.keep_alive = True
        self.idle_since = 0.0

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.buf += data
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            try:
                result = self._parse()
            except Exception as exc:  # malformed response: fail this request, drop the connection
                self.keep_alive = False
                waiter.set_exception(httpx2.RemoteProtocolError(f"malformed HTTP response: {exc}"))
                self.close()
                return
            if result is not None:
                waiter.set_result(result)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost finishes the work

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.head is not None and self.mode == "close":
                status, reason, headers = self.head
                self.keep_alive = False
                waiter.set_result((status, reason, headers, bytes(self.body) + bytes(self.buf)))
            elif not self.received:
                waiter.set_exception(_StaleConnection())
            else:
                waiter.set_exception(httpx2.RemoteProtocolError(
                    f"server closed the connection mid-response ({exc or 'EOF'})"))

    # --- use ---
    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def roundtrip(self, data: bytes, read_timeout: float | None) -> tuple[int, bytes, list, bytes]:
        self.waiter = waiter = self.loop.create_future()
        self.received = bool(self.buf)
        self.head = None
        self.body = bytearray()
        self.keep_alive = True
        assert self.transport is not None
        self.transport.write(data)
        if self.buf:  # bytes that arrived while idle (unexpected): parse them now
            self.data_received(b"")
        # One timer handle per request (asyncio.timeout's context manager costs several times more).
        timer = None if read_timeout is None else self.loop.call_later(read_timeout, self._read_timed_out, waiter)
        try:
            return await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    @staticmethod
    def _read_timed_out(waiter: asyncio.Future[Any]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())

    def _parse(self) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes] | None:
        buf = self.buf
        while self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ValueError("response head too large")
                return None
            lines = bytes(buf[:end]).split(b"\r\n")
            del buf[:end + 4]
            version, _, rest = lines[0].partition(b" ")
            code, _, reason = rest.partition(b" ")
            status = int(code)
            if 100 <= status < 200:
                continue  # interim response (100 Continue): the real one follows
            headers: list[tuple[bytes, bytes]] = []
            length = None
            chunked = False
            connection = b""
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip()
                value = value.strip()
                headers.append((name, value))
                lname = name.lower()
                if lname == b"content-length":
                    length = int(value)
                elif lname == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif lname == b"connection":
                    connection = value.lower()
            if version == b"HTTP/1.1":
                self.keep_alive = b"close" not in connection
            else:
                self.keep_alive = b"keep-alive" in connection
            self.head = (status, reason, headers)
            if chunked:
                self.mode = "chunked"
                self.remaining = -1  # -1: expecting a chunk-size line
            elif length is not None:
                _check_body_size(length)
                self.mode, self.remaining = "length", length
            elif status in (204, 304):
                self.mode, self.remaining = "length", 0
            else:
                self.mode = "close"
                self.keep_alive = False
        status, reason, headers = self.head
        if self.mode == "length":
            if len(buf) < self.remaining:
                return None
            body = bytes(buf[:self.remaining])
            del buf[:self.remaining]
            return status, reason, headers, body
        if self.mode == "chunked":
            return self._parse_chunked(status, reason, headers)
        self.body += buf  # read until close
        buf.clear()
        _check_body_size(len(self.body))
        return None

    def _parse_chunked(self, status: int, reason: bytes, headers: list) -> tuple | None:
        buf = self.buf
        while True:
            if self.remaining == -1:  # chunk-size line
                end = buf.find(b"\r\n")
                if end < 0:
                    return None
                size = int(bytes(buf[:end]).split(b";", 1)[0].strip(), 16)
                del buf[:end + 2]
                if size == 0:
                    self.remaining = -2
                else:
                    _check_body_size(len(self.body) + size)
                    self.remaining = size
            if self.remaining == -2:  # trailers, ended by an empty line
                if buf.startswith(b"\r\n"):
                    del buf[:2]
                    return status, reason, headers, bytes(self.body)
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return None
                del buf[:end + 4]
                return status, reason, headers, bytes(self.body)
            if len(buf) < self.remaining + 2:
                return None
            self.body += buf[:self.remaining]
            del buf[:self.remaining + 2]
            self.remaining = -1


def _read_response(status: int, headers: list, body: bytes, request: httpx2.Request, reason: bytes,
                   preread: bool) -> httpx2.Response:
    response = httpx2.Response(status, headers=headers, stream=httpx2.ByteStream(body), request=request,
                               extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason})
    if preread:
        # An unencoded body is its own content: what read() would make of it, without the
        # decoder and chunker machinery (a fifth of the client's CPU per request).
        response._content = body
        response.is_stream_consumed = True
        response.is_closed = True
    else:
        response.read()  # content-encoding (gzip, br, ...): httpx2 decodes
    return response


def _preread_works() -> bool:
    """Does a response given its content this way behave like one that was read? (httpx2 internals)"""
    try:
        body = '{"ok": "\u00e9 é"}'.encode()
        response = _read_response(200, [(b"Content-Type", b"application/json; charset=utf-8")], body,
                                  httpx2.Request("POST", "http://127.0.0.1/"), b"OK", True)
        return (response.content == body and response.json() == {"ok": "é é"} and response.is_closed
                and response.is_stream_consumed and response.text == body.decode())
    except Exception:  # noqa: BLE001 - any change in httpx2: use read()
        return False


_PREREAD = _preread_works()


def _response(status: int, headers: list, body: bytes, request: httpx2.Request, reason: bytes) -> httpx2.Response:
    encoded = cookies = False
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-encoding":
            encoded = encoded or value.strip().lower() not in (b"", b"identity")
        elif lname == b"set-cookie":
            cookies = True
    response = _read_response(status, headers, body, request, reason, _PREREAD and not encoded)
    if cookies:
        response.extensions[SET_COOKIE] = True  # LeanAsyncClient stores them without scanning every response
    return response


class FastAsyncTransport(httpx2.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 connection pool; concurrency is bounded by the caller.

    Create and use it on one event loop (as the AsyncOpenAI that owns it).
    """

    def __init__(self, *, max_keepalive: int = 256):
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._max_keepalive = max_keepalive
        self._open: set[_Connection] = set()
        self._closed = False

    async def _connect(self, key: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: _Connection(loop), host, port)
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"connecting to {host}:{port} timed out after {timeout} s") from None
        except OSError as exc:
            raise httpx2.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        self._open.add(conn)
        return conn

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        stack = self._idle.get(key)
        now = time.monotonic()
        while stack:
            conn = stack.pop()
            if not conn.closed and now - conn.idle_since < _KEEPALIVE_EXPIRY:
                return conn
            self._discard(conn)
        return None

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)

    def _give_back(self, key: tuple[str, str, int], conn: _Connection) -> None:
        stack = self._idle.setdefault(key, [])
        if self._closed or conn.closed or len(stack) >= self._max_keepalive:
            self._discard(conn)
            return
        conn.idle_since = time.monotonic()
        stack.append(conn)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        scheme = url.scheme
        if scheme != "http":
            raise httpx2.UnsupportedProtocol(
                f"{url}: the lean transport speaks plain http only; use the stock httpx2 transport "
                "(TeacherClient(fast_transport=False), the default for https) for this URL")
        port = url.port or 80
        key = (scheme, url.host, port)
        content = request.content if hasattr(request, "_content") else await request.aread()
        head = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        data = b"".join(head) + content
        timeouts = request.extensions.get("timeout") or {}
        conn = self._take_idle(key)
        if conn is None:
            conn = await self._connect(key, timeouts.get("connect"))
        try:
            status, reason, headers, body = await conn.roundtrip(data, timeouts.get("read"))
        except _StaleConnection:
            # Not retried here: the caller's retry loop decides, and counts it.
            self._discard(conn)
            raise httpx2.RemoteProtocolError("server closed the connection without a response") from None
        except TimeoutError:
            self._discard(conn)
            raise httpx2.ReadTimeout(f"no response within {timeouts.get('read')} s", request=request) from None
        except BaseException:  # cancelled or protocol error: the connection state is unknown
            self._discard(conn)
            raise
        if conn.keep_alive:
            self._give_back(key, conn)
        else:
            self._discard(conn)
        return _response(status, headers, body, request, reason)

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()


def request_factory(template: httpx2.Request) -> Callable[[bytes], httpx2.Request]:
    """Requests like `template` (method, URL, headers, extensions) with another body.

    For a client that sends many requests differing only in their body: the headers
    are normalised once, each request gets its own Content-Length.
    """
    method, url, extensions = template.method, template.url, dict(template.extensions)
    headers = httpx2.Headers([(k, v) for k, v in template.headers.raw
                              if k.lower() not in (b"content-length", b"transfer-encoding")])

    def make(content: bytes) -> httpx2.Request:
        # httpx2.Request copies a Headers object as is (no per-header normalising)
        request = httpx2.Request(method, url, headers=headers, stream=httpx2.ByteStream(content),
                                 extensions=extensions)
        request.headers["Content-Length"] = str(len(content))
        request.read()  # in memory: replayable like a content= request
        return request

    return make


class LeanAsyncClient(httpx2.AsyncClient):
    """`httpx2.AsyncClient` over `FastAsyncTransport`, with a short path for plain requests.

    The short path applies to what `openai` sends: a URL string, a list of header
    pairs (str), a bytes body, no params/cookies/files, no auth, no redirects followed,
    no event hooks. It merges headers like httpx2 (the request's win over the
    client's, case-insensitively) and sets the same timeout extension; the result
    is an ordinary `httpx2.Request` / `httpx2.Response`. Anything else takes
    httpx2's full path. Cookies a server sets are still stored.
    """

    def __init__(self, transport: FastAsyncTransport, timeout: Any):
        super().__init__(transport=transport, timeout=timeout, trust_env=False)
        self._lean = transport
        self._urls: dict[str, tuple[httpx2.URL, str]] = {}  # url -> (URL, Host header value)
        self._last_timeout: tuple[Any, dict[str, Any]] | None = None
        self._client_headers_of: httpx2.Headers | None = None
        self._client_headers: list[tuple[str, str, str]] = []

    def _default_headers(self) -> list[tuple[str, str, str]]:
        """The client's own headers as (lower-case name, name, value), re-read when they are replaced."""
        if self.headers is not self._client_headers_of:
            self._client_headers_of = self.headers
            self._client_headers = [(k.lower(), k, v) for k, v in self.headers.multi_items()]
        return self._client_headers

    def _timeout_extension(self, timeout: Any) -> dict[str, Any]:
        last = self._last_timeout
        if last is not None and (timeout is last[0] or timeout == last[0]):
            return last[1]
        resolved = self.timeout if isinstance(timeout, UseClientDefault) else httpx2.Timeout(timeout)
        ext = {"timeout": resolved.as_dict()}
        self._last_timeout = (timeout, ext)
        return ext

    def build_request(self, method: str, url: httpx2.URL | str, *, content: Any = None, data: Any = None,
                      files: Any = None, json: Any = None, params: Any = None, headers: Any = None,
                      cookies: Any = None, timeout: Any = USE_CLIENT_DEFAULT,
                      extensions: Any = None) -> httpx2.Request:
        if (type(url) is not str or type(content) is not bytes or data is not None
                or files is not None or json is not None or params or cookies or extensions is not None
                or not (headers is None or type(headers) is list) or self.params or self.cookies
                or not all(type(item[0]) is str for item in headers or ())):
            return super().build_request(method, url, content=content, data=data, files=files, json=json,
                                         params=params, headers=headers, cookies=cookies, timeout=timeout,
                                         extensions=extensions)
        cached = self._urls.get(url)
        if cached is None:
            target = self._merge_url(url)
            cached = (target, target.netloc.decode("ascii"))
            if len(self._urls) < 256:
                self._urls[url] = cached
        target, host = cached
        merged = {lower: (key, value) for lower, key, value in self._default_headers()}
        for key, value in headers or ():
            merged[key.lower()] = (key, value)
        # What httpx2.Request(content=...) would add: Host first, Content-Length for a body.
        if "host" not in merged:
            merged = {"host": ("Host", host), **merged}
        if "content-length" not in merged and "transfer-encoding" not in merged:
            merged["content-length"] = ("Content-Length", str(len(content)))
        # timeout extensions are shared between requests: httpx2 copies the dict and only reads it
        request = httpx2.Request(method, target, headers=list(merged.values()),
                                 stream=httpx2.ByteStream(content), extensions=self._timeout_extension(timeout))
        request.read()  # the body is in memory: make it replayable like a content= request
        return request

    async def send(self, request: httpx2.Request, *, stream: bool = False,
                   auth: Any = USE_CLIENT_DEFAULT, follow_redirects: Any = USE_CLIENT_DEFAULT) -> httpx2.Response:
        if (not isinstance(auth, UseClientDefault) or self.auth is not None or follow_redirects is True
                or (follow_redirects is USE_CLIENT_DEFAULT and self.follow_redirects)
                or self.event_hooks["request"] or self.event_hooks["response"]
                or request.url.userinfo or "timeout" not in request.extensions):
            return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        start = time.perf_counter()
        response = await self._lean.handle_async_request(request)
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        response.default_encoding = self._default_encoding
        if response.extensions.get(SET_COOKIE):
            self.cookies.extract_cookies(response)
        # Like httpx2 when not following redirects: say where one points.
        if 300 <= response.status_code < 400 and response.has_redirect_location:
            try:
                response.next_request = self._build_redirect_request(request, response)
            except httpx2.RemoteProtocolError:
                pass
        return response
