"""Near-duplicate questions across chunks and generators, found before anything is mixed.

A teacher asked the same kind of question about every chunk repeats itself: one run kept
28 pairs with 3 distinct questions. Training on 28 copies teaches the copy, not the
documents. Two questions are duplicates when their normalised text (lower case, runs of
non-word characters as one space) is equal ("What is the levy?" / "what is the levy ?"),
or when the Jaccard similarity of their word-bigram shingles is at least the threshold
(DEDUP_THRESHOLD, default 0.9: "According to the rules, what is the harbour levy per
berth?" / "According to the rules what is the harbour levy per berth in total?" match;
"What is the fee for cars?" / "... for bikes?" do not - word shingles, not characters,
so one different content word in a short question keeps it). The first occurrence in
seed order (chunk, then generator)
is kept; the others go to `<generator>/duplicates.jsonl` with `duplicate_of` and
`similarity`, and are counted in the yield report.

Candidate pairs come from prefix filtering (rarest shingles first; two sets with
Jaccard >= t must share one of the first |A| - ceil(t·|A|) + 1 of them), so the cost
grows with the number of questions, not its square; every candidate is verified exactly.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

_NON_WORDS = re.compile(r"\W+")
SHINGLE = 2  # words


def normalise(text: str) -> str:
    return _NON_WORDS.sub(" ", text.lower()).strip()


def shingles(normalised: str, k: int = SHINGLE) -> frozenset[str]:
    words = normalised.split()
    if len(words) <= k:
        return frozenset({" ".join(words)})
    return frozenset(" ".join(words[i:i + k]) for i in range(len(words) - k + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


@dataclass(frozen=True)
class Duplicate:
    index: int         # position of the dropped question in the input
    kept: int          # position of the question it repeats (kept)
    similarity: float  # 1.0 for equal normalised text


def find_duplicates(questions: Sequence[str], threshold: float) -> list[Duplicate]:
    """Questions (in priority order) that repeat an earlier kept one; threshold in (0, 1]."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"dedup threshold must be in (0, 1], got {threshold}")
    norms = [normalise(q) for q in questions]
    duplicates: list[Duplicate] = []
    exact: dict[str, int] = {}
    near = threshold < 1.0
    sets = [shingles(n) for n in norms] if near else []
    frequency: Counter[str] = Counter(s for shingle_set in sets for s in shingle_set)
    index: dict[str, list[int]] = defaultdict(list)
    for i, norm in enumerate(norms):
        if norm in exact:
            duplicates.append(Duplicate(i, exact[norm], 1.0))
            continue
        if near:
            ordered = sorted(sets[i], key=lambda s: (frequency[s], s))
            prefix = ordered[: len(ordered) - math.ceil(threshold * len(ordered)) + 1]
            best: tuple[float, int] | None = None
            seen: set[int] = set()
            for shingle in prefix:
                for j in index.get(shingle, ()):
                    if j in seen:
                        continue
                    seen.add(j)
                    similarity = jaccard(sets[i], sets[j])
                    if similarity >= threshold and (best is None or similarity > best[0]):
                        best = (similarity, j)
            if best is not None:
                duplicates.append(Duplicate(i, best[1], round(best[0], 4)))
                continue
            for shingle in prefix:
                index[shingle].append(i)
        exact[norm] = i
    return duplicates
