"""Aggregate tokens/s of the embedded teacher under the concurrency the generators use.

    python bench/teacher_serving.py            # ~12 min on 2 busy cores (both modes)
    python bench/teacher_serving.py --quick    # fewer requests

Starts `ktools serve-teacher` on a free port (once with continuous batching, once with
static batching: the classic "take everything waiting, run it to the end" approach),
sends chat requests of ~300 prompt tokens asking for 128 new tokens (half n=1, half
n=3, temperature 0.7) at concurrency 1, 4 and 16, and prints aggregate completion
tokens/s with the ratio to the single-stream baseline (concurrency 1, n=1, measured
in the same run on the same server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
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


def make_prompt(i: int) -> list[dict[str, str]]:
    text = "".join(PARAGRAPH.format(year=1990 + (i + k) % 30, stage=1 + (i + k) % 4, level=60 - 5 * (k % 6),
                                    volume=500 + 50 * i, days=10 + k, fine=100 * (k + 1)) for k in range(3))
    return [{"role": "user", "content": f"Read the document and write a detailed summary.\n\n{text}"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, static: bool, max_batch: int, threads: int | None, dtype: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "ktools", "serve-teacher", "--port", str(port), "--max-batch", str(max_batch),
               "--dtype", dtype]
    if static:
        command.append("--static-batching")
    if threads:
        command += ["--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "KTOOLS_CACHE_DIR":
           os.environ.get("KTOOLS_CACHE_DIR", os.path.expanduser("~/.cache/ktools"))}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("status") == "ok":
                return process
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("the teacher did not become healthy within 300 s")


async def run_load(port: int, concurrency: int, requests: int, n_values: list[int], max_tokens: int) -> dict:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    limiter = asyncio.Semaphore(concurrency)
    totals = {"completion_tokens": 0, "prompt_tokens": 0, "requests": 0}
    async with httpx.AsyncClient(timeout=1800, limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        async def one(i: int) -> None:
            async with limiter:
                body = {"model": "SmolLM2-135M-Instruct", "messages": make_prompt(i), "max_tokens": max_tokens,
                        "temperature": 0.7, "n": n_values[i % len(n_values)], "seed": i}
                response = await client.post(url, json=body)
                response.raise_for_status()
                usage = response.json()["usage"]
                totals["completion_tokens"] += usage["completion_tokens"]
                totals["prompt_tokens"] += usage["prompt_tokens"]
                totals["requests"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        totals["seconds"] = time.perf_counter() - started
    totals["tokens_per_s"] = totals["completion_tokens"] / totals["seconds"]
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests per level")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--modes", default="continuous,static")
    args = parser.parse_args()
    if args.quick:  # one wave per level
        levels = [(1, 1, [1]), (4, 4, [1, 3]), (16, 16, [1, 3])]
    else:
        levels = [(1, 2, [1]), (1, 2, [1, 3]), (4, 8, [1, 3]), (16, 32, [1, 3])]
    print(f"cores={os.cpu_count()} load={os.getloadavg()[0]:.1f} max_tokens={args.max_tokens} "
          f"max_batch={args.max_batch} threads={args.threads or 'server default'} dtype={args.dtype}")
    for mode in args.modes.split(","):
        port = free_port()
        process = start_server(port, static=(mode == "static"), max_batch=args.max_batch, threads=args.threads,
                               dtype=args.dtype)
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health").json()
            dtype, health_threads = health.get("dtype"), health.get("threads")
            print(f"{mode}: server dtype={dtype} threads={health_threads}", flush=True)
            asyncio.run(run_load(port, 1, 1, [1], 8))  # warm-up
            baseline = None
            for concurrency, requests, n_values in levels:
                result = asyncio.run(run_load(port, concurrency, requests, n_values, args.max_tokens))
                if baseline is None:
                    baseline = result["tokens_per_s"]
                label = "n=1" if n_values == [1] else "n=1/3 mix"
                print(f"{mode:10s} concurrency={concurrency:2d} {label:9s} requests={result['requests']:3d} "
                      f"completion_tokens={result['completion_tokens']:5d} seconds={result['seconds']:7.1f} "
                      f"tokens/s={result['tokens_per_s']:6.1f} ratio_vs_single_stream="
                      f"{result['tokens_per_s'] / baseline:5.2f} load={os.getloadavg()[0]:.1f}", flush=True)
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
