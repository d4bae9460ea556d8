"""Multiple choice scored by log-likelihood: the sensitive measure for small students.

A 135M student that has started to learn a fact often still cannot *say* it in a greedy
answer, but already prefers it among alternatives. For each question the options are
the right fact and three distractors of the same kind (a date for a date, a name for a
name) from other facts of the same document; the model's choice is the option with the
lowest mean negative log-likelihood per token as the end of the answer "The answer is
<option>" (length-normalised, so a short option is not favoured for being short).
Chance is 1/4.

Options come from the item itself (`choices`, written by the corpus exam) or, for an
exam without them (a hand-written one), from the key facts of the set's other items.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

N_OPTIONS = 4
# Each option is scored as the end of "The answer is …": bare, an option starting with a word every
# answer starts with ("The heart") looked likelier than "Paris" to the base model, which got 12 of
# its 21 known general questions right that way.
ANSWER_FRAME = "The answer is"


def fact_kind(text: str) -> str:
    from ktools.knowledge.facts import fact_spans

    spans = fact_spans(text)
    whole = [s for s in spans if len(s.text) >= 0.6 * len(text.strip())]
    return whole[0].kind if whole else "other"


def choice_options(items: Sequence[Any], seed: int = 0) -> list[tuple[list[str], int] | None]:
    """(options, index of the right one) per item, or None when it cannot be asked as a choice."""
    pool: dict[str, list[str]] = defaultdict(list)
    for item in items:
        if item.key_facts:
            fact = item.key_facts[0]
            pool[fact_kind(fact)].append(fact)
    out: list[tuple[list[str], int] | None] = []
    for k, item in enumerate(items):
        if not item.key_facts:
            out.append(None)
            continue
        right = item.key_facts[0]
        given = [c for c in getattr(item, "choices", ()) if c]
        if given and right in given:
            out.append((list(given), given.index(right)))
            continue
        rng = random.Random(f"{seed}:{k}:{right}")
        norm = right.strip().lower()
        others = sorted({f for f in pool[fact_kind(right)] if f.strip().lower() != norm})
        if len(others) < N_OPTIONS - 1:
            others = sorted({f for fs in pool.values() for f in fs if f.strip().lower() != norm})
        if len(others) < N_OPTIONS - 1:
            out.append(None)
            continue
        options = rng.sample(others, N_OPTIONS - 1) + [right]
        rng.shuffle(options)
        out.append((options, options.index(right)))
    return out


def score_choices(model: Any, tokenizer: Any, questions: Sequence[str],
                  options: Sequence[tuple[list[str], int] | None], *, batch_size: int = 16,
                  progress: Any = None) -> list[float | None]:
    """1.0 where the model's most likely option is the right one, 0.0 where not, None without options."""
    from ktools.evaluate.answering import reference_nll

    flat_q: list[str] = []
    flat_o: list[str] = []
    for question, entry in zip(questions, options, strict=True):
        if entry is not None:
            flat_q.extend([question] * len(entry[0]))
            flat_o.extend(entry[0])
    nlls = (reference_nll(model, tokenizer, flat_q, [" " + o for o in flat_o], batch_size=batch_size,
                          answer_prefix=ANSWER_FRAME) if flat_q else [])
    results: list[float | None] = []
    at = 0
    for entry in options:
        if entry is None:
            results.append(None)
        else:
            scores = nlls[at: at + len(entry[0])]
            at += len(entry[0])
            best = min(range(len(scores)), key=lambda i: scores[i])
            results.append(1.0 if best == entry[1] else 0.0)
        if progress is not None:
            progress.update(1)
    return results
