"""Completion tokens/s of the embedded teacher's serving options, side by side on the same prompts.

    python bench/teacher_serving.py                      # the engine as it was vs the lean forward, 3 rounds
    python bench/teacher_serving.py --busy-loop          # ...and each again beside a one-core busy loop
    python bench/teacher_serving.py --backends transformers,llama
    python bench/teacher_serving.py --backends transformers,transformers-draft --paragraphs 3

Starts one `ktools serve-teacher` per serving option, each on a free port, all at once,
then runs waves of chat requests (~310 prompt tokens by default, 128 new tokens, temperature 0.7,
n=1 unless --n says otherwise) at concurrency 16 against them in turn. The order
alternates each round, so whatever else the machine does hits every option alike; the
ratios printed are against the first option (the baseline: the transformers engine as it
was before the lean forward, `--forward generic`, unless --backends puts another first),
measured in the same run. Each wave line also shows the engine's decode steps, prefill
calls and prefill seconds for that wave (from /health's stats).
Absolute tokens/s depend on what else runs on the machine and are noisy; compare the
ratios.

With --busy-loop every round runs each option twice, once with a competing process
spinning on one core (started before the wave, stopped after it), and prints each
option's busy/idle ratio: how steady it stays when the machine gets busy mid-run.

Backends: `transformers` (the default server: continuous batching on the lean forward),
`transformers-generic` (the same engine through transformers' own forward, no burst
gathering: the engine as it was), `transformers-draft` (plus prompt-lookup speculative
decoding, 3 drafts), `transformers-static` (static batching), `llama` (llama.cpp on the
shipped GGUF, batched decoding across requests; needs `make llama`).

Servers get the caller's environment: with other ktools processes on the machine, set
KTOOLS_CACHE_DIR to a directory of your own (with a `models` link to the shared model
cache) so nothing else finds, and stops, the bench's servers through the pid files.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx

PARAGRAPH = (
    "The Northbridge Water Authority adopted its drought plan in {year}. Stage {stage} restrictions apply "
    "when the reservoir falls below {level} percent of capacity: garden watering is limited to two evenings "
    "a week, car washing at home is banned, and public fountains are switched off. Businesses that use more "
    "than {volume} cubic metres a month must file a saving plan within {days} days. Fines start at {fine} "
    "crowns and double for each repeat offence within a year. The authority reviews the stage every Monday "
    "and publishes the decision on its website and in the regional newspaper. Hospitals, fire services and "
    "schools are exempt, as are farms that irrigate with recycled water. "
)

BACKEND_ARGS = {"llama": ["--backend", "llama"], "transformers": ["--backend", "transformers"],
                "transformers-generic": ["--backend", "transformers", "--forward", "generic"],
                "transformers-draft": ["--backend", "transformers", "--draft-tokens", "3"],
                "transformers-static": ["--backend", "transformers", "--static-batching"]}


def make_prompt(i: int, paragraphs: int = 2) -> list[dict[str, str]]:
    text = "".join(PARAGRAPH.format(year=1990 + (i + k) % 30, stage=1 + (i + k) % 4, level=60 - 5 * (k % 6),
                                    volume=500 + 50 * i, days=10 + k, fine=100 * (k + 1)) for k in range(paragraphs))
    return [{"role": "user", "content": f"Read the document and write a detailed summary.\n\n{text}"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(backend: str, port: int, max_batch: int, threads: int | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "ktools", "serve-teacher", "--port", str(port), "--max-batch", str(max_batch),
               *BACKEND_ARGS[backend]]
    if threads:
        command += ["--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the teacher on port {port} exited with {process.returncode} during start-up")
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            if health.get("status") == "ok":
                return health
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"the teacher on port {port} did not become healthy within {timeout:.0f} s")


async def run_wave(port: int, concurrency: int, requests: int, n_values: list[int], max_tokens: int,
                   first: int, paragraphs: int = 2) -> dict:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    limiter = asyncio.Semaphore(concurrency)
    totals = {"completion_tokens": 0, "prompt_tokens": 0, "requests": 0}
    async with httpx.AsyncClient(timeout=1800, limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        async def one(i: int) -> None:
            async with limiter:
                body = {"model": "SmolLM2-135M-Instruct", "messages": make_prompt(i, paragraphs), "max_tokens": max_tokens,
                        "temperature": 0.7, "n": n_values[i % len(n_values)], "seed": i}
                response = await client.post(url, json=body)
                response.raise_for_status()
                usage = response.json()["usage"]
                totals["completion_tokens"] += usage["completion_tokens"]
                totals["prompt_tokens"] += usage["prompt_tokens"]
                totals["requests"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(first + i) for i in range(requests)))
        totals["seconds"] = time.perf_counter() - started
    totals["tokens_per_s"] = totals["completion_tokens"] / totals["seconds"]
    return totals


def _spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="transformers-generic,transformers",
                        help="comma-separated, the first is the baseline (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=16, help="requests per wave (default %(default)s)")
    parser.add_argument("--n", default="1", help="n per request, cycled, e.g. 1,3 (default %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--paragraphs", type=int, default=2,
                        help="document paragraphs per prompt: 2 = ~310 prompt tokens, 3 = ~460 (default %(default)s)")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="fixed threads (default: the server's own choice)")
    parser.add_argument("--busy-loop", action="store_true", help="also run every wave beside a one-core busy loop")
    args = parser.parse_args()
    backends = args.backends.split(",")
    n_values = [int(v) for v in args.n.split(",")]
    prompt_tokens = None
    print(f"cores={os.cpu_count()} load={os.getloadavg()[0]:.1f} concurrency={args.concurrency} "
          f"requests/wave={args.requests} n={n_values} max_tokens={args.max_tokens} rounds={args.rounds} "
          f"threads={args.threads or 'server choice'}", flush=True)
    servers = {b: (port := free_port(), start_server(b, port, args.max_batch, args.threads)) for b in backends}
    rates: dict[tuple[str, str], list[float]] = {}
    last_stats: dict[str, dict] = {}
    try:
        for backend, (port, process) in servers.items():
            health = wait_healthy(port, process)
            print(f"{backend}: backend={health.get('backend')} forward={health.get('forward')} "
                  f"threads={health.get('threads')} dtype={health.get('dtype')}", flush=True)
            asyncio.run(run_wave(port, 2, 2, [1], 8, 0))  # warm-up
        conditions = ["idle", "busy"] if args.busy_loop else ["idle"]
        for round_ in range(args.rounds):
            order = backends if round_ % 2 == 0 else backends[::-1]
            for condition in conditions:
                for backend in order:
                    port, _ = servers[backend]
                    spinner = None
                    if condition == "busy":
                        spinner = multiprocessing.Process(target=_spin, daemon=True)
                        spinner.start()
                    try:
                        wave = asyncio.run(run_wave(port, args.concurrency, args.requests, n_values,
                                                    args.max_tokens, first=round_ * args.requests,
                                                    paragraphs=args.paragraphs))
                    finally:
                        if spinner is not None:
                            spinner.terminate()
                            spinner.join()
                    prompt_tokens = wave["prompt_tokens"] // wave["requests"]
                    rates.setdefault((backend, condition), []).append(wave["tokens_per_s"])
                    health = httpx.get(f"http://127.0.0.1:{port}/health").json()
                    threads, stats = health.get("threads"), health.get("stats") or {}
                    before = last_stats.get(backend, {})
                    last_stats[backend] = stats
                    delta = {k: stats.get(k, 0) - before.get(k, 0) for k in ("steps", "prefills", "prefill_seconds")}
                    print(f"round {round_ + 1} {condition:4s} {backend:20s} tokens={wave['completion_tokens']:5d} "
                          f"seconds={wave['seconds']:6.1f} tokens/s={wave['tokens_per_s']:6.1f} "
                          f"threads_now={threads} load={os.getloadavg()[0]:.1f} steps={delta['steps']} "
                          f"prefills={delta['prefills']} prefill_s={delta['prefill_seconds']:.1f}", flush=True)
    finally:
        for _, process in servers.values():
            process.terminate()
        for _, process in servers.values():
            process.wait(30)
    baseline = backends[0]
    print(f"\nsummary (median of {args.rounds} rounds; ~{prompt_tokens} prompt tokens per request; "
          f"ratios from waves run alternately in this run):")
    for condition in conditions:
        base = statistics.median(rates[(baseline, condition)])
        for backend in backends:
            median = statistics.median(rates[(backend, condition)])
            paired = [x / y for x, y in zip(rates[(backend, condition)], rates[(baseline, condition)], strict=True)]
            print(f"  {condition:4s} {backend:20s} tokens/s={median:6.1f} ratio_vs_{baseline}={median / base:5.2f} "
                  f"(per round: {', '.join(f'{p:.2f}' for p in paired)})")
    if args.busy_loop:
        for backend in backends:
            steady = [b / i for b, i in zip(rates[(backend, "busy")], rates[(backend, "idle")], strict=True)]
            print(f"  steadiness {backend:20s} busy/idle tokens/s={statistics.median(steady):5.2f} "
                  f"(per round: {', '.join(f'{s:.2f}' for s in steady)})")


if __name__ == "__main__":
    main()
