"""Answer metrics: token F1, ROUGE-L, key-fact hit rate (text only; NLL is in `nll`)."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation + "‘’“”–—…"})


def normalize(text: str) -> str:
    """Lowercase, strip accents, punctuation and articles, squeeze spaces (SQuAD-style)."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bag of words); 1.0 when both are empty."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred and not ref:
        return 1.0
    if not pred or not ref:
        return 0.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (rouge-score, with stemming) on normalized text; 0.0 for an empty side."""
    pred, ref = normalize(prediction), normalize(reference)
    if not pred or not ref:
        return 1.0 if pred == ref else 0.0
    try:
        from rouge_score import rouge_scorer
    except ImportError:  # pragma: no cover - the evaluation extra installs it
        return _lcs_f1(pred.split(), ref.split())
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(ref, pred)["rougeL"].fmeasure


def _lcs_f1(pred: list[str], ref: list[str]) -> float:
    table = [[0] * (len(ref) + 1) for _ in range(len(pred) + 1)]
    for i, p in enumerate(pred):
        for j, r in enumerate(ref):
            table[i + 1][j + 1] = table[i][j] + 1 if p == r else max(table[i][j + 1], table[i + 1][j])
    lcs = table[-1][-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def key_fact_hit_rate(prediction: str, key_facts: Sequence[str]) -> float | None:
    """Share of key facts whose normalized text appears in the normalized answer (None: no facts)."""
    facts = [normalize(f) for f in key_facts if normalize(f)]
    if not facts:
        return None
    answer = f" {normalize(prediction)} "
    return sum(f" {fact} " in answer for fact in facts) / len(facts)
