"""All four generators against the fake teacher: how close to the latency-bound ideal, at what CPU,
and what does a fully cached re-run (resume) cost?

Starts the scripted fake OpenAI server in a SUBPROCESS (its CPU is not ours) with a fixed
latency and `ktools.testing.scripted:scripted_responder` (well-formed replies to our
prompts), then runs all four generators (judges on, as for any real teacher) over the
seed chunks with N summaries, at each concurrency C, and prints:

  requests   HTTP requests the server received (an n=5 summary call is one request)
  wall       measured wall time of the run
  ideal      requests × latency / C  +  critical path of one chunk (its sequential
             LLM levels × latency: summary → questions → answer → judges = 4)
  ratio      wall / ideal                                   target ≤ 1.05
  cpu/req    this process's CPU (user+sys, all threads: engine, client, store writer)
             per request                                     target ≤ 0.5 ms
  resume     a re-run of the same command with every answer stored (0 requests sent),
             wall as a % of the original run's wall          target ≤ 5 %
  runq       seconds our threads were runnable but waiting for a CPU (/proc schedstat):
             other processes' load on a shared machine shows up here.

Everything runs on the event loop `run_generation` uses (uvloop when installed, as in the
notebook and CLI; `KTOOLS_EVENT_LOOP=asyncio` for the standard loop); the fake server
(another process) too.

Baseline in the same run: the client alone (`TeacherClient.achat` for the same number
of requests at the same C, no engine) — the difference is the engine's own cost.

    python bench/generation.py                 # 24 chunks, N=5, C=50 and C=200, latency 0.2 s
    python bench/generation.py --quick         # 8 chunks, C=50 only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from ktools.generate import GenerationOptions, arun_generation
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from ktools.generate import GenerationOptions, arun_generation
from ktools.llm import SamplingParams, TeacherClient
from ktools.llm.eventloop import ENV_VAR, loop_kind, new_event_loop

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.05
TARGET_CPU_MS = 0.5
TARGET_RESUME = 0.05
CRITICAL_PATH_LEVELS = 4


def run_loop(coro):
    """Run `coro` on the loop ktools' own entry points use (run_generation: uvloop when installed)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


def seeds(n: int) -> list[dict]:
    """n chunks of the sample document (cycled if it has fewer sections)."""
    text = (REPO / "assets" / "sample" / "sample_document.md").read_text(encoding="utf-8")
    sections = [s.strip() for s in re.split(r"\n(?=### )", text) if len(s.split()) > 60]
    rows = []
    for i in range(n):
        body = sections[i % len(sections)]
        rows.append({"document": f"[part {i}] {body[:2500]}", "chunk_id": f"sample#{i}", "source": "sample.md",
                     "document_outline": "OEFA Operating Regulations", "domain": "ferry regulations",
                     "icl_document": "Vehicles longer than 6 metres must be booked 24 hours ahead.",
                     "icl_query_1": "How far ahead must long vehicles be booked?"})
    return rows


async def _kind() -> str:
    return loop_kind()


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def runq_wait() -> float:
    total = 0.0
    for task in Path("/proc/self/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            pass
    return total


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ktools.testing.fake_openai", "--port", "0", "--latency", str(latency),
         "--responder", "ktools.testing.scripted:scripted_responder"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("FAKE_OPENAI_URL="):
        proc.kill()
        raise SystemExit(f"fake server did not start (got {line!r})")
    return proc, line.split("=", 1)[1]


async def run_once(url: str, rows: list[dict], options: GenerationOptions, concurrency: int, out: Path):
    client = TeacherClient(url, "fake-model", api_key="sk-bench", max_concurrency=concurrency, timeout=60,
                           max_retries=2)
    try:
        c0, q0, t0 = cpu_seconds(), runq_wait(), time.perf_counter()
        report = await arun_generation(rows, options, client, out)
        wall = time.perf_counter() - t0
        return report, wall, cpu_seconds() - c0, runq_wait() - q0
    finally:
        await client.aclose()


async def client_only(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    client = TeacherClient(url, "fake-model", api_key="sk-bench", max_concurrency=concurrency, timeout=60,
                           max_retries=2)
    params = SamplingParams(temperature=0.7, max_tokens=256)
    try:
        msgs = [[{"role": "user", "content": f"Answer the question using only the text below. {i}"}]
                for i in range(requests)]
        c0, t0 = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(client.achat(m, params) for m in msgs))
        return time.perf_counter() - t0, cpu_seconds() - c0
    finally:
        await client.aclose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=24)
    ap.add_argument("--summaries", type=int, default=5)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--quick", action="store_true", help="8 chunks, C=50 only")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.chunks, args.concurrency = 8, [50]
    rows = seeds(args.chunks)
    options = GenerationOptions(number_of_summaries=args.summaries, questions_per_chunk=3, show_progress=False)
    server, url = start_server(args.latency)
    tmp = Path(tempfile.mkdtemp(prefix="ktools-bench-gen-"))
    print(f"all four generators, judges on; {args.chunks} chunks, N={args.summaries}, "
          f"server latency {args.latency * 1000:.0f} ms (separate process); event loop "
          f"{run_loop(_kind())} as run_generation uses ({ENV_VAR}=asyncio for the standard one)\n")
    header = (f"{'C':>4} {'requests':>8} {'wall s':>7} {'ideal s':>7} {'ratio':>6} {'cpu/req ms':>10} "
              f"{'runq s':>6} {'resume s':>8} {'resume %':>8} {'client-only ratio':>17} {'client cpu/req':>14}")
    print(header)
    print("-" * len(header))
    ok = True
    store_notes: list[str] = []
    try:
        for c in args.concurrency:
            out = tmp / f"c{c}"
            report, wall, cpu, runq = run_loop(run_once(url, rows, options, c, out))
            sent = report.requests["sent"]
            assert report.status == "complete" and not report.failures, report.summary()
            ideal = sent * args.latency / c + CRITICAL_PATH_LEVELS * args.latency
            ratio = wall / ideal
            cpu_ms = cpu / sent * 1000
            again, resume_wall, _, _ = run_loop(run_once(url, rows, options, c, out))
            assert again.requests["sent"] == 0, "the re-run sent requests"
            resume = resume_wall / wall
            base = ""
            if not args.no_baseline:
                b_wall, b_cpu = run_loop(client_only(url, sent, c))
                b_ideal = sent * args.latency / c
                base = f"{b_wall / b_ideal:>17.3f} {b_cpu / sent * 1000:>11.3f} ms"
            print(f"{c:>4} {sent:>8} {wall:>7.2f} {ideal:>7.2f} {ratio:>6.3f} {cpu_ms:>10.3f} {runq:>6.2f} "
                  f"{resume_wall:>8.3f} {resume * 100:>7.1f}% {base}")
            req = report.requests
            store_notes.append(f"C={c}: {req['stored_writes']} samples stored in {req['store_commits']} commits "
                               f"on the writer thread ({req['store_writer_ms']:.0f} ms, off the event loop)")
            ok &= ratio <= TARGET_RATIO and cpu_ms <= TARGET_CPU_MS and resume <= TARGET_RESUME
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    for note in store_notes:
        print(note)
    print(f"\ntargets: ratio ≤ {TARGET_RATIO}, cpu/req ≤ {TARGET_CPU_MS} ms, resume ≤ {TARGET_RESUME * 100:.0f} %"
          f" -> {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
