"""Several teacher endpoints behind one client: least outstanding requests, cool-downs, stats.

`TEACHER_MODEL_BASE_URL=http://gpu1:8000/v1,http://gpu2:8000/v1#8` lists replicas
serving the same model. The teacher client keeps its one global concurrency limit
(MAX_CONCURRENCY) and, for each request that holds a slot of it, asks this pool for
an endpoint:

- Share: each endpoint takes at most its share of requests at once: `URL#N` sets
  N, otherwise the global limit split evenly (ceil(limit / endpoints)), so by
  default the shares add up to the limit and no request waits for an endpoint
  while all are healthy. An endpoint cooling down leaves its share idle: the
  survivors are not pushed past their own share (which would overload them).
- Pick: among the endpoints that are up and have room, the one with the fewest
  outstanding requests relative to its share (plain least-outstanding when shares
  are equal); ties rotate. A faster replica frees its slots sooner, so it serves more.
- Health: `failures` consecutive failed attempts (connection errors, timeouts,
  5xx, unusable answers) take an endpoint out for a cool-down of `cooldown`
  seconds, doubled each time it fails again after coming back, up to
  `max_cooldown`. When the cool-down ends it is on probation: one request at a
  time until one succeeds (a replica that is still down costs one request, not its
  whole share); a failure on probation starts the next, longer cool-down. A 429
  with a wait pauses that endpoint alone for the wait, without counting as a failure.
- Waiting: if no endpoint is up (all cooling down or paused) or all are full,
  `acquire` waits for the earliest to come back or for a slot, FIFO. It never fails
  fast: the client's retry limit bounds how often a request is tried.

`stats()` gives per-endpoint requests, successes, errors, cool-downs and latency
(mean/p50/p95 of successful requests). Which endpoint served a request is not part
of anything stored: the response store keys on model, messages, parameters and
sample index only, so a run can resume against other endpoints.

Thread-safe: one pool serves every event loop the client is used from.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

log = logging.getLogger(__name__)

# Outcomes of one attempt, given to `release`.
OK = "ok"              # answered
FAILED = "failed"      # counts towards the endpoint's health (connection, timeout, 5xx, bad answer)
BUSY = "busy"          # 429-like: the endpoint asked us to wait; an error, not a health failure
REJECTED = "rejected"  # the request itself was refused (400, 422): an error, not the endpoint's fault


class Endpoint:
    """One base URL and its counters. Mutated only under the pool's lock."""

    __slots__ = ("index", "url", "chat_url", "share", "outstanding", "peak", "requests", "ok", "errors",
                 "cooldowns", "consecutive", "strikes", "down_until", "paused_until", "probing",
                 "latencies", "last_error")

    def __init__(self, index: int, url: str, share: int):
        self.index = index
        self.url = url
        self.chat_url = url + "/chat/completions"
        self.share = share
        self.outstanding = 0
        self.peak = 0
        self.requests = 0       # attempts sent here (counted when they end)
        self.ok = 0
        self.errors = 0         # failed attempts of any kind
        self.cooldowns = 0      # times taken out
        self.consecutive = 0    # failures in a row (health)
        self.strikes = 0        # cool-downs since the last success: the next one lasts cooldown * 2**strikes
        self.down_until = 0.0   # monotonic time the current cool-down ends
        self.paused_until = 0.0  # monotonic time a 429's wait ends
        self.probing = False    # back from a cool-down, no success yet: one request at a time
        self.latencies: list[float] = []  # seconds of successful attempts
        self.last_error = ""

    def limit(self) -> int:
        return 1 if self.probing else self.share

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r}, share={self.share}, outstanding={self.outstanding})"


class _Waiter:
    __slots__ = ("loop", "fut", "avoid")

    def __init__(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Endpoint | None],
                 avoid: frozenset[int]):
        self.loop = loop
        self.fut = fut
        self.avoid = avoid


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


class EndpointPool:
    """Endpoint choice and health for one teacher client (see the module doc)."""

    def __init__(self, endpoints: Sequence[tuple[str, int | None]], total_limit: int, *, failures: int = 3,
                 cooldown: float = 5.0, max_cooldown: float = 300.0, clock: Callable[[], float] = time.monotonic):
        if not endpoints:
            raise ValueError("an endpoint pool needs at least one base URL")
        if total_limit < 1 or failures < 1:
            raise ValueError(f"total_limit and failures must be >= 1, got {total_limit} and {failures}")
        default_share = max(1, math.ceil(total_limit / len(endpoints)))
        self.endpoints = [Endpoint(i, url.rstrip("/"), share or default_share)
                          for i, (url, share) in enumerate(endpoints)]
        self.failures = failures
        self.cooldown = max(0.0, float(cooldown))
        self.max_cooldown = max(self.cooldown, float(max_cooldown))
        self._clock = clock
        self._lock = threading.Lock()
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._turn = 0  # rotates ties between equally loaded endpoints

    def __len__(self) -> int:
        return len(self.endpoints)

    # --- choosing ---
    def _usable(self, ep: Endpoint, now: float) -> bool:
        return ep.down_until <= now and ep.paused_until <= now

    def _candidates(self, avoid: Collection[int], now: float) -> list[Endpoint]:
        """Endpoints up now, restricted to those not in `avoid` when any of them is up."""
        up = [ep for ep in self.endpoints if self._usable(ep, now)]
        if avoid:
            preferred = [ep for ep in up if ep.index not in avoid]
            if preferred:
                return preferred
        return up

    def _pick_locked(self, avoid: Collection[int], now: float) -> tuple[Endpoint | None, float | None]:
        """(endpoint to use, None) or (None, seconds until an endpoint comes back; None: wait for a slot)."""
        best: Endpoint | None = None
        best_load = math.inf
        candidates = self._candidates(avoid, now)
        count = len(candidates)
        for offset in range(count):
            ep = candidates[(self._turn + offset) % count]
            if ep.probing and ep.down_until <= now and ep.outstanding == 0:
                best = ep  # a replica back from its cool-down: probe it first
                break
            if ep.outstanding < ep.limit():
                load = ep.outstanding / ep.share
                if load < best_load:
                    best, best_load = ep, load
        if best is not None:
            self._turn += 1
            self._take_locked(best)
            return best, None
        return None, self._next_return_locked(now)

    def _next_return_locked(self, now: float) -> float | None:
        times = [max(ep.down_until, ep.paused_until) for ep in self.endpoints if not self._usable(ep, now)]
        return max(0.0, min(times) - now) if times else None

    def _take_locked(self, ep: Endpoint) -> None:
        ep.outstanding += 1
        if ep.outstanding > ep.peak:
            ep.peak = ep.outstanding

    def try_acquire(self, avoid: Collection[int] = ()) -> Endpoint | None:
        """An endpoint with room now (its slot taken), or None; never waits."""
        with self._lock:
            return self._pick_locked(avoid, self._clock())[0]

    async def acquire(self, avoid: Collection[int] = ()) -> Endpoint:
        """Take a slot on the best endpoint, waiting (FIFO) while none is up or has room.

        `avoid`: endpoint indexes that just failed this request; others are used while any is up.
        """
        avoid_set = frozenset(avoid)
        loop: asyncio.AbstractEventLoop | None = None
        while True:
            with self._lock:
                ep, wait = self._pick_locked(avoid_set, self._clock())
                if ep is not None:
                    return ep
                if loop is None:
                    loop = asyncio.get_running_loop()
                waiter = _Waiter(loop, loop.create_future(), avoid_set)
                self._waiters.append(waiter)
            try:
                if wait is None:
                    granted = await waiter.fut
                else:
                    async with asyncio.timeout(wait + 0.001):
                        granted = await waiter.fut
            except (TimeoutError, asyncio.CancelledError) as exc:
                with self._lock:
                    try:
                        self._waiters.remove(waiter)
                    except ValueError:  # already handed a slot (or told to look again)
                        pass
                fut = waiter.fut
                granted = fut.result() if fut.done() and not fut.cancelled() else None
                if isinstance(exc, asyncio.CancelledError):
                    if granted is not None:
                        self.release(granted, None, sent=False)
                    raise
            if granted is not None:
                return granted

    def has_alternative(self, avoid: Collection[int]) -> bool:
        """Whether an endpoint outside `avoid` is up now (possibly full): worth failing over to."""
        now = self._clock()
        with self._lock:
            return any(ep.index not in avoid and self._usable(ep, now) for ep in self.endpoints)

    # --- outcomes ---
    def release(self, ep: Endpoint, outcome: str | None, seconds: float | None = None, *,
                pause: float = 0.0, error: str = "", sent: bool = True) -> None:
        """Give the slot back and record how the attempt went (outcome None: cancelled, nothing learnt;
        sent=False: the slot was never used for a request)."""
        wake_all = False
        with self._lock:
            now = self._clock()
            ep.outstanding -= 1
            if sent:
                ep.requests += 1
            if outcome == OK:
                ep.ok += 1
                if seconds is not None:
                    ep.latencies.append(seconds)
                if ep.down_until <= now:  # a late answer from before a cool-down proves little
                    if ep.probing:
                        log.info("teacher endpoint %s answers again; back to its full share (%d)", ep.url, ep.share)
                    ep.consecutive = 0
                    ep.strikes = 0
                    ep.probing = False
            elif outcome is not None:
                ep.errors += 1
                if error:
                    ep.last_error = error
                if outcome == FAILED and ep.down_until <= now:
                    ep.consecutive += 1
                    if ep.probing or ep.consecutive >= self.failures:
                        self._cool_down_locked(ep, now)
                        wake_all = True
                if pause > 0:
                    ep.paused_until = max(ep.paused_until, now + pause)
                    wake_all = True
            grants = self._wake_all_locked() if wake_all else self._grant_locked(ep, now)
        for waiter, granted in grants:
            self._deliver(waiter, granted)

    def _cool_down_locked(self, ep: Endpoint, now: float) -> None:
        seconds = min(self.max_cooldown, self.cooldown * (2.0 ** ep.strikes))
        log.warning("teacher endpoint %s taken out for %.1f s after %d failed request(s) in a row%s (last: %s)",
                    ep.url, seconds, ep.consecutive, " on probation" if ep.probing else "", ep.last_error or "?")
        ep.down_until = now + seconds
        ep.strikes += 1
        ep.cooldowns += 1
        ep.consecutive = 0
        ep.probing = True  # when it comes back: one request at a time until one succeeds

    # --- handing slots to waiters ---
    def _grant_locked(self, ep: Endpoint, now: float) -> list[tuple[_Waiter, Endpoint | None]]:
        """Hand the slot just freed on `ep` to the oldest waiter that may use it."""
        if not self._waiters or not self._usable(ep, now) or ep.outstanding >= ep.limit():
            return []
        for waiter in self._waiters:
            if ep.index in waiter.avoid and any(
                    e.index not in waiter.avoid and self._usable(e, now) for e in self.endpoints):
                continue  # it waits for an endpoint it has not failed on yet
            self._waiters.remove(waiter)
            self._take_locked(ep)
            return [(waiter, ep)]
        return []

    def _wake_all_locked(self) -> list[tuple[_Waiter, Endpoint | None]]:
        """Every waiter looks again (an endpoint went down or paused: their wait times changed)."""
        woken = [(w, None) for w in self._waiters]
        self._waiters.clear()
        return woken

    def _deliver(self, waiter: _Waiter, granted: Endpoint | None) -> None:
        if asyncio._get_running_loop() is waiter.loop:
            self._settle(waiter, granted)
        else:
            try:
                waiter.loop.call_soon_threadsafe(self._settle, waiter, granted)
            except RuntimeError:  # that loop is closed: its request is gone, give the slot back
                if granted is not None:
                    self.release(granted, None, sent=False)

    def _settle(self, waiter: _Waiter, granted: Endpoint | None) -> None:
        if waiter.fut.done():  # the waiter gave up meanwhile: pass the slot on
            if granted is not None:
                self.release(granted, None, sent=False)
        else:
            waiter.fut.set_result(granted)

    # --- reporting ---
    def state(self, ep: Endpoint, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        if ep.down_until > now:
            return "cooling_down"
        if ep.paused_until > now:
            return "paused"
        return "probation" if ep.probing else "up"

    def stats(self) -> list[dict[str, Any]]:
        """One dict per endpoint: url, share, state, requests, ok, errors, cooldowns, in_flight,
        peak_in_flight, latency_mean_ms / latency_p50_ms / latency_p95_ms (successful requests)."""
        now = self._clock()
        with self._lock:
            rows = []
            for ep in self.endpoints:
                ordered = sorted(ep.latencies)
                row: dict[str, Any] = {
                    "url": ep.url, "share": ep.share, "state": self.state(ep, now), "requests": ep.requests,
                    "ok": ep.ok, "errors": ep.errors, "cooldowns": ep.cooldowns, "in_flight": ep.outstanding,
                    "peak_in_flight": ep.peak,
                    "latency_mean_ms": round(1000 * sum(ordered) / len(ordered), 1) if ordered else None,
                    "latency_p50_ms": round(1000 * _percentile(ordered, 50), 1) if ordered else None,
                    "latency_p95_ms": round(1000 * _percentile(ordered, 95), 1) if ordered else None,
                }
                if ep.last_error:
                    row["last_error"] = ep.last_error
                rows.append(row)
        return rows

    def summary(self) -> str:
        """One line per endpoint, for logs and CLI output."""
        return "\n".join(format_endpoint_row(row) for row in self.stats())


def format_endpoint_row(row: dict[str, Any]) -> str:
    """`url: N requests, E errors, C cool-downs, latency mean/p50/p95 ms` (a `stats()` row)."""
    text = (f"{row['url']}: {row['requests']} requests, {row['errors']} errors, {row['cooldowns']} cool-downs")
    if row.get("latency_mean_ms") is not None:
        text += (f", latency mean {row['latency_mean_ms']:.0f} / p50 {row['latency_p50_ms']:.0f} / "
                 f"p95 {row['latency_p95_ms']:.0f} ms")
    return text
