"""Fetching http(s) sources with httpx: clear errors for unreachable hosts and bad statuses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

from ktools.documents.errors import DocumentError


def is_url(source: str) -> bool:
    return bool(re.match(r"^https?://", str(source), re.I))


@dataclass
class Fetched:
    url: str
    data: bytes
    content_type: str


def fetch_url(url: str, timeout: float = 30.0) -> Fetched:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True,
                             headers={"User-Agent": "ktools-docs/0.1 (+knowledge tuning)"})
    except httpx.TimeoutException:
        raise DocumentError(url, f"no answer within {timeout:.0f} s",
                            "check the URL and your network, or download the page and pass the file") from None
    except httpx.HTTPError as exc:
        raise DocumentError(url, f"cannot reach the URL ({type(exc).__name__}: {exc})",
                            "check the URL and the network (no internet here?); or save the page "
                            "and pass the file instead") from None
    if response.status_code >= 400:
        raise DocumentError(url, f"HTTP {response.status_code} {response.reason_phrase}",
                            "check the URL (a login-only page must be saved and passed as a file)")
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return Fetched(str(response.url), response.content, content_type)


def extension_for(url: str, content_type: str, data: bytes) -> str:
    """The document type of a fetched URL: content type first, then the path, then sniffing."""
    by_type = {"text/html": ".html", "application/xhtml+xml": ".html", "application/pdf": ".pdf",
               "text/markdown": ".md", "text/x-markdown": ".md", "text/plain": ".txt",
               "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx"}
    if content_type in by_type:
        return by_type[content_type]
    path = urlparse(url).path.lower()
    for ext in (".pdf", ".docx", ".md", ".markdown", ".txt", ".html", ".htm"):
        if path.endswith(ext):
            return ext
    if data[:5] == b"%PDF-":
        return ".pdf"
    if b"<html" in data[:2048].lower():
        return ".html"
    return ".html"


def url_slug(url: str) -> str:
    parsed = urlparse(url)
    raw = (parsed.netloc + parsed.path).rstrip("/")
    raw = re.sub(r"\.(html?|pdf|docx|md|txt)$", "", raw, flags=re.I)
    return re.sub(r"[^A-Za-z0-9]+", "-", raw).strip("-")[:80] or "page"
