"""A held-out eval set that cannot leak into the training mixes.

Generated Q&A come in families of near-paraphrases: several Q&A about one key fact,
several Q&A about one summary, several Q&A generated straight from one chunk.
Holding out single rows would leave their siblings — paraphrases of the held-out
question with the same answer — in training, and the eval would measure recall of
training rows. So we hold out whole families ("groups"), per generator:

- ``key_facts_to_qa``: by key fact (`item_id`): all Q&A of a held-out fact go to eval.
- ``extractive_summary`` / ``detailed_summary``: by summary (`item_id`): a held-out
  summary's Q&A go to eval, and the summary itself (its rows carry it in context)
  never appears in training. Other summaries of the same chunk stay in training:
  they are the knowledge the model should learn; the eval asks about it in
  questions the model has not seen.
- ``document_based_qa``: by chunk (`chunk_id`), because these Q&A are all asked of
  the same text with no intermediate item, and different Q&A of one chunk overlap.
  When there are fewer than `min_chunks_for_chunk_groups` chunks (the demo has a
  handful), holding out whole chunks would take a large bite out of the training
  data (and remove whole chunks' text from it), so document-based Q&A are then held
  out one question at a time instead, and the report says so. Siblings of such a
  question (other Q&A of the same chunk) may then overlap with it: that is the price
  of a split on tiny data.

On top of the grouping, any training row whose normalised question (lower case,
punctuation and spacing removed) equals a held-out question is removed from
training too: that catches verbatim repeats across generators.

The share is of groups, drawn with a seeded RNG per generator from the sorted group
keys (independent of row order). Every generator keeps at least one training group;
a generator with a single group contributes nothing to eval. Placeholder questions
(`formats.question_problem`) are never put in the eval set.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ktools.mixing.formats import question_problem, to_eval_row

log = logging.getLogger(__name__)

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_question(question: str) -> str:
    return _NOT_WORD.sub(" ", question.lower()).strip()


def group_key(row: dict[str, Any], by_chunk: bool) -> str:
    if row["generator"] == "document_based_qa":
        # Step 03 gives all document Q&A of a chunk one item id ("<chunk>/document").
        return row["chunk_id"] if by_chunk else f"{row['item_id']}|{normalise_question(row['question'])}"
    return row["item_id"]


@dataclass
class SplitReport:
    eval_share: float
    seed: int
    grouping: dict[str, str] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    held_out_groups: dict[str, int] = field(default_factory=dict)
    eval_rows: dict[str, int] = field(default_factory=dict)
    train_rows: dict[str, int] = field(default_factory=dict)
    removed_duplicate_questions: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SplitResult:
    train: dict[str, list[dict[str, Any]]]
    eval_rows: list[dict[str, Any]]
    report: SplitReport


def split_eval(
    datasets: dict[str, list[dict[str, Any]]],
    eval_share: float = 0.1,
    seed: int = 42,
    min_chunks_for_chunk_groups: int = 20,
) -> SplitResult:
    if not 0.0 <= eval_share < 1.0:
        raise ValueError(f"eval_share must be in [0, 1), got {eval_share}")
    report = SplitReport(eval_share=eval_share, seed=seed)
    train: dict[str, list[dict[str, Any]]] = {}
    held_out_rows: list[dict[str, Any]] = []
    for generator, rows in datasets.items():
        n_chunks = len({r["chunk_id"] for r in rows})
        by_chunk = generator == "document_based_qa" and n_chunks >= min_chunks_for_chunk_groups
        if generator == "document_based_qa":
            report.grouping[generator] = "chunk" if by_chunk else "question (few chunks)"
            if not by_chunk:
                report.notes.append(
                    f"document_based_qa: only {n_chunks} chunks (< {min_chunks_for_chunk_groups}); "
                    "held out by single question instead of by whole chunk so training keeps every chunk")
        else:
            report.grouping[generator] = "key fact" if generator == "key_facts_to_qa" else "summary"
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            groups[group_key(row, by_chunk)].append(row)
        keys = sorted(groups)
        n_hold = round(eval_share * len(keys))
        if eval_share > 0 and n_hold == 0 and len(keys) >= 2:
            n_hold = 1
        n_hold = min(n_hold, len(keys) - 1)  # always leave training data
        held = set(random.Random(f"{seed}|eval|{generator}").sample(keys, n_hold)) if n_hold > 0 else set()
        report.groups[generator] = len(keys)
        report.held_out_groups[generator] = len(held)
        train[generator] = [r for k in keys if k not in held for r in groups[k]]
        held_out_rows.extend(r for k in keys if k in held for r in groups[k])

    held_questions = {normalise_question(r["question"]) for r in held_out_rows}
    held_questions.discard("")
    for generator, rows in train.items():
        kept = [r for r in rows if normalise_question(r["question"]) not in held_questions]
        report.removed_duplicate_questions += len(rows) - len(kept)
        train[generator] = kept
        report.train_rows[generator] = len(kept)

    eval_rows: list[dict[str, Any]] = []
    per_item: dict[tuple[str, str], int] = defaultdict(int)
    for row in held_out_rows:
        if question_problem(row["question"]) or not row["response"].strip():
            continue
        key = (row["generator"], row["item_id"])
        per_item[key] += 1
        eval_rows.append(to_eval_row(row, f"{row['generator']}/{row['item_id']}/{per_item[key]}"))
        report.eval_rows[row["generator"]] = report.eval_rows.get(row["generator"], 0) + 1
    if report.removed_duplicate_questions:
        report.notes.append(f"{report.removed_duplicate_questions} training rows removed: same question as "
                            "a held-out one")
    log.info("eval split: %d eval rows, %d groups held out", len(eval_rows), sum(report.held_out_groups.values()))
    return SplitResult(train, eval_rows, report)
