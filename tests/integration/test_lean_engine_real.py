"""The engine's lean forward on the real SmolLM2 (float32): the same greedy tokens as the
transformers forward (`--forward generic`) and as one-sequence `model.generate`."""

from __future__ import annotations

import pytest
import torch

from ktools.llm.local.engine import BatchEngine, GenerationRequest

pytestmark = pytest.mark.slow

PROMPTS = [
    "Summarise in one sentence: the reservoir fell below 60 percent, so garden watering is limited.",
    "List three facts about drought restrictions for businesses.",
    "What is the capital of France?",
]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    from ktools.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(None)
    model = load_causal_lm(None, device="cpu", dtype=torch.float32).eval()
    return model, tokenizer


def _run(model, tokenizer, prompts: list[list[int]], **options) -> list[str]:
    engine = BatchEngine(model, tokenizer, max_batch=8, **options).start()
    try:
        futures = [engine.submit(GenerationRequest(p, temperature=0, max_tokens=24)) for p in prompts]
        return [f.result(600).completions[0].text for f in futures]
    finally:
        engine.shutdown()


def test_lean_forward_matches_transformers_greedy(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = [list(tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=False)) for p in PROMPTS]
    lean = _run(model, tokenizer, prompts, lean=True)
    generic = _run(model, tokenizer, prompts, lean=False)
    assert lean == generic
    with torch.inference_mode():
        single = model.generate(torch.tensor([prompts[0]]), max_new_tokens=24, do_sample=False)
    expected = tokenizer.decode(single[0, len(prompts[0]):], skip_special_tokens=True)
    assert expected.startswith(lean[0])  # generate may run past the engine's end-of-turn stop


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_json_schema_constrained_decoding_on_the_real_model(model_and_tokenizer, temperature):
    import json

    import jsonschema

    from ktools.generate.structured import SCHEMAS, judge_schema
    from ktools.llm.local.jsonschema_guide import JsonSchemaGuide

    model, tokenizer = model_and_tokenizer
    cases = [
        (SCHEMAS["list"][1], "List three facts about drought restrictions as JSON with a key 'facts'."),
        (judge_schema(5)[1], "Rate this answer from 0 to 5 and give a reason, as JSON: 'Paris is in France.'"),
    ]
    engine = BatchEngine(model, tokenizer, max_batch=8).start()
    try:
        futures = []
        for schema, prompt in cases:
            ids = list(tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                     add_generation_prompt=True, tokenize=True, return_dict=False))
            futures.append(engine.submit(GenerationRequest(ids, temperature=temperature, max_tokens=300, seed=1,
                                                           grammar=JsonSchemaGuide(schema))))
        results = [f.result(900).completions[0] for f in futures]
    finally:
        engine.shutdown()
    # The judge's short document always completes; the facts may run out of tokens inside a
    # long string (a 135M model), but what was written is a valid start of such a document.
    judge = results[1]
    assert judge.finish_reason == "stop", judge
    for (schema, _), completion in zip(cases, results, strict=True):
        if completion.finish_reason == "stop":
            jsonschema.validate(json.loads(completion.text), schema)
        else:
            assert JsonSchemaGuide(schema).state(completion.text) == "prefix", completion
