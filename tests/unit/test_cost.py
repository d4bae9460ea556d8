"""Money: prices turn tokens into cost (report, dry-run estimate, CLI), and MAX_COST stops a run
cleanly - resumable, never `complete`."""

from __future__ import annotations

import pytest

from ktools.cli import main
from ktools.generate import GenerationOptions, run_generation
from ktools.io import read_json, write_jsonl
from ktools.testing.fake_openai import FakeOpenAIServer
from ktools.testing.scripted import ScriptedClient, scripted_responder

SEEDS = [{"document": f"Chunk {i}: the Orvane harbour levy is {i + 3} euros per berth, due each March.",
          "chunk_id": f"c{i}", "source": "doc.md"} for i in range(6)]
PRICES = {"price_input": 1000.0, "price_output": 2000.0}  # per million tokens


def opts(**kw):
    base = dict(generators=("document_based_qa",), questions_per_chunk=2, show_progress=False,
                judge_question=False, judge_faithfulness=False, judge_relevancy=False, **PRICES)
    base.update(kw)
    return GenerationOptions(**base)


def test_the_report_prices_the_tokens(tmp_path):
    report = run_generation(SEEDS, opts(), ScriptedClient(), tmp_path)
    req = report.requests
    assert req["cost"] == pytest.approx((req["prompt_tokens"] * 1000 + req["completion_tokens"] * 2000) / 1e6)
    assert "cost" in report.summary() and read_json(tmp_path / "report.json")["requests"]["cost"] == req["cost"]
    unpriced = run_generation(SEEDS, opts(price_input=0.0, price_output=0.0), ScriptedClient(), tmp_path / "u")
    assert "cost" not in unpriced.requests


def test_max_cost_stops_cleanly_and_a_resume_finishes(tmp_path):
    full = run_generation(SEEDS, opts(max_tokens=48), ScriptedClient(), tmp_path / "full")
    cap = full.requests["cost"] / 2
    # Many requests in flight at once: the worst case of each (prompt + its cap) is held against
    # the limit while it runs, so together they cannot pass it.
    stopped = run_generation(SEEDS, opts(max_cost=cap, max_concurrency=8, max_tokens=48),
                             ScriptedClient(latency=0.01), tmp_path / "run")
    assert stopped.status == "cost_limit_reached" and "cost limit" in stopped.status_reason
    assert 0 < stopped.requests["cost"] <= cap  # never over
    assert "resume" in stopped.resume_hint
    again = run_generation(SEEDS, opts(max_tokens=48), ScriptedClient(), tmp_path / "run")
    assert again.status == "complete" and again.rows == full.rows


def test_max_cost_without_prices_is_refused():
    with pytest.raises(ValueError, match="TEACHER_PRICE_INPUT"):
        GenerationOptions(max_cost=1.0)


def test_the_dry_run_estimate_is_in_money_too(tmp_path):
    report = run_generation(SEEDS, opts(dry_run=True), ScriptedClient(), tmp_path)
    est = report.estimate
    assert est["cost"] > 0 and est["generators"]["document_based_qa"]["cost"] == pytest.approx(est["cost"], rel=1e-3)


def test_cli_flags_and_one_line_reason(tmp_path, tmp_output, capsys, monkeypatch):
    for name in ("TEACHER_MODEL_BASE_URL", "TEACHER_PROVIDER", "TEACHER_MODEL_NAME", "TOKEN_BUDGET", "MAX_COST"):
        monkeypatch.delenv(name, raising=False)
    seed = tmp_path / "seed.jsonl"
    write_jsonl(seed, SEEDS)
    with FakeOpenAIServer(responder=scripted_responder) as server:
        base = ["generate", "--seed", str(seed), "--provider", "vllm", "--model", "m", "--base-url", server.base_url,
                "--generators", "document_based_qa", "--no-progress", "--judges", "off",
                "--price-input", "1000", "--price-output", "2000"]
        assert main([*base, "--qa-dir", str(tmp_path / "dry"), "--dry-run"]) == 0
        assert "tokens, cost " in capsys.readouterr().out
        assert main([*base, "--qa-dir", str(tmp_path / "qa"), "--max-cost", "0.0001", "--max-concurrency", "1"]) == 1
        line = [x for x in capsys.readouterr().err.splitlines() if x.startswith("ktools generate:")]
        assert len(line) == 1 and line[0].startswith("ktools generate: cost_limit_reached: stopped at the cost limit")
        assert read_json(tmp_path / "qa" / "report.json")["status"] == "cost_limit_reached"
        assert main([*base, "--qa-dir", str(tmp_path / "qa2"), "--token-budget", "50", "--max-concurrency", "1"]) == 1
        assert "budget_reached: stopped at the token budget of 50" in capsys.readouterr().err
