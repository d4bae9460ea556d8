"""Mix rows → token ids and labels, with the loss where `unmask` says.

A mix row (step 04) is ``{"messages": [...], "unmask": bool, ...}``:

- ``unmask: true``  — knowledge rows: the loss covers the whole rendered sequence
  (system prompt, template tokens, question and answer);
- ``unmask: false`` — the loss covers the assistant turns only (their content and
  the end-of-turn token that teaches the model to stop); every other token gets
  label -100.

Assistant spans are found by rendering growing prefixes of the conversation with the
tokenizer's own chat template (so any template works, not only ChatML): the text of
turn *i* is what `messages[:i+1]` adds to `messages[:i]` + the generation prompt.
Tokens are then mapped to characters through the fast tokenizer's offsets.

Rows step 04 wrote as general replay (``metadata.generator == "replay"``: the base
student's own answers to general prompts) can be flagged ``distill``: with
``TrainConfig.retention_kl > 0`` their assistant tokens also get a KL term against the
frozen base model (ktools.train.retention). `load_mix(..., replay=True)` reports the
flag as a third tuple element; the default keeps the (messages, unmask) pairs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ktools.io import iter_jsonl

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
ROLES = {"system", "user", "assistant"}
REPLAY_GENERATOR = "replay"  # knowledge/replay.py's metadata.generator


class MixFormatError(ValueError):
    """A training-mix row cannot be used; the message names file, line and field."""


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    distill: bool = False  # a general-replay row: retention KL applies to its assistant tokens

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_loss_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def validate_row(row: Any, where: str) -> tuple[list[dict[str, str]], bool]:
    """The row's messages (role/content only) and its unmask flag, or a clear error."""
    if not isinstance(row, dict):
        raise MixFormatError(f"{where}: expected a JSON object with 'messages', got {type(row).__name__}")
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MixFormatError(f"{where}: field 'messages' must be a non-empty list of "
                             "{'role', 'content'} objects (step 04 writes it)")
    clean: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise MixFormatError(f"{where}: messages[{i}].role must be one of {sorted(ROLES)}")
        content = message.get("content")
        if not isinstance(content, str):
            raise MixFormatError(f"{where}: messages[{i}].content must be a string")
        clean.append({"role": message["role"], "content": content})
    if not any(m["role"] == "assistant" for m in clean):
        raise MixFormatError(f"{where}: no assistant message; each row needs at least one answer to train on")
    unmask = row.get("unmask", False)
    if not isinstance(unmask, bool):
        raise MixFormatError(f"{where}: field 'unmask' must be true or false, got {unmask!r}")
    return clean, unmask


def is_replay_row(row: Any) -> bool:
    """Whether step 04 generated this row as general replay (the base student's own answer)."""
    metadata = row.get("metadata") if isinstance(row, dict) else None
    return isinstance(metadata, dict) and metadata.get("generator") == REPLAY_GENERATOR


def load_mix(path: str | Path, *, limit: int | None = None, replay: bool = False) -> list[tuple[Any, ...]]:
    """Rows of a `combined_cut_{N}x.jsonl` as (messages, unmask) pairs, validated;
    with `replay`, (messages, unmask, is_replay) triples (for the retention KL).

    `thinking` fields are dropped: the default student's chat template has no place for
    reasoning, and a 135M model gains nothing from learning to imitate it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training mix {path} not found; run step 04 (04_Knowledge_Mixing) first "
                                "or pass the path of an existing combined_cut_<N>x.jsonl")
    rows = []
    with_thinking = 0
    for line_no, row in enumerate(iter_jsonl(path), start=1):
        where = f"{path}, line {line_no}"
        if isinstance(row, dict) and any(isinstance(m, dict) and m.get("thinking")
                                         for m in row.get("messages") or []):
            with_thinking += 1
        checked = validate_row(row, where)
        rows.append((*checked, is_replay_row(row)) if replay else checked)
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise MixFormatError(f"{path}: the training mix is empty")
    if with_thinking:
        log.info("%d rows carry 'thinking'; it is not trained on (the chat template has no slot for it)",
                 with_thinking)
    return rows


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_char_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    text = _render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        upto = _render(tokenizer, messages[: i + 1])
        if not text.startswith(upto) or not upto.startswith(before):
            raise MixFormatError("the chat template does not render conversations prefix by prefix, "
                                 "so assistant turns cannot be located; use unmask=true for these rows")
        spans.append((len(before), len(upto)))
    return text, spans


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, str]], unmask: bool,
                          max_seq_len: int | None = None) -> TokenizedExample:
    """Token ids and labels of one conversation (see the module docstring for the masking rule)."""
    text, spans = assistant_char_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoded["input_ids"])
    if unmask:
        labels = list(input_ids)
    else:
        labels = []
        for token_id, (start, end) in zip(input_ids, encoded["offset_mapping"], strict=True):
            # A token belongs to a turn when its first character does (offsets of
            # special tokens are exact; merged whitespace tokens are rare at edges).
            inside = any(s <= start < e for s, e in spans) and end > start
            labels.append(token_id if inside else IGNORE_INDEX)
    truncated = False
    if max_seq_len is not None and len(input_ids) > max_seq_len:
        input_ids, labels, truncated = input_ids[:max_seq_len], labels[:max_seq_len], True
    return TokenizedExample(input_ids, labels, truncated)


def tokenize_mix(tokenizer: Any, rows: Iterable[tuple[Any, ...]],
                 max_seq_len: int | None = None) -> list[TokenizedExample]:
    """Tokenize every row; rows left with no loss token after truncation are skipped (and counted).

    Rows are (messages, unmask) or, from `load_mix(..., replay=True)`, (messages, unmask, distill)."""
    examples, empty = [], 0
    for messages, unmask, *flag in rows:
        example = tokenize_conversation(tokenizer, messages, unmask, max_seq_len)
        if flag and flag[0]:
            example = dataclasses.replace(example, distill=True)
        if example.n_loss_tokens == 0:
            empty += 1
            continue
        examples.append(example)
    truncated = sum(e.truncated for e in examples)
    if truncated or empty:
        log.warning("%d rows truncated to %s tokens; %d rows skipped (no answer token left)",
                    truncated, max_seq_len, empty)
    if not examples:
        raise MixFormatError("no training example left after tokenization; raise max_seq_len")
    return examples
