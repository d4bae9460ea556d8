"""TEACHER_RPM at full scale: 400 requests at 120 per minute through the real client and the
fake server; prints the most requests the SERVER saw in any 60-s window and the wall time
against the limit's ideal.

  ideal = (400 - 1) // 120 × 60 s + latency = 180 s + latency: the earliest the 400th request
          can go without any 60-s window holding more than 120 (a sliding window, so the first
          120 go at once). A smooth 2 requests/s pace would take 200 s.
  target: max_in_window ≤ 120, wall ≤ 1.10 × ideal

    python bench/rate_limit.py                       # 400 requests, 120 RPM (about 3 minutes)
    python bench/rate_limit.py --requests 40 --rpm 12 --window 6
"""

from __future__ import annotations

import argparse
import asyncio
import time

from ktools.llm.client import TeacherClient
from ktools.testing.fake_openai import FakeOpenAIServer


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run(client: TeacherClient, n: int) -> float:
    t0 = time.monotonic()
    await asyncio.gather(*(client.achat([{"role": "user", "content": f"question {i}"}]) for i in range(n)))
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rpm", type=int, default=120, help="requests per window")
    parser.add_argument("--window", type=float, default=60.0, help="window in seconds (60 = per minute)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with FakeOpenAIServer(latency=args.latency) as server:
        client = TeacherClient(server.base_url, "fake-model", max_concurrency=args.concurrency, rpm=args.rpm,
                               rate_window=args.window)
        wall = asyncio.run(run(client, args.requests))
        client.close()
        arrivals = server.arrivals
    ideal = (args.requests - 1) // args.rpm * args.window + args.latency
    worst = max_in_window(arrivals, args.window)
    print(f"requests {len(arrivals)}, limit {args.rpm} per {args.window:g} s: most in any window at the server "
          f"{worst} (target <= {args.rpm}); wall {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.3f} "
          f"(target <= 1.10)")


if __name__ == "__main__":
    main()
