"""Reasoning split from the answer in every form servers send it (ktools.llm.reasoning, the client)."""

from __future__ import annotations

import pytest

from ktools.llm.client import TeacherClient
from ktools.llm.reasoning import split_reasoning
from ktools.testing.fake_openai import FakeOpenAIServer


@pytest.mark.parametrize("text, answer, reasoning", [
    ("plain answer", "plain answer", None),
    ("<think>check</think>\n\nTen euros.", "Ten euros.", "check"),
    ("<thinking>check</thinking>Ten euros.", "Ten euros.", "check"),
    ("<think>cut off while thinking", "", "cut off while thinking"),
    ("<think>a</think>Ten <think>b</think>euros.", "Ten euros.", "a\nb"),
    ("the template opened it\n</think>\n\nTen euros.", "Ten euros.", "the template opened it"),
    ("<|channel|>analysis<|message|>check the levy<|end|><|start|>assistant<|channel|>final<|message|>"
     "Ten euros.<|return|>", "Ten euros.", "check the levy"),
    ("<|channel|>analysis<|message|>cut off in analysis", "", "cut off in analysis"),
])
def test_split_reasoning_forms(text, answer, reasoning):
    assert split_reasoning(text) == (answer, reasoning)


def test_stripped_harmony_only_when_asked():
    text = "analysisThe levy is ten.assistantfinalTen euros."
    assert split_reasoning(text) == (text, None)  # an ordinary answer may start with "analysis"
    assert split_reasoning(text, stripped_harmony=True) == ("Ten euros.", "The levy is ten.")
    assert split_reasoning("analysis still going", stripped_harmony=True) == ("", "still going")


@pytest.mark.parametrize("model, out, answer, reasoning", [
    ("m", {"text": "Ten.", "reasoning": "r1", "reasoning_field": "reasoning"}, "Ten.", "r1"),
    ("m", {"text": "Ten.", "reasoning": "r2"}, "Ten.", "r2"),
    ("m", {"text": "<think>r3</think>Ten."}, "Ten.", "r3"),
    ("openai/gpt-oss-120b", {"text": "analysisr4assistantfinalTen."}, "Ten.", "r4"),
    ("m", {"text": "analysis of the levy: Ten."}, "analysis of the levy: Ten.", None),
])
def test_the_client_returns_the_answer_alone(model, out, answer, reasoning):
    with FakeOpenAIServer(responder=lambda body, i: out) as server:
        client = TeacherClient(server.base_url, model, max_retries=0)
        choice = client.chat([{"role": "user", "content": "levy?"}]).choices[0]
        client.close()
    assert (choice.text, choice.reasoning) == (answer, reasoning)


def test_a_template_opened_thinker_cut_off_mid_thought_gives_no_answer():
    # R1-style: the template opened <think>, so replies carry only </think>. Once the client saw
    # that, a reply cut off before any closing tag is all reasoning - not an answer to parse.
    def responder(body, index):
        user = body["messages"][-1]["content"]
        if user == "first":
            return "pondering the levy\n</think>\n\nTen euros."
        return {"text": "1. Maybe the levy? Question: is it ten", "finish_reason": "length"}

    with FakeOpenAIServer(responder=responder) as server:
        client = TeacherClient(server.base_url, "deepseek-r1-distill", max_retries=0)
        first = client.chat([{"role": "user", "content": "first"}]).choices[0]
        cut = client.chat([{"role": "user", "content": "second"}]).choices[0]
        client.close()
    assert (first.text, first.reasoning) == ("Ten euros.", "pondering the levy")
    assert cut.text == "" and cut.reasoning.startswith("1. Maybe the levy?") and cut.truncated
