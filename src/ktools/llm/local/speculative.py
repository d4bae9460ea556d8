"""Prompt-lookup speculative decoding: guess a row's next tokens from its own text, check them in one step.

Why: a decode step of the embedded teacher reads every weight and the whole KV cache
from memory for one token per row, and on this CPU that memory traffic, not the
arithmetic, sets its time. Feeding a row k+1 tokens in a step costs little more than
feeding it one, so if some of them are right the step yields several tokens.

Where the guesses come from: the teacher summarises, extracts facts and answers
questions about a document that is in its prompt, so its output copies long spans of
the prompt (names, numbers, phrases) and of itself. `Drafter` keeps, per row, the last
place each n-gram of the row's text (prompt + output so far) occurred and proposes the
tokens that followed it there (the "prompt lookup" / n-gram drafter of vLLM and
transformers' `prompt_lookup_num_tokens`).

Same answers: verification is exact speculative sampling. With a draft that is one
token x (a point mass), the target token is accepted with probability p(x) and on
rejection the token is drawn from p with x removed and renormalised; this yields
exactly the distribution p of plain sampling (Leviathan et al. 2023, Chen et al. 2023),
with each row's temperature and top_p applied to p as `sampling.choose_tokens` does.
Greedy rows accept a draft only where it equals the argmax, so their output is the
same tokens as one-at-a-time greedy decoding. Every draw comes from the row's own
generator, so a seeded request stays reproducible.

Why it is off by default (`--draft-tokens 0`): measured in one process on 16 requests
(~460-token prompts, 128 new tokens, temperature 0.7), about half the drafts were
accepted, but a batch ends with its slowest row, so the steps only fell from 128 to
116-123, while a step with 2-5 inputs per row cost 1.2-2x one with a single input
(the matmuls stop being free at 48-80 rows, and attention with several queries per row
is slower): tokens/s 0.87x with 2 drafts, 0.54x with 4. It may pay with longer answers,
greedy decoding or more copying; `bench/teacher_serving.py --backends
transformers,transformers-draft` measures it.
"""

from __future__ import annotations

import torch

from ktools.llm.local.sampling import probabilities


class Drafter:
    """Per-row n-gram index over the row's text; `propose` returns up to k next tokens."""

    def __init__(self, context: list[int], ngram: int = 3):
        self.ngram = ngram
        self.context = list(context)
        self.index: dict[tuple[int, ...], int] = {}
        for end in range(ngram, len(self.context)):
            self.index[tuple(self.context[end - ngram : end])] = end

    def append(self, token: int) -> None:
        n, context = self.ngram, self.context
        if len(context) >= n:
            self.index[tuple(context[-n:])] = len(context)  # that n-gram is now followed by `token`
        context.append(token)

    def propose(self, k: int) -> list[int]:
        if k <= 0 or len(self.context) < self.ngram:
            return []
        end = self.index.get(tuple(self.context[-self.ngram :]))
        if end is None:
            return []
        return self.context[end : end + k]


def verify(
    logits: torch.Tensor,
    drafts: list[list[int]],
    temperatures: list[float],
    top_ps: list[float],
    generators: list[torch.Generator],
) -> list[tuple[list[int], int]]:
    """Check each row's drafts against the model's distributions at those positions.

    logits [sum(len(d) + 1), vocab]: for row i, len(drafts[i]) + 1 consecutive rows, the
    distribution after its input token and after each draft token. Returns per row
    (the accepted drafts, the next token): the next token is drawn from the residual
    where a draft was rejected, or from the last distribution when all were accepted.
    """
    counts = [len(d) + 1 for d in drafts]
    owner = torch.repeat_interleave(torch.arange(len(drafts)), torch.tensor(counts))
    temps = torch.tensor(temperatures, dtype=torch.float32)[owner]
    tops = torch.tensor(top_ps, dtype=torch.float32)[owner]
    greedy = temps <= 0
    argmax = logits.argmax(dim=-1).tolist()
    sampled = (~greedy).nonzero(as_tuple=True)[0]
    probs = None
    draft_probs: list[float] = []
    if sampled.numel():
        probs = torch.zeros((logits.shape[0], logits.shape[1]), dtype=torch.float32)
        probs[sampled] = probabilities(logits[sampled], temps[sampled], tops[sampled])
        flat = [tok for d in drafts for tok in [*d, 0]]  # the draft checked at each position (0: none)
        draft_probs = probs.gather(1, torch.tensor(flat)[:, None]).squeeze(1).tolist()
    out: list[tuple[list[int], int]] = []
    at = 0
    for i, draft in enumerate(drafts):
        accepted: list[int] = []
        next_token = None
        for j, token in enumerate(draft):
            m = at + j
            if temperatures[i] <= 0:
                ok = argmax[m] == token
            else:
                ok = float(torch.rand((), generator=generators[i])) < draft_probs[m]
            if ok:
                accepted.append(token)
                continue
            if temperatures[i] <= 0:
                next_token = argmax[m]
            else:
                assert probs is not None
                residual = probs[m].clone()
                residual[token] = 0.0
                next_token = _draw(residual, generators[i])
            break
        if next_token is None:  # every draft accepted: the bonus token from the last distribution
            m = at + len(draft)
            next_token = argmax[m] if temperatures[i] <= 0 else _draw(probs[m], generators[i])  # type: ignore[index]
        out.append((accepted, next_token))
        at += len(draft) + 1
    return out


def _draw(weights: torch.Tensor, generator: torch.Generator) -> int:
    cumulative = weights.cumsum(dim=-1)
    draw = torch.rand((), generator=generator) * cumulative[-1]
    return int(torch.searchsorted(cumulative, draw[None]).clamp(max=weights.shape[-1] - 1))
