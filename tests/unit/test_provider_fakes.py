"""The whole of step 03 against fakes that behave like each provider: thinking models sending
reasoning their way, `n` unsupported, JSON schema honoured or ignored, rate-limit headers and
429 bursts. Every profile keeps >= 95 % of the rows a plain teacher gives, status complete."""

from __future__ import annotations

import pytest

from ktools.generate import GenerationOptions, run_generation
from ktools.llm.client import TeacherClient
from ktools.paths import GENERATORS
from ktools.testing.fake_openai import FakeOpenAIServer
from ktools.testing.provider_fakes import PROVIDER_PROFILES, provider_responder
from ktools.testing.scripted import scripted_responder

SEEDS = [{"document": f"Chunk {i}: the Orvane harbour levy is {i + 3} euros per berth, due each March "
                      "to the harbour office.", "chunk_id": f"c{i}", "source": "doc.md"} for i in range(2)]


def run(tmp_path, responder, provider, model="m", server_options=None):
    options = GenerationOptions(number_of_summaries=2, questions_per_chunk=2, facts_per_chunk=3, show_progress=False,
                                judge_question=True, judge_faithfulness=True, judge_relevancy=True,
                                structured_output="auto", stage_thinking={"judges": "off"})
    with FakeOpenAIServer(responder=responder, **(server_options or {})) as server:
        client = TeacherClient(server.base_url, model, provider=provider, api_key="k", max_concurrency=8,
                               max_retries=8, backoff_base=0.05)
        report = run_generation(SEEDS, options, client, tmp_path)
        client.close()
        return report, server.requests, server.rate_limited, client.stats


@pytest.mark.parametrize("profile", sorted(PROVIDER_PROFILES))
def test_each_provider_profile_keeps_the_rows(tmp_path, profile):
    spec = PROVIDER_PROFILES[profile]
    server_options = dict(spec["server"])
    # The same server answering without thinking, schema or rate limit: the rows to keep. (Without
    # `n`, the scripted teacher's samples of one prompt are equal, and de-duplicated: both sides alike.)
    plain, *_ = run(tmp_path / "plain", scripted_responder, spec["provider"], spec.get("model", "m"),
                    dict(server_options))
    if profile in ("openai-gpt-oss", "anthropic"):  # hosted: a per-minute limit, shown as 25 per second
        server_options["rate_limit"] = (25, 1.0)
    report, requests, limited, stats = run(tmp_path / "run", provider_responder(profile, scripted_responder),
                                           spec["provider"], spec.get("model", "m"), server_options)
    assert report.status == "complete", report.status_reason
    for g in GENERATORS:
        assert plain.generators[g]["rows"] > 0
        assert report.generators[g]["rows"] >= 0.95 * plain.generators[g]["rows"], g
    if not spec["server"].get("supports_n", True):
        assert all(b.get("n", 1) == 1 for b in requests)
    judges = [b for b in requests if "Score" in b["messages"][-1]["content"]]
    if spec["provider"] in ("vllm",):
        assert all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in judges)
    elif spec["provider"] != "anthropic":
        assert all(b["reasoning_effort"] == "low" for b in judges)
    assert any("response_format" in b for b in requests) == (spec["provider"] != "anthropic")
    if "rate_limit" in server_options:
        assert stats["failures"] == 0 and stats["rate_header_pauses"] > 0
