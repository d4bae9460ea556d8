"""RPM/TPM limits and the server's x-ratelimit-* headers (ktools.llm.ratelimit, in the client).

The acceptance figure - TEACHER_RPM=120, 400 requests, never more than 120 in any 60-s window at
the server, wall time within 10 % of the ideal - is checked here on an injected clock at full
scale, and over real HTTP at a 2-s window (12 per window, 40 requests); the full-scale real
run takes 3 minutes and is a script (bench/rate_limit.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ktools.llm.client import TeacherClient
from ktools.llm.ratelimit import RateLimiter, parse_reset
from ktools.testing.fake_openai import FakeOpenAIServer


def max_in_window(times: list[float], window: float) -> int:
    """The most events in any half-open interval [t, t + window)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def ideal_wall(n: int, per_window: int, window: float) -> float:
    """The earliest the n-th request can go without any window holding more than per_window."""
    return (n - 1) // per_window * window


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@pytest.mark.parametrize("value, seconds", [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5),
                                            ("2.5", 2.5), ("", None), ("soon", None)])
def test_parse_reset(value, seconds):
    assert parse_reset(value) == seconds


def test_120_rpm_over_400_requests_on_an_injected_clock():
    clock = FakeClock()
    limiter = RateLimiter(120, None, clock=clock, sleep=clock.sleep)

    async def main():
        admitted = []

        async def one():
            await limiter.acquire()
            admitted.append(clock())

        await asyncio.gather(*(one() for _ in range(400)))
        return admitted

    admitted = asyncio.run(main())
    assert len(admitted) == 400 and max_in_window(admitted, 60.0) == 120
    ideal = ideal_wall(400, 120, 60.0)  # 180 s
    assert ideal <= max(admitted) <= ideal * 1.01


def test_tokens_per_minute_counts_estimates_then_real_usage():
    clock = FakeClock()
    limiter = RateLimiter(None, 1000, clock=clock, sleep=clock.sleep)

    async def main():
        first = await limiter.acquire(600)
        limiter.settle(first, 100)  # used far less than estimated: room frees up at once
        await limiter.acquire(600)
        assert clock() == 0.0
        await limiter.acquire(600)  # 700 in the window: waits for the first to leave it
        return clock()

    assert 60.0 <= asyncio.run(main()) <= 60.5


def test_headers_saying_nothing_is_left_hold_requests_until_the_reset():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    assert not limiter.active
    limiter.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"})
    limiter.observe({"x-ratelimit-remaining-tokens": "12000", "x-ratelimit-reset-tokens": "6m0s"})
    assert limiter.active and limiter.header_pauses == 1
    asyncio.run(limiter.acquire())
    assert clock() == pytest.approx(1.5)


def chat_many(client: TeacherClient, n: int) -> float:
    async def main():
        t0 = time.monotonic()
        await asyncio.gather(*(client.achat([{"role": "user", "content": f"q{i}"}]) for i in range(n)))
        return time.monotonic() - t0

    return asyncio.run(main())


def test_rpm_over_real_http_at_a_scaled_window():
    # 12 per 2-s window stands for 120 per 60 s: the same property, in ~6 s instead of 3 minutes.
    per_window, window, n = 12, 2.0, 40
    with FakeOpenAIServer(latency=0.02) as server:
        client = TeacherClient(server.base_url, "m", max_concurrency=16, rpm=per_window, rate_window=window)
        wall = chat_many(client, n)
        client.close()
        arrivals = server.arrivals
    assert len(arrivals) == n
    assert max_in_window(arrivals, window) <= per_window
    ideal = ideal_wall(n, per_window, window) + 0.02
    assert wall <= ideal * 1.10, (wall, ideal)
    assert client.stats["rate_waits"] > 0


def test_the_client_follows_the_servers_headers_and_sends_no_request_over_its_limit():
    with FakeOpenAIServer(rate_limit=(5, 1.0)) as server:
        client = TeacherClient(server.base_url, "m", max_concurrency=1, max_retries=0)
        wall = chat_many(client, 15)
        client.close()
        assert server.rate_limited == 0  # never a 429: it waited for the reset the headers named
    assert wall >= 1.9 and client.stats["rate_header_pauses"] >= 2


def test_a_429_burst_is_absorbed():
    with FakeOpenAIServer(rate_limit=(6, 1.0)) as server:
        client = TeacherClient(server.base_url, "m", max_concurrency=12, max_retries=6)
        chat_many(client, 24)
        client.close()
        assert server.rate_limited > 0  # 12 at once against 6 per second: a burst of 429s...
    assert client.stats["failures"] == 0  # ...every request still answered


def test_settings_reach_the_client():
    from ktools.config import load_settings

    settings = load_settings(environ={"TEACHER_PROVIDER": "vllm", "TEACHER_MODEL_BASE_URL": "http://127.0.0.1:9/v1",
                                      "TEACHER_MODEL_NAME": "m", "TEACHER_RPM": "120", "TEACHER_TPM": "90000"})
    client = TeacherClient.from_settings(settings)
    assert (client._rate.requests, client._rate.tokens, client._rate.window) == (120, 90000, 60.0)
    client.close()
