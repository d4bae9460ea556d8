"""The two shapes of a training row ktools writes, built in one place.

- chat: ``{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}``
  (optionally a system turn first; `thinking` on the turns for reasoning and GPT-OSS);
- Alpaca fields: ``{"instruction": ..., "input": ..., "output": ...}``.

Step 04's mixes (`mixing.formats`, `mixing.build`), the knowledge views (`knowledge.views`) and
`ktools convert` (`export.alpaca`, `export.messages`) differ in *what* goes into these fields
(the question alone or with its outline and document, metadata, cleaning); the keys, their
order and the thinking convention come from here, so the formats cannot drift apart.
"""

from __future__ import annotations

from typing import Any


def chat_messages(user: str, assistant: str, *, system: str | None = None, thinking: str | None = None,
                  gpt_oss: bool = False) -> list[dict[str, Any]]:
    """A conversation of one question and its answer.

    `thinking` (the teacher's reasoning) goes on the assistant turn when there is some. The
    GPT-OSS chat template expects the key on both turns: `None` on the user's, the reasoning
    or ``""`` on the assistant's.
    """
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    user_turn: dict[str, Any] = {"role": "user", "content": user}
    assistant_turn: dict[str, Any] = {"role": "assistant", "content": assistant}
    if gpt_oss:
        user_turn["thinking"] = None
        assistant_turn["thinking"] = thinking or ""
    elif thinking:
        assistant_turn["thinking"] = thinking
    return [*messages, user_turn, assistant_turn]


def alpaca_fields(instruction: str, input_text: str, output: str) -> dict[str, str]:
    """An Alpaca record; `input_text` is the context ("" for closed-book questions)."""
    return {"instruction": instruction, "input": input_text, "output": output}
