"""Requests-per-minute and tokens-per-minute limits for the teacher client.

    limiter = RateLimiter(requests=120, tokens=200_000)          # per 60-s window
    entry = await limiter.acquire(estimated_tokens)               # just before a request is sent
    limiter.settle(entry, actual_tokens)                          # once its usage is known
    limiter.observe(response.headers)                             # x-ratelimit-remaining-* / reset-*

A sliding window, not a token bucket: a bucket refilling at 2/s lets 120 through at
once and 120 more over the next minute - 240 in one 60-s window. Here a request is
admitted only while fewer than `requests` were admitted in the last `window` seconds
(plus a small margin, so network jitter cannot make the server see one too many), and
while the tokens admitted in that window plus its estimate fit `tokens`. The estimate
(prompt size + max_tokens, what providers reserve) is replaced by the real usage when
the answer arrives.

Server headers are followed too: `x-ratelimit-remaining-requests` / `-tokens` at 0
hold every new request until `x-ratelimit-reset-requests` / `-tokens` ("1s", "6m0s",
"20ms", or seconds) - so a key shared with other jobs slows down before it gets 429s.

Time is `clock()` (monotonic by default) and waiting is `sleep()`: tests inject both,
or use a short window, to check the limit without waiting minutes.
"""

from __future__ import annotations

import asyncio
import collections
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset(value: str | None) -> float | None:
    """Seconds from a reset header: "1s", "6m0s", "20ms", "1h2m3.5s" or a plain number."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = list(_DURATION.finditer(value))
    if not parts or "".join(m.group(0) for m in parts) != value:
        return None
    return sum(float(m.group("value")) * _UNIT[m.group("unit")] for m in parts)


def _remaining(headers: Mapping[str, Any], kind: str) -> int | None:
    raw = headers.get(f"x-ratelimit-remaining-{kind}")
    try:
        return int(float(raw)) if raw is not None else None
    except (TypeError, ValueError):
        return None


class RateLimiter:
    """At most `requests` requests and `tokens` tokens per `window` seconds (None: no limit)."""

    def __init__(self, requests: int | None = None, tokens: int | None = None, *, window: float = 60.0,
                 margin: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
        if requests is not None and requests < 1:
            raise ValueError(f"requests per window must be >= 1, got {requests}")
        if tokens is not None and tokens < 1:
            raise ValueError(f"tokens per window must be >= 1, got {tokens}")
        self.requests = requests
        self.tokens = tokens
        self.window = float(window)
        # Requests leave the window this much late: a request sent exactly `window` after
        # another may reach the server a few ms sooner than that one did.
        self.margin = max(0.05, 0.005 * self.window) if margin is None else float(margin)
        self.clock = clock
        self.sleep = sleep
        self._log: collections.deque[list[float]] = collections.deque()  # [admitted at, tokens]
        self._tokens_in_window = 0.0
        self._blocked_until = 0.0  # from the server's headers
        self._lock = threading.Lock()
        self.waits = 0          # acquisitions that had to wait
        self.waited = 0.0       # seconds spent waiting, summed
        self.header_pauses = 0  # times the server's headers held requests back

    @property
    def active(self) -> bool:
        """True when a request may have to wait: a limit of ours, or a pause the server asked for."""
        return self.requests is not None or self.tokens is not None or self._blocked_until > 0.0

    @classmethod
    def per_minute(cls, rpm: int | None, tpm: int | None, **kwargs: Any) -> RateLimiter | None:
        """A limiter for RPM/TPM settings; None when neither is set (headers are then not followed either)."""
        if not rpm and not tpm:
            return None
        return cls(rpm or None, tpm or None, **kwargs)

    def _expire(self, now: float) -> None:
        horizon = now - self.window - self.margin
        log = self._log
        while log and log[0][0] <= horizon:
            self._tokens_in_window -= log.popleft()[1]

    def try_acquire(self, tokens: float = 0.0) -> tuple[list[float] | None, float]:
        """(entry, 0) when admitted now, else (None, seconds to wait before trying again)."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            if now < self._blocked_until:
                return None, self._blocked_until - now
            span = self.window + self.margin
            log = self._log
            if self.requests is not None and len(log) >= self.requests:
                return None, log[len(log) - self.requests][0] + span - now
            if self.tokens is not None and log and self._tokens_in_window + tokens > self.tokens:
                excess, freed = self._tokens_in_window + tokens - self.tokens, 0.0
                for admitted, used in log:
                    freed += used
                    if freed >= excess:
                        return None, admitted + span - now
                return None, log[-1][0] + span - now
            entry = [now, float(tokens)]
            log.append(entry)
            self._tokens_in_window += tokens
            return entry, 0.0

    async def acquire(self, tokens: float = 0.0) -> list[float]:
        """Wait until a request of about `tokens` tokens may be sent; returns its entry for `settle`."""
        entry, wait = self.try_acquire(tokens)
        if entry is not None:
            return entry
        started = self.clock()
        self.waits += 1
        while entry is None:
            await self.sleep(max(wait, 0.001))
            entry, wait = self.try_acquire(tokens)
        self.waited += self.clock() - started
        return entry

    def settle(self, entry: list[float], tokens: float) -> None:
        """Replace a request's estimate by what it really used (while it is still in the window)."""
        with self._lock:
            if self._log and entry[0] >= self._log[0][0]:
                self._tokens_in_window += tokens - entry[1]
            entry[1] = float(tokens)

    def observe(self, headers: Mapping[str, Any] | None) -> None:
        """Follow the server's `x-ratelimit-*` headers: nothing left means wait for the reset."""
        if not headers:
            return
        pause = 0.0
        for kind in ("requests", "tokens"):
            left = _remaining(headers, kind)
            if left is not None and left <= 0:
                reset = parse_reset(headers.get(f"x-ratelimit-reset-{kind}"))
                pause = max(pause, 1.0 if reset is None else reset)
        if pause > 0:
            with self._lock:
                until = self.clock() + pause
                if until > self._blocked_until:
                    self._blocked_until = until
                    self.header_pauses += 1

    def stats(self) -> dict[str, Any]:
        return {"requests_per_window": self.requests, "tokens_per_window": self.tokens, "window_s": self.window,
                "waits": self.waits, "waited_s": round(self.waited, 3), "header_pauses": self.header_pauses}
