"""Teacher fan-out: the endpoint pool alone (fake clock), the base-URL list setting, and
the client over several scripted servers (spread, failover, cool-down, resume elsewhere)."""

from __future__ import annotations

import asyncio
import collections
import time

import pytest

from ktools.config import ConfigError, load_settings, parse_base_urls
from ktools.llm.client import TeacherClient
from ktools.llm.endpoints import BUSY, FAILED, OK, REJECTED, EndpointPool
from ktools.testing.fake_openai import FakeOpenAIServer


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def pool(urls=("http://a/v1", "http://b/v1"), limit=4, **kw):
    clock = Clock()
    specs = [u if isinstance(u, tuple) else (u, None) for u in urls]
    return EndpointPool(specs, limit, clock=clock, **kw), clock


# --- the setting ---

def test_base_url_list_parses_shares_and_names_the_bad_entry():
    assert parse_base_urls("http://a:1/v1/, https://b/v1#8") == [("http://a:1/v1", None), ("https://b/v1", 8)]
    assert parse_base_urls("http://a/v1") == [("http://a/v1", None)]
    for bad, words in [("http://a/v1,ftp://b", "entry 2"), ("http://a/v1#0", "#N"), ("http://a/v1#x", "#N"),
                       ("http://a/v1,,http://b", "empty"), ("http://a/v1,http://a/v1/", "twice")]:
        with pytest.raises(ValueError, match=words):
            parse_base_urls(bad)


def test_teacher_base_url_setting_accepts_a_list_and_errors_name_the_variable(tmp_path):
    s = load_settings(environ={"TEACHER_MODEL_BASE_URL": "http://a:1/v1/ , http://b:2/v1#8",
                               "TEACHER_ENDPOINT_COOLDOWN": "2.5"}, repo_root=tmp_path)
    assert s.teacher_base_url == "http://a:1/v1,http://b:2/v1#8" and s.teacher_provider == "openai"
    assert (s.endpoint_failures, s.endpoint_cooldown, s.endpoint_max_cooldown) == (3, 2.5, 300.0)
    with pytest.raises(ConfigError, match=r"TEACHER_MODEL_BASE_URL=.*entry 2 'gpu2:8000' is not an http"):
        load_settings(environ={"TEACHER_MODEL_BASE_URL": "http://gpu1:8000/v1,gpu2:8000"}, repo_root=tmp_path)
    with pytest.raises(ConfigError, match="TEACHER_ENDPOINT_FAILURES"):
        load_settings(environ={"TEACHER_ENDPOINT_FAILURES": "0"}, repo_root=tmp_path)


def test_several_urls_with_the_embedded_teacher_is_a_config_error(tmp_path):
    s = load_settings(environ={"TEACHER_PROVIDER": "local", "TEACHER_MODEL_BASE_URL": "http://a/v1,http://b/v1"},
                      repo_root=tmp_path)
    with pytest.raises(ConfigError, match="several endpoints"):
        TeacherClient.from_settings(s)


def test_client_from_settings_passes_the_cooldown_settings(tmp_path):
    s = load_settings(environ={"TEACHER_PROVIDER": "vllm", "TEACHER_MODEL_NAME": "m", "MAX_CONCURRENCY": "10",
                               "TEACHER_MODEL_BASE_URL": "http://a/v1,http://b/v1#3,http://c/v1",
                               "TEACHER_ENDPOINT_FAILURES": "5", "TEACHER_ENDPOINT_COOLDOWN": "1",
                               "TEACHER_ENDPOINT_MAX_COOLDOWN": "9"}, repo_root=tmp_path)
    client = TeacherClient.from_settings(s)
    assert client.base_urls == ["http://a/v1", "http://b/v1", "http://c/v1"]
    assert [e["share"] for e in client.endpoint_stats()] == [4, 3, 4]
    assert (client._pool.failures, client._pool.cooldown, client._pool.max_cooldown) == (5, 1.0, 9.0)
    assert "http://a/v1,http://b/v1,http://c/v1" in repr(client)


def test_one_url_has_no_pool_and_a_share_on_it_caps_the_limit():
    client = TeacherClient("http://a/v1/", "m", max_concurrency=16)
    assert client._pool is None and client.endpoint_stats() == [] and client.base_url == "http://a/v1"
    assert TeacherClient("http://a/v1#4", "m", max_concurrency=16).max_concurrency == 4
    with pytest.raises(ConfigError, match="TEACHER_MODEL_BASE_URL"):
        TeacherClient("http://a/v1,nonsense", "m")


# --- the pool alone ---

def test_default_share_splits_the_global_limit_and_explicit_shares_win():
    p, _ = pool(("http://a/v1", ("http://b/v1", 7), "http://c/v1"), limit=10)
    assert [e.share for e in p.endpoints] == [4, 7, 4]
    p, _ = pool(limit=1)
    assert [e.share for e in p.endpoints] == [1, 1]


def test_least_outstanding_pick_with_rotating_ties():
    p, _ = pool(("http://a/v1", "http://b/v1", "http://c/v1"), limit=30)
    first = [p.try_acquire().index for _ in range(3)]
    assert sorted(first) == [0, 1, 2]  # one each before any gets a second
    a = p.endpoints[0]
    p.release(a, OK, 0.1)
    assert p.try_acquire() is a  # the only one with fewer outstanding
    # relative to the share: b with share 10 and 3 outstanding is less loaded than a with share 2 and 1
    p2, _ = pool((("http://a/v1", 2), ("http://b/v1", 10)), limit=12)
    picks = [p2.try_acquire().index for _ in range(6)]
    assert picks.count(0) == 1 and picks.count(1) == 5


def test_shares_are_caps_and_a_full_pool_gives_nothing():
    p, _ = pool(limit=4)  # shares 2 + 2
    got = [p.try_acquire() for _ in range(4)]
    assert all(got) and p.try_acquire() is None
    assert collections.Counter(e.index for e in got) == {0: 2, 1: 2}


def test_repeated_failures_cool_an_endpoint_down_exponentially_with_probation():
    p, clock = pool(failures=3, cooldown=5, max_cooldown=12, limit=8)
    a, b = p.endpoints
    for _ in range(2):
        p.release(p.try_acquire(avoid={1}), FAILED, 0.01, error="boom")
    assert p.state(a) == "up"
    p.release(p.try_acquire(avoid={1}), FAILED, 0.01)
    assert p.state(a) == "cooling_down" and a.cooldowns == 1 and a.down_until == clock.now + 5
    assert {p.try_acquire().index for _ in range(4)} == {1}  # everything goes to b meanwhile
    for _ in range(4):
        p.release(b, OK, 0.05)
    clock.now += 5
    assert p.state(a) == "probation"
    probe = p.try_acquire()
    assert probe is a  # the returning endpoint is probed first...
    assert p.try_acquire() is b and p.try_acquire() is b  # ...with one request at a time
    p.release(a, FAILED, 0.01)  # failing on probation: straight back out, twice as long
    assert p.state(a) == "cooling_down" and a.down_until == clock.now + 10
    clock.now += 10
    p.release(p.try_acquire(), FAILED)
    assert a.down_until == clock.now + 12  # capped at max_cooldown
    clock.now += 12
    assert p.try_acquire() is a
    p.release(a, OK, 0.02)
    assert p.state(a) == "up" and a.strikes == 0 and a.limit() == a.share
    rows = {r["url"]: r for r in p.stats()}
    assert rows["http://a/v1"]["cooldowns"] == 3 and rows["http://a/v1"]["errors"] == 5
    assert rows["http://a/v1"]["last_error"] == "boom"


def test_failures_arriving_during_a_cooldown_do_not_extend_it_and_successes_reset_the_count():
    p, clock = pool(failures=2, cooldown=5, limit=8)
    a = p.endpoints[0]
    held = [p.try_acquire(avoid={1}) for _ in range(3)]
    assert all(e is a for e in held)
    p.release(a, FAILED)
    p.release(a, OK, 0.1)  # a success in between: not "in a row"
    p.release(a, FAILED)
    assert p.state(a) == "up"
    late = p.try_acquire(avoid={1})  # still in flight when the endpoint is taken out
    p.release(p.try_acquire(avoid={1}), FAILED)  # the second in a row
    until = a.down_until
    assert p.state(a) == "cooling_down" and until == clock.now + 5
    clock.now += 1
    p.release(late, FAILED)
    assert a.down_until == until and a.cooldowns == 1 and a.errors == 4


def test_busy_pauses_one_endpoint_without_a_health_strike_and_rejected_is_not_its_fault():
    p, clock = pool(failures=1, limit=8)
    a, b = p.endpoints
    p.release(p.try_acquire(avoid={1}), BUSY, pause=2.0)
    assert p.state(a) == "paused" and a.cooldowns == 0 and a.errors == 1
    assert p.try_acquire() is b
    clock.now += 2.0
    assert p.state(a) == "up"
    p.release(p.try_acquire(avoid={1}), REJECTED)
    assert p.state(a) == "up" and a.errors == 2


def test_avoid_prefers_other_endpoints_but_falls_back_when_none_is_up():
    p, clock = pool(failures=1, cooldown=5, limit=8)
    assert p.try_acquire(avoid={0}).index == 1
    assert p.has_alternative({0}) and not p.has_alternative({0, 1})
    p.release(p.endpoints[1], FAILED)  # b cools down
    assert not p.has_alternative({0})
    assert p.try_acquire(avoid={0}).index == 0  # the avoided one is all there is


def test_latency_stats_mean_p50_p95():
    p, _ = pool()
    a = p.endpoints[0]
    for ms in range(1, 101):
        p.try_acquire(avoid={1})
        p.release(a, OK, ms / 1000)
    row = p.stats()[0]
    assert row["requests"] == 100 and row["ok"] == 100
    assert (row["latency_mean_ms"], row["latency_p50_ms"], row["latency_p95_ms"]) == (50.5, 50.0, 95.0)
    assert p.stats()[1]["latency_mean_ms"] is None
    assert "100 requests, 0 errors" in p.summary()


def test_acquire_waits_for_a_slot_fifo_and_for_the_earliest_cooldown():
    async def main():
        p = EndpointPool([("http://a/v1", 1), ("http://b/v1", 1)], 2, failures=1, cooldown=0.2, max_cooldown=1)
        a, b = await p.acquire(), await p.acquire()
        order = []

        async def wait(name):
            ep = await p.acquire()
            order.append((name, ep.url))
            return ep

        first = asyncio.create_task(wait("first"))
        await asyncio.sleep(0.01)
        t2 = asyncio.create_task(wait("second"))
        await asyncio.sleep(0.01)
        p.release(b, OK, 0.01)
        await asyncio.sleep(0.01)
        assert order == [("first", "http://b/v1")] and first.done() and not t2.done()
        # the other endpoint fails and cools down: the waiter waits for it to come back, it does not fail
        started = time.monotonic()
        p.release(a, FAILED, 0.01)
        ep2 = await asyncio.wait_for(t2, 2)
        assert ep2 is a and time.monotonic() - started >= 0.18
        # a cancelled waiter leaks no slot
        t3 = asyncio.create_task(p.acquire())
        await asyncio.sleep(0.01)
        t3.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t3
        p.release(a, OK, 0.01)
        p.release(b, OK, 0.01)
        assert [e.outstanding for e in p.endpoints] == [0, 0]

    asyncio.run(main())


# --- the client over scripted servers ---

def _ask(client, count):
    async def main():
        results = await asyncio.gather(*(client.achat([{"role": "user", "content": f"question {i}"}])
                                         for i in range(count)))
        await client.aclose()
        return results

    return asyncio.run(main())


def test_fan_out_sends_what_one_endpoint_sends_through_a_prebuilt_request_per_url():
    async def ask_and_look(client, count):
        results = await asyncio.gather(*(client.achat([{"role": "user", "content": f"question {i}"}])
                                         for i in range(count)))
        prebuilt = [sorted(urls) for urls in client._direct_by_url.values()]  # before close drops the client
        await client.aclose()
        return results, prebuilt

    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        _ask(TeacherClient(a.base_url, "m", max_concurrency=4), 1)
        fan = TeacherClient(f"{a.base_url},{b.base_url}", "m", max_concurrency=4)
        results, prebuilt = asyncio.run(ask_and_look(fan, 8))
        single_body, fan_bodies = a.requests[0], a.requests[1:] + b.requests
    assert [r.choices[0].text for r in results] == [f"Answer 0 to: question {i}" for i in range(8)]
    assert len(b.requests) > 0 and len(fan_bodies) == 8
    assert single_body in fan_bodies  # the same JSON as the one-endpoint path
    # the fast send path (headers normalised once) serves every endpoint: the first one's URL is the
    # client's own, the other gets its own request template, built once
    assert fan.fast_transport and prebuilt == [[f"{b.base_url}/chat/completions"]]


def test_requests_spread_over_replicas_and_survive_one_dying_mid_run():
    with FakeOpenAIServer(latency=0.02) as fast, FakeOpenAIServer(latency=0.06) as slow, \
            FakeOpenAIServer(latency=0.02) as dying:
        dying.add_faults(["ok"] * 15 + ["reset"] * 10_000)  # dies after 15 answers
        client = TeacherClient(f"{fast.base_url},{slow.base_url},{dying.base_url}", "m", max_concurrency=9,
                               max_retries=0, endpoint_cooldown=30)
        results = _ask(client, 240)
    # every request answered exactly once, with its own answer, although no retry was allowed
    assert [r.choices[0].text for r in results] == [f"Answer 0 to: question {i}" for i in range(240)]
    rows = {r["url"]: r for r in client.endpoint_stats()}
    assert rows[dying.base_url]["cooldowns"] == 1 and rows[dying.base_url]["ok"] == 15
    assert rows[fast.base_url]["ok"] > rows[slow.base_url]["ok"] > 0  # least outstanding favours the fast one
    assert sum(r["ok"] for r in rows.values()) == 240
    assert client.stats["failures"] == 0 and client.stats["failovers"] == client.stats["errors"] >= 3
    assert rows[slow.base_url]["latency_p50_ms"] > rows[fast.base_url]["latency_p50_ms"]
    for server in (fast, slow, dying):  # attempts counted per endpoint = requests the server received
        assert rows[server.base_url]["requests"] == len(server.requests)
    answered = collections.Counter()
    for server in (fast, slow, dying):
        answered.update(b["messages"][-1]["content"] for b in server.requests)
    assert set(answered) == {f"question {i}" for i in range(240)}


def test_when_every_endpoint_is_down_requests_wait_for_the_first_back():
    with FakeOpenAIServer(faults=["500"] * 2) as a, FakeOpenAIServer(faults=["503"] * 2) as b:
        client = TeacherClient(f"{a.base_url},{b.base_url}", "m", max_concurrency=2, max_retries=3,
                               endpoint_failures=1, endpoint_cooldown=0.3, backoff_base=0.01)
        started = time.monotonic()
        results = _ask(client, 4)
    assert all(r.choices for r in results) and time.monotonic() - started >= 0.25
    assert client.stats["failures"] == 0 and sum(e["cooldowns"] for e in client.endpoint_stats()) >= 2


def test_a_request_failing_everywhere_still_gives_up_after_max_retries():
    with FakeOpenAIServer(faults=["500"] * 100) as a, FakeOpenAIServer(faults=["500"] * 100) as b:
        client = TeacherClient(f"{a.base_url},{b.base_url}", "m", max_concurrency=1, max_retries=1,
                               endpoint_failures=10, backoff_base=0.01)
        from ktools.llm.types import TeacherError

        with pytest.raises(TeacherError, match="one of 2 endpoints.*HTTP 500"):
            _ask(client, 1)
        assert len(a.requests) + len(b.requests) == 4  # 2 rounds x 2 endpoints


def test_a_429_pauses_only_its_endpoint():
    with FakeOpenAIServer(faults=["429:5"]) as a, FakeOpenAIServer() as b:
        client = TeacherClient(f"{a.base_url},{b.base_url}", "m", max_concurrency=1, max_retries=0)
        started = time.monotonic()
        _ask(client, 6)
        assert time.monotonic() - started < 2.0
        assert len(a.requests) == 1 and len(b.requests) == 6
        assert client.endpoint_stats()[0]["state"] == "paused"


def test_a_run_on_endpoints_a_b_resumes_on_endpoint_c_without_resending(tmp_path):
    from ktools.generate import GenerationOptions, run_generation
    from ktools.io import read_jsonl
    from ktools.testing.scripted import scripted_responder

    seeds = [{"document": f"Chunk {i}: the Orvane harbour levy is {i + 3} euros per berth, due each March.",
              "chunk_id": f"c{i}", "source": "doc.md"} for i in range(6)]
    opts = GenerationOptions(generators=("document_based_qa", "key_facts_to_qa"), questions_per_chunk=2,
                             show_progress=False, judge_question=False, judge_faithfulness=False,
                             judge_relevancy=False)
    with FakeOpenAIServer(responder=scripted_responder, latency=0.01) as a, \
            FakeOpenAIServer(responder=scripted_responder, latency=0.01) as b:
        # b dies (resets every connection) after 4 answers: the run still completes on a
        b.add_faults(["ok"] * 4 + ["reset"] * 10_000)
        client = TeacherClient(f"{a.base_url},{b.base_url}", "fake-model", max_concurrency=4, max_retries=0)
        report = run_generation(seeds, opts, client, tmp_path / "out")
        assert report.ok and report.status == "complete"
        assert len(a.requests) > 0 and len(b.requests) > 4
    first = {g: read_jsonl(tmp_path / "out" / g / "gen.jsonl") for g in opts.generators}
    assert all(first.values())
    assert [e["url"] for e in report.endpoints] == [a.base_url, b.base_url]
    assert report.to_dict()["endpoints"][1]["errors"] >= 1
    assert "Endpoints:" in report.summary()
    with FakeOpenAIServer(responder=scripted_responder) as c:
        client = TeacherClient(c.base_url, "fake-model", max_concurrency=4)
        again = run_generation(seeds, opts, client, tmp_path / "out")
        assert again.ok and len(c.requests) == 0 and again.requests.get("sent", 0) == 0
    assert {g: read_jsonl(tmp_path / "out" / g / "gen.jsonl") for g in opts.generators} == first


def test_status_check_looks_at_every_endpoint(tmp_path):
    from ktools.setup_checks import teacher_reachability

    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        urls = f"{a.base_url},{b.base_url}#4"
        settings = load_settings(environ={"TEACHER_PROVIDER": "vllm", "TEACHER_MODEL_BASE_URL": urls},
                                 repo_root=tmp_path)
        check = teacher_reachability(settings)
        assert check.ok and a.base_url in check.detail and b.base_url in check.detail
        b.stop()
        check = teacher_reachability(settings, timeout=1.0)
        assert not check.ok and b.base_url in check.detail and "unreachable" in check.detail


def test_one_pool_serves_several_event_loops_and_counts_match_the_servers():
    import threading

    with FakeOpenAIServer(latency=0.01, capacity=2) as a, FakeOpenAIServer(latency=0.02) as b:
        b.add_faults((["ok"] * 5 + ["500"] * 3) * 30)
        client = TeacherClient(f"{a.base_url}#2,{b.base_url}#3", "m", max_concurrency=8, max_retries=6,
                               endpoint_cooldown=0.05, endpoint_failures=2, backoff_base=0.01)
        out: dict[int, list] = {}

        def worker(k: int) -> None:
            async def many():
                return await asyncio.gather(*(client.achat([{"role": "user", "content": f"t{k} q{i}"}])
                                              for i in range(40)))

            out[k] = (asyncio.run(many()) if k % 2 else
                      [client.chat([{"role": "user", "content": f"t{k} q{i}"}]) for i in range(10)])

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        client.close()
        rows = client.endpoint_stats()
        assert [r["requests"] for r in rows] == [len(a.requests), len(b.requests)]
    assert sorted(out) == [0, 1, 2, 3]
    for k, results in out.items():
        assert [r.choices[0].text for r in results] == [f"Answer 0 to: t{k} q{i}" for i in range(len(results))]
    assert all(r["in_flight"] == 0 for r in rows) and rows[0]["peak_in_flight"] <= 2 and rows[1]["peak_in_flight"] <= 3
    assert client.stats["failures"] == 0 and rows[1]["errors"] >= 1


def test_a_404_from_one_replica_fails_over_and_a_404_everywhere_fails_fast():
    from ktools.llm.types import TeacherError

    with FakeOpenAIServer(faults=["404"] * 3) as wrong, FakeOpenAIServer() as right:
        client = TeacherClient(f"{wrong.base_url},{right.base_url}", "m", max_concurrency=1, max_retries=0,
                               endpoint_failures=1)
        results = _ask(client, 3)
        assert all(r.choices for r in results) and client.stats["failovers"] >= 1
        assert client.endpoint_stats()[0]["cooldowns"] == 0  # not rested: 404 says nothing about its health
    with FakeOpenAIServer(faults=["404"] * 100) as a, FakeOpenAIServer(faults=["404"] * 100) as b:
        client = TeacherClient(f"{a.base_url},{b.base_url}", "m", max_concurrency=2, max_retries=3,
                               endpoint_failures=1, endpoint_cooldown=30)
        started = time.monotonic()
        for _ in range(3):
            with pytest.raises(TeacherError, match="HTTP 404.*TEACHER_MODEL_NAME"):
                _ask(client, 1)
        assert time.monotonic() - started < 5 and len(a.requests) + len(b.requests) == 6
