"""Model-side evaluation: batched greedy answers and teacher-forced NLL of the reference."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

log = logging.getLogger(__name__)


def prompt_text(tokenizer: Any, question: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                         add_generation_prompt=True)


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


def _sorted_order(lengths: Sequence[int]) -> list[int]:
    # Similar lengths in a batch waste less padding.
    return sorted(range(len(lengths)), key=lambda i: lengths[i])


def generate_answers(model: Any, tokenizer: Any, questions: Sequence[str], *, max_new_tokens: int = 64,
                     batch_size: int = 16, progress: Any = None) -> list[str]:
    """Greedy answers, batched with left padding, in the order of `questions`."""
    import torch

    prompts = [prompt_text(tokenizer, q) for q in questions]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = _sorted_order([len(e) for e in encoded])
    answers: list[str] = [""] * len(questions)
    pad = tokenizer.pad_token_id
    model.eval()
    for chunk in _batches(len(order), batch_size):
        idx = [order[i] for i in chunk]
        longest = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), longest), dtype=torch.long)
        for row, i in enumerate(idx):
            n = len(encoded[i])
            ids[row, longest - n:] = torch.tensor(encoded[i])
            mask[row, longest - n:] = 1
        with torch.no_grad():
            out = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                 max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                                 eos_token_id=tokenizer.eos_token_id)
        for row, i in enumerate(idx):
            answers[i] = tokenizer.decode(out[row, longest:], skip_special_tokens=True).strip()
        if progress is not None:
            progress.update(len(idx))
    return answers


def reference_nll(model: Any, tokenizer: Any, questions: Sequence[str], references: Sequence[str], *,
                  batch_size: int = 16, progress: Any = None, answer_prefix: str = "") -> list[float]:
    """Mean negative log-likelihood per token of each reference answer given its question.

    Teacher-forced: the prompt is the chat template with the generation prompt (plus
    `answer_prefix`, the start of the assistant's answer), the continuation is the
    reference text; only the reference tokens are scored.
    """
    import torch.nn.functional as F

    nlls: list[float] = [math.nan] * len(questions)
    for idx, logits, targets, counts in scored_reference_logits(model, tokenizer, questions, references,
                                                                batch_size=batch_size, progress=progress,
                                                                answer_prefix=answer_prefix):
        parts = F.cross_entropy(logits, targets, reduction="none").split(counts)
        for row, i in enumerate(idx):
            nlls[i] = float(parts[row].mean()) if counts[row] else math.nan
    return nlls


def scored_reference_logits(model: Any, tokenizer: Any, questions: Sequence[str], references: Sequence[str], *,
                            batch_size: int = 16, progress: Any = None, answer_prefix: str = ""
                            ) -> Iterator[tuple[list[int], Any, Any, list[int]]]:
    """Per batch: (question indices, float32 logits predicting each reference token, those tokens,
    tokens per question), the rows in `indices` order. What `reference_nll` scores, and what
    `train.calibrate` rescales by a temperature without a second forward pass."""
    import torch

    pairs = []
    for q, r in zip(questions, references, strict=True):
        prompt_ids = tokenizer(prompt_text(tokenizer, q) + answer_prefix, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(r, add_special_tokens=False)["input_ids"]
        pairs.append((prompt_ids, answer_ids))
    order = _sorted_order([len(p) + len(a) for p, a in pairs])
    model.eval()
    for chunk in _batches(len(order), batch_size):
        idx = [order[i] for i in chunk]
        longest = max(len(pairs[i][0]) + len(pairs[i][1]) for i in idx)
        ids = torch.full((len(idx), longest), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        scored = torch.zeros_like(ids, dtype=torch.bool)
        for row, i in enumerate(idx):
            p, a = pairs[i]
            ids[row, : len(p) + len(a)] = torch.tensor(p + a)
            mask[row, : len(p) + len(a)] = 1
            scored[row, len(p): len(p) + len(a)] = True
        with torch.no_grad():
            logits, targets = _scored_logits(model, ids.to(model.device), mask.to(model.device),
                                             scored.to(model.device))
        yield idx, logits, targets, scored[:, 1:].sum(dim=1).tolist()
        if progress is not None:
            progress.update(len(idx))


def _scored_logits(model: Any, ids: Any, mask: Any, scored: Any) -> tuple[Any, Any]:
    """Logits (float32) at every position predicting a scored token, and those tokens, row by
    row, flat.

    The output projection and softmax run only at the positions that predict a scored
    token: the vocabulary (49k for SmolLM2) makes full [batch, length, vocab] logits the
    costliest part of the pass, and the prompt positions are never scored. Models whose
    head is not a plain projection of the last hidden state fall back to full logits.
    """
    import torch

    predicts = scored[:, 1:]  # position t predicts token t+1
    targets = ids[:, 1:][predicts]
    head = model.get_output_embeddings()
    decoder = getattr(model, "base_model", None)
    plain_head = (isinstance(head, torch.nn.Linear) and decoder is not None and decoder is not model
                  and getattr(model.config, "final_logit_softcapping", None) is None)
    if plain_head:
        hidden = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        logits = head(hidden[:, :-1][predicts]).float()
    else:
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1][predicts].float()
    return logits, targets
