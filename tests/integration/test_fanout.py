"""Teacher fan-out against real server processes: capacity-bound replicas with different
latencies, one killed (SIGKILL) mid-run; and a generation run that loses a replica."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ktools.llm.client import TeacherClient

pytestmark = pytest.mark.slow


def start_server(latency: float, capacity: int = 0, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ktools.testing.fake_openai", "--port", "0", "--latency", str(latency),
         "--capacity", str(capacity), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("FAKE_OPENAI_URL="), line
    return proc, line.split("=", 1)[1]


@pytest.fixture
def servers():
    procs: list[subprocess.Popen[str]] = []

    def start(*args, **kw) -> tuple[subprocess.Popen[str], str]:
        proc, url = start_server(*args, **kw)
        procs.append(proc)
        return proc, url

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _ask_all(client: TeacherClient, count: int, kill: subprocess.Popen[str] | None = None, after: float = 0.0):
    async def main():
        async def die():
            await asyncio.sleep(after)
            kill.kill()

        killer = asyncio.create_task(die()) if kill is not None else None
        t0 = time.perf_counter()
        results = await asyncio.gather(*(client.achat([{"role": "user", "content": f"request {i}"}])
                                         for i in range(count)))
        wall = time.perf_counter() - t0
        if killer is not None:
            await killer
        await client.aclose()
        return results, wall

    return asyncio.run(main())


def test_throughput_near_the_sum_of_capacities_and_nothing_lost_when_one_dies(servers):
    # capacity 4 each: 40, 40 and 80 requests/s at most -> 160 together
    specs = [(0.1, 4), (0.1, 4), (0.05, 4)]
    started = [servers(latency, cap) for latency, cap in specs]
    urls = ",".join(url for _, url in started)
    total_rate = sum(cap / latency for latency, cap in specs)

    results, wall = _ask_all(TeacherClient(urls, "m", max_concurrency=12, max_retries=0), 320)
    assert [r.choices[0].text for r in results] == [f"Answer 0 to: request {i}" for i in range(320)]
    assert 320 / wall >= 0.7 * total_rate, f"{320 / wall:.0f} requests/s vs {total_rate:.0f} possible"

    # the fastest replica is killed 0.6 s in; its requests in flight go elsewhere, none is lost
    client = TeacherClient(urls, "m", max_concurrency=12, max_retries=0, endpoint_cooldown=5)
    results, wall = _ask_all(client, 320, kill=started[2][0], after=0.6)
    assert [r.choices[0].text for r in results] == [f"Answer 0 to: request {i}" for i in range(320)]
    survivors = total_rate - 80
    ideal = 0.6 + (320 - 0.6 * total_rate) / survivors
    assert wall <= ideal / 0.7, f"{wall:.2f} s vs {ideal:.2f} s ideal"
    rows = client.endpoint_stats()
    assert rows[2]["errors"] >= 1 and rows[2]["cooldowns"] >= 1 and rows[2]["state"] != "up"
    assert client.stats["failures"] == 0 and sum(r["ok"] for r in rows) == 320


def test_generation_over_two_replicas_completes_when_one_is_killed(servers, tmp_path):
    from ktools.generate import GenerationOptions, run_generation
    from ktools.io import read_jsonl
    from ktools.testing.scripted import ScriptedClient

    seeds = [{"document": f"Chunk {i}: the Orvane harbour levy is {i + 3} euros per berth, due each March.",
              "chunk_id": f"c{i}", "source": "doc.md"} for i in range(8)]
    opts = GenerationOptions(generators=("document_based_qa", "key_facts_to_qa"), questions_per_chunk=2,
                             show_progress=False, judge_question=False, judge_faithfulness=False,
                             judge_relevancy=False)
    run_generation(seeds, opts, ScriptedClient(), tmp_path / "clean")

    responder = ("--responder", "ktools.testing.scripted:scripted_responder")
    log = tmp_path / "dying.log"
    survivor, url_a = servers(0.05, 0, *responder)
    dying, url_b = servers(0.05, 0, *responder, "--log", str(log))

    def kill_after_some_requests() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= 6:
                break
            time.sleep(0.01)
        dying.kill()

    watcher = threading.Thread(target=kill_after_some_requests, daemon=True)
    watcher.start()
    client = TeacherClient(f"{url_a},{url_b}", "fake-model", max_concurrency=4, max_retries=1)
    report = run_generation(seeds, opts, client, tmp_path / "fanout")
    watcher.join()
    assert dying.poll() is not None, "the replica was not killed during the run"
    assert report.status == "complete" and report.ok
    for g in opts.generators:
        clean = read_jsonl(Path(tmp_path / "clean" / g / "gen.jsonl"))
        assert clean and read_jsonl(tmp_path / "fanout" / g / "gen.jsonl") == clean
    by_url = {row["url"]: row for row in report.endpoints}
    assert by_url[url_b]["ok"] >= 1 and by_url[url_b]["errors"] >= 1


def test_ktools_generate_takes_several_base_urls_and_prints_per_endpoint_stats(tmp_path):
    import json
    import os

    from ktools.testing.fake_openai import FakeOpenAIServer
    from ktools.testing.scripted import scripted_responder

    chunks = tmp_path / "chunks"
    chunks.mkdir()
    for i in range(4):
        (chunks / f"doc{i}.md").write_text(f"Ferry {i} departs hourly from the northern terminal building.")
    with FakeOpenAIServer(responder=scripted_responder) as a, FakeOpenAIServer(responder=scripted_responder) as b:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "KTOOLS_OUTPUT_DIR": str(tmp_path / "output")}
        cmd = [sys.executable, "-m", "ktools", "generate", "--chunks-dir", str(chunks), "--qa-dir",
               str(tmp_path / "qa"), "--provider", "vllm", "--model", "fake-model", "--judges", "off",
               "--base-url", f"{a.base_url},{b.base_url}", "--max-concurrency", "4", "--no-progress"]
        done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr
        assert a.requests and b.requests
    assert "teacher endpoints:" in done.stdout
    for server in (a, b):
        assert f"{server.base_url}: {len(server.requests)} requests, 0 errors" in done.stdout
    summary = json.loads((tmp_path / "qa" / "qa_generation_summary.json").read_text())
    assert [e["url"] for e in summary["endpoints"]] == [a.base_url, b.base_url]
    report = json.loads((tmp_path / "qa" / "report.json").read_text())
    assert sum(e["ok"] for e in report["endpoints"]) == len(a.requests) + len(b.requests)
