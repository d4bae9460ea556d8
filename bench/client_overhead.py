"""How close does TeacherClient get to the latency-bound ideal, and what CPU does it cost?

Starts the scripted fake OpenAI server in a SUBPROCESS (so its CPU is not ours)
with a fixed latency, then sends R requests through TeacherClient at each
concurrency C and prints:

  wall      measured wall time for the R requests
  ideal     R × latency / C  (what an infinitely fast client would take)
  ratio     wall / ideal          target ≤ 1.05
  cpu/req   client process CPU (user+sys) per request   target ≤ 0.5 ms

and, as a baseline measured in the same run, the same load through the stock
`openai` path (`AsyncOpenAI.chat.completions.create`, default httpx transport,
pydantic models). The server's own CPU per request is shown too, and the time
the client's thread was runnable but waiting for a CPU (`runq wait`, from
/proc/self/schedstat; `server runq` the same for the server process): on a shared
machine other processes' load shows up there instead of hiding in the ratio. Every
one of the R / C round trips waits for both processes to be scheduled, so at C=200
(ten round trips in a 2 s ideal) a few ms of wake-up delay per trip is already 1-2 %.

Both clients run on ktools' own event loop (uvloop when installed, as `run_generation`
and the sync client use; `KTOOLS_EVENT_LOOP=asyncio` for the standard loop).

    python bench/client_overhead.py            # 2,000 requests at C=50 and C=200, plus baseline
    python bench/client_overhead.py --quick    # 400 requests, no baseline
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

try:
    from ktools.llm import SamplingParams, TeacherClient
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from ktools.llm import SamplingParams, TeacherClient
from ktools.llm.eventloop import ENV_VAR, loop_kind, new_event_loop

TARGET_RATIO = 1.05
TARGET_CPU_MS = 0.5
PARAMS = SamplingParams(temperature=0.7, max_tokens=256)


def run_loop(coro):
    """Run `coro` on the loop ktools' own entry points use (uvloop when installed)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


async def _kind() -> str:
    return loop_kind()


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You write exam questions about a document."},
            {"role": "user", "content": f"Write question {i} about section {i % 17} of the document. " * 8}]


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user+sys) of another process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _runqueue_wait(pid: int | str = "self") -> float:
    """Seconds the process's main thread spent runnable but waiting for a CPU (/proc schedstat)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ktools.testing.fake_openai", "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("FAKE_OPENAI_URL="):
        proc.kill()
        raise SystemExit(f"fake server did not start (got {line!r})")
    return proc, line.split("=", 1)[1]


async def _run_teacher_client(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    client = TeacherClient(url, "fake-model", api_key="sk-bench", max_concurrency=concurrency,
                           timeout=60, max_retries=2)
    await asyncio.gather(*(client.achat(_messages(i), PARAMS) for i in range(concurrency)))  # warm the pool
    cpu0, t0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(client.achat(_messages(i), PARAMS) for i in range(requests)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert len(results) == requests and all(r.choices for r in results)
    assert client.stats["retries"] == 0, client.stats
    await client.aclose()
    return wall, cpu


async def _run_stock_openai(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="sk-bench", max_retries=0, timeout=60,
                                http_client=openai.DefaultAsyncHttpxClient(
                                    limits=openai._base_client.httpx2.Limits(
                                        max_connections=concurrency, max_keepalive_connections=concurrency)))
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with sem:
            r = await client.chat.completions.create(model="fake-model", messages=_messages(i),  # type: ignore[arg-type]
                                                     temperature=0.7, max_tokens=256)
            return r.choices[0].message.content or ""

    await asyncio.gather(*(one(i) for i in range(concurrency)))
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await client.close()
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="400 requests, no stock-openai baseline")
    parser.add_argument("--requests", type=int, help="requests per concurrency level (default 2000)")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency in seconds")
    parser.add_argument("--concurrency", default="50,200", help="comma-separated levels")
    parser.add_argument("--no-baseline", action="store_true", help="skip the stock openai baseline")
    args = parser.parse_args(argv)
    requests = args.requests or (400 if args.quick else 2000)
    levels = [int(c) for c in args.concurrency.split(",")]
    baseline = not (args.quick or args.no_baseline)

    proc, url = start_server(args.latency)
    print(f"fake server {url} (pid {proc.pid}), latency {args.latency * 1000:.0f} ms, "
          f"{requests} requests per level; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"event loop {run_loop(_kind())} (ktools' own loops; {ENV_VAR}=asyncio for the standard one)")
    header = (f"{'client':<16}{'C':>5}{'wall s':>9}{'ideal s':>9}{'ratio':>8}{'cpu/req ms':>12}"
              f"{'client cpu/wall':>17}{'server cpu/req ms':>19}{'runq wait s':>13}{'server runq s':>15}")
    print(header)
    print("-" * len(header))
    verdicts = []
    try:
        for c in levels:
            runs = [("TeacherClient", _run_teacher_client)]
            if baseline:
                runs.append(("stock openai", _run_stock_openai))
            for name, runner in runs:
                server_cpu0 = _proc_cpu(proc.pid)
                wait0, server_wait0 = _runqueue_wait(), _runqueue_wait(proc.pid)
                # Each measured run starts from a collected heap: the stock client's leftovers
                # (pydantic models, httpx objects) would otherwise be traversed by the next run's
                # garbage collections and bill it for the previous run's allocations.
                gc.collect()
                wall, cpu = run_loop(runner(url, requests, c))
                # includes the warm-up round; an upper bound for the measured part
                wait = _runqueue_wait() - wait0
                server_wait = _runqueue_wait(proc.pid) - server_wait0
                server_cpu = (_proc_cpu(proc.pid) - server_cpu0) / (requests + c) * 1000
                ideal = requests * args.latency / c
                ratio = wall / ideal
                cpu_ms = cpu / requests * 1000
                print(f"{name:<16}{c:>5}{wall:>9.2f}{ideal:>9.2f}{ratio:>8.3f}{cpu_ms:>12.3f}"
                      f"{cpu / wall:>16.0%} {server_cpu:>18.3f}{wait:>13.2f}{server_wait:>15.2f}", flush=True)
                if name == "TeacherClient":
                    verdicts.append((c, ratio, cpu_ms))
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"\nload average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work competes for "
          "the CPU: a client needing R x cpu/req of CPU within the ideal time cannot keep up if it gets less)")
    for c, ratio, cpu_ms in verdicts:
        ok_ratio = "ok" if ratio <= TARGET_RATIO else "MISSED"
        ok_cpu = "ok" if cpu_ms <= TARGET_CPU_MS else "MISSED"
        print(f"C={c}: ratio {ratio:.3f} (target ≤ {TARGET_RATIO}: {ok_ratio}), "
              f"client CPU {cpu_ms:.3f} ms/request (target ≤ {TARGET_CPU_MS}: {ok_cpu})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
