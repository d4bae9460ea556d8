"""Fetching http(s) sources with httpx: clear errors for unreachable hosts and bad statuses.

A URL can carry credentials (`http://user:pw@host/…`, `?token=…`). `redact_url` is the
form ktools keeps: user-info dropped, secret-looking query values replaced; it is what
every name, id, manifest field, error and log line shows. The full URL is used only for
the request itself.

A download is bounded: `max_bytes` (the body is streamed and the transfer stopped as
soon as it passes the cap; a Content-Length above it is refused before reading) and
`deadline` seconds for the whole transfer (a per-read timeout alone lets a server that
drips one byte at a time hold a run forever).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ktools.documents.errors import DocumentError

DEFAULT_DOWNLOAD_TIMEOUT = 30.0  # seconds without data (connect / each read)
DEFAULT_DOWNLOAD_DEADLINE = 120.0  # seconds for the whole transfer
DEFAULT_DOWNLOAD_MAX_BYTES = 50 * 1024 * 1024

REDACTED = "REDACTED"
# Query parameter names (or parts of them, split on _ - .) that carry credentials.
_SECRET_PARTS = {"key", "apikey", "sig", "signature", "token", "secret", "password", "passwd", "pwd", "auth",
                 "authorization", "credential", "credentials", "session", "sessionid", "code", "jwt", "bearer"}
_SECRET_SUBSTRINGS = ("token", "secret", "passw", "signature", "apikey", "credential", "auth")
_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+", re.I)


def is_url(source: str) -> bool:
    return bool(re.match(r"^https?://", str(source), re.I))


def is_secret_parameter(name: str) -> bool:
    lowered = name.lower()
    parts = set(re.split(r"[-_.\[\]]+", lowered))
    return bool(parts & _SECRET_PARTS) or any(s in lowered for s in _SECRET_SUBSTRINGS)


def redact_url(url: str) -> str:
    """The URL without user-info and with secret-looking query values replaced by REDACTED."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return re.sub(r"//[^/@\s]*@", "//", url)  # unparsable: at least drop user-info
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_parameter(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if is_secret_parameter(k) else v) for k, v in pairs],
                              quote_via=quote, safe="/:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str) -> str:
    """`text` with every http(s) URL in it redacted (error messages of HTTP libraries quote URLs)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


class _RedactUrlsFilter(logging.Filter):
    """httpx logs each request's full URL at INFO; ktools' log shows it redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = redact_text(message), None
        return True


for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_RedactUrlsFilter())


@dataclass
class Fetched:
    url: str  # the final URL after redirects, redacted
    data: bytes
    content_type: str


def fetch_url(url: str, timeout: float = DEFAULT_DOWNLOAD_TIMEOUT, *,
              deadline: float = DEFAULT_DOWNLOAD_DEADLINE,
              max_bytes: int = DEFAULT_DOWNLOAD_MAX_BYTES) -> Fetched:
    """GET `url` (redirects followed): at most `max_bytes`, within `deadline` seconds in all."""
    import httpx

    shown = redact_url(url)
    started = time.monotonic()

    def over_time() -> DocumentError:
        return DocumentError(shown, f"the download took longer than the {deadline:.0f} s limit",
                             "raise the limit (--download-deadline / deadline=) or download the file and "
                             "pass it as a file")

    def too_big(size: str) -> DocumentError:
        return DocumentError(shown, f"the download is larger than the {max_bytes / 2**20:.0f} MB limit ({size})",
                             "raise the limit (--max-download-mb / max_bytes=) or download the file and "
                             "pass it as a file")

    chunks: list[bytes] = []
    received = 0
    try:
        with httpx.stream("GET", url, timeout=min(timeout, deadline), follow_redirects=True,
                          headers={"User-Agent": "ktools-docs/0.1 (+knowledge tuning)"}) as response:
            if response.status_code >= 400:
                raise DocumentError(shown, f"HTTP {response.status_code} {response.reason_phrase}",
                                    "check the URL (a login-only page must be saved and passed as a file)")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise too_big(f"Content-Length {int(declared) / 2**20:.1f} MB")
            for piece in response.iter_bytes():
                received += len(piece)
                if received > max_bytes:
                    raise too_big(f"more than {received / 2**20:.1f} MB sent")
                chunks.append(piece)
                if time.monotonic() - started > deadline:
                    raise over_time()
            final_url = str(response.url)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    except httpx.TimeoutException:
        if time.monotonic() - started > deadline:
            raise over_time() from None
        raise DocumentError(shown, f"no answer within {timeout:.0f} s",
                            "check the URL and your network, or download the page and pass the file") from None
    except httpx.HTTPError as exc:
        raise DocumentError(shown, f"cannot reach the URL ({type(exc).__name__}: {redact_text(str(exc))})",
                            "check the URL and the network (no internet here?); or save the page "
                            "and pass the file instead") from None
    return Fetched(redact_url(final_url), b"".join(chunks), content_type)


def extension_for(url: str, content_type: str, data: bytes) -> str:
    """The document type of a fetched URL: content type first, then the path, then sniffing."""
    by_type = {"text/html": ".html", "application/xhtml+xml": ".html", "application/pdf": ".pdf",
               "text/markdown": ".md", "text/x-markdown": ".md", "text/plain": ".txt",
               "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx"}
    if content_type in by_type:
        return by_type[content_type]
    path = urlsplit(url).path.lower()
    for ext in (".pdf", ".docx", ".md", ".markdown", ".txt", ".html", ".htm"):
        if path.endswith(ext):
            return ext
    if data[:5] == b"%PDF-":
        return ".pdf"
    if b"<html" in data[:2048].lower():
        return ".html"
    return ".html"


def url_slug(url: str) -> str:
    """A file-name stem from host and path; never from user-info or the query."""
    parsed = urlsplit(redact_url(url))
    raw = (parsed.netloc + parsed.path).rstrip("/")
    raw = re.sub(r"\.(html?|pdf|docx|md|txt)$", "", raw, flags=re.I)
    return re.sub(r"[^A-Za-z0-9]+", "-", raw).strip("-")[:80] or "page"
