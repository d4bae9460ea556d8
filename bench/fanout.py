"""Teacher fan-out: requests/s with one endpoint vs two and three, and with one dying mid-run.

Each endpoint is the scripted fake OpenAI server in its own SUBPROCESS with a fixed
capacity, like one vLLM replica: at most `--capacity` requests worked on at once, each
for `--latency` seconds, the rest queue. So one endpoint serves at most
capacity / latency requests/s, however many requests the client sends, and the run
is capacity-bound. The client's global limit is the same in every scenario
(MAX_CONCURRENCY = capacity x 3), split evenly over the endpoints listed.

Scenarios, all measured in this run:
  1 endpoint              the baseline
  2 endpoints, 3 endpoints
  3 endpoints, one dies   one server is killed (SIGKILL) a third of the way into the run;
                          its requests in flight fail over to the others

Printed per scenario: wall time, requests/s, the ratio to one endpoint, and the
ideal (the sum of the live endpoints' capacities over time) with wall/ideal. Every
request must come back with its own answer (none lost, none answered twice).

    python bench/fanout.py            # 600 requests, capacity 8, 200 ms  (about 40 s)
    python bench/fanout.py --quick    # 240 requests
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path

try:
    from ktools.llm import SamplingParams, TeacherClient
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from ktools.llm import SamplingParams, TeacherClient

PARAMS = SamplingParams(temperature=0.7, max_tokens=64)


def start_server(latency: float, capacity: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ktools.testing.fake_openai", "--port", "0", "--latency", str(latency),
         "--capacity", str(capacity)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("FAKE_OPENAI_URL="):
        proc.kill()
        raise SystemExit(f"fake server did not start (got {line!r})")
    return proc, line.split("=", 1)[1]


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"request {i}: write one exam question about section {i % 17}."}]


async def _run(urls: list[str], requests: int, concurrency: int, kill: tuple[subprocess.Popen[str], float] | None
               ) -> tuple[float, TeacherClient]:
    client = TeacherClient(",".join(urls), "fake-model", max_concurrency=concurrency, timeout=60, max_retries=2,
                           endpoint_cooldown=2.0)
    killer = None
    if kill is not None:
        proc, after = kill

        async def die() -> None:
            await asyncio.sleep(after)
            proc.kill()

        killer = asyncio.create_task(die())
    t0 = time.perf_counter()
    results = await asyncio.gather(*(client.achat(_messages(i), PARAMS) for i in range(requests)))
    wall = time.perf_counter() - t0
    if killer is not None:
        await killer
    for i, result in enumerate(results):  # each request answered, with its own answer
        if not result.choices or f"request {i}:" not in result.choices[0].text:
            raise SystemExit(f"request {i} came back wrong: {result.choices}")
    await client.aclose()
    return wall, client


def _ideal(requests: int, rate: float, rate_after: float | None, kill_at: float | None) -> float:
    """Seconds to serve `requests` at `rate` req/s, dropping to `rate_after` at `kill_at` s."""
    if kill_at is None or requests <= rate * kill_at:
        return requests / rate
    return kill_at + (requests - rate * kill_at) / rate_after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--capacity", type=int, default=8, help="requests one endpoint works on at once")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request on an endpoint")
    parser.add_argument("--quick", action="store_true", help="240 requests")
    args = parser.parse_args()
    requests = 240 if args.quick else args.requests
    logging.basicConfig(level=logging.ERROR)  # the dying endpoint's warnings are expected
    per_endpoint = args.capacity / args.latency
    concurrency = args.capacity * 3
    print(f"{requests} requests; each endpoint: capacity {args.capacity}, {args.latency * 1000:.0f} ms "
          f"-> {per_endpoint:.0f} requests/s at most; client MAX_CONCURRENCY {concurrency}\n")
    rows = []
    baseline = None
    for name, count, dies in (("1 endpoint", 1, False), ("2 endpoints", 2, False), ("3 endpoints", 3, False),
                              ("3 endpoints, one dies", 3, True)):
        servers = [start_server(args.latency, args.capacity) for _ in range(count)]
        try:
            kill_at = None
            kill = None
            if dies:
                kill_at = _ideal(requests, per_endpoint * count, None, None) / 3
                kill = (servers[-1][0], kill_at)
            wall, client = asyncio.run(_run([url for _, url in servers], requests, concurrency, kill))
        finally:
            for proc, _ in servers:
                proc.kill()
                proc.wait()
        rate = requests / wall
        baseline = baseline or rate
        ideal = _ideal(requests, per_endpoint * count, per_endpoint * (count - 1) if dies else None, kill_at)
        rows.append((name, wall, rate, rate / baseline, requests / ideal, wall / ideal, client))
    print(f"{'scenario':<24}{'wall s':>8}{'req/s':>8}{'vs 1':>7}{'ideal req/s':>13}{'wall/ideal':>12}")
    for name, wall, rate, ratio, ideal_rate, efficiency, _ in rows:
        print(f"{name:<24}{wall:>8.2f}{rate:>8.1f}{ratio:>6.2f}x{ideal_rate:>13.1f}{efficiency:>12.3f}")
    print("\nper endpoint (the dying run):")
    client = rows[-1][-1]
    for row in client.endpoint_stats():
        print(f"  {row['url']}: {row['requests']} requests, {row['ok']} ok, {row['errors']} errors, "
              f"{row['cooldowns']} cool-downs, latency p50 {row['latency_p50_ms']} / p95 {row['latency_p95_ms']} ms")
    stats = client.stats
    print(f"  client: {stats['requests']} HTTP attempts for {stats['calls']} requests, {stats['failovers']} "
          f"failed over, {stats['retries']} retries, {stats['failures']} lost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
