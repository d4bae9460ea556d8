"""Reasoning in every form providers send it, split from the answer.

Separate fields (`message.reasoning_content` from vLLM/SGLang/DeepSeek, `message.reasoning`
from OpenRouter, Ollama and newer vLLM) are read by the client. This module handles the
forms that arrive inside the answer text:

- `<think>…</think>` (also `<thinking>`), anywhere, possibly several, possibly cut off
  before the closing tag (the answer is then empty);
- a closing `</think>` with no opening tag: Qwen3 / DeepSeek-R1 chat templates put the
  `<think>` into the prompt, so the completion starts inside the reasoning;
- gpt-oss's harmony channels as servers pass them through:
  `<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…`,
  or with the special tokens stripped, `analysis…assistantfinal…`.

`split_reasoning(text) -> (answer, reasoning or None)`; the answer never contains the
reasoning, so parsers see only what the model meant as its reply.
"""

from __future__ import annotations

import re

_THINK = re.compile(r"<think(?:ing)?>(.*?)(?:</think(?:ing)?>|$)", re.S | re.I)
_CLOSE = re.compile(r"</think(?:ing)?>", re.I)
_HARMONY = re.compile(
    r"<\|channel\|>\s*(?P<channel>\w+)[^<]*<\|message\|>(?P<body>.*?)"
    r"(?=<\|end\|>|<\|return\|>|<\|call\|>|<\|start\|>|<\|channel\|>|$)", re.S)
# Special tokens stripped by the server (skip_special_tokens): "analysis<thought>assistantfinal<answer>".
_HARMONY_STRIPPED = re.compile(r"^\s*analysis(?P<thought>.*?)assistant\s*final(?P<answer>.*)$", re.S)
_HARMONY_CUT = re.compile(r"^\s*analysis(?P<thought>.+)$", re.S)


def _harmony(text: str) -> tuple[str, str | None] | None:
    if "<|channel|>" in text:
        thoughts, finals = [], []
        for m in _HARMONY.finditer(text):
            body = m.group("body").strip()
            (finals if m.group("channel").lower() == "final" else thoughts).append(body)
        if not thoughts and not finals:
            return None
        return "\n".join(finals).strip(), "\n".join(t for t in thoughts if t) or None
    return None


def split_reasoning(text: str | None, *, stripped_harmony: bool = False) -> tuple[str, str | None]:
    """(answer, reasoning) from a completion's text; reasoning None when there is none.

    `stripped_harmony=True` also reads gpt-oss output whose channel tokens were stripped
    ("analysis…assistantfinal…"); off by default because an ordinary answer may start
    with the word "analysis".
    """
    if not text:
        return "", None
    if "<" in text:
        harmony = _harmony(text)
        if harmony is not None:
            return harmony
        if _THINK.search(text):
            parts = [m.group(1).strip() for m in _THINK.finditer(text)]
            answer = _THINK.sub("", text)
            stray = _CLOSE.split(answer)  # a second block's orphan close tag
            if len(stray) > 1:
                parts.extend(p.strip() for p in stray[:-1])
                answer = stray[-1]
            return answer.strip(), "\n".join(p for p in parts if p) or None
        close = _CLOSE.search(text)
        if close:  # the template opened the block in the prompt
            return text[close.end():].strip(), text[: close.start()].strip() or None
    if stripped_harmony and text.lstrip().startswith("analysis"):
        m = _HARMONY_STRIPPED.match(text)
        if m:
            return m.group("answer").strip(), m.group("thought").strip() or None
        m = _HARMONY_CUT.match(text)
        if m:
            return "", m.group("thought").strip() or None
    return text, None
