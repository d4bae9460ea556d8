"""Has the student fitted its training Q&A? Accuracy on a sample of the mix's own questions.

The loss curve says the loss went down, not whether the student can now *answer*: this
check asks a seeded sample of the mix's questions that have a short expected fact
(`metadata.key_fact`: the cloze views' answers) and counts an answer right when it
contains that fact. Low accuracy here means the exam cannot be passed either — train
longer, or raise the learning rate; high accuracy with a poor exam means the student
memorised the questions without learning to use the facts elsewhere.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ktools.io import iter_jsonl, read_json, write_json

# Views whose key fact is the whole expected answer (see ktools.knowledge.views).
CHECKED_VIEWS = ("cloze",)


def sample_questions(mix_path: str | Path, n: int, seed: int = 0) -> list[dict[str, str]]:
    rows = []
    for row in iter_jsonl(mix_path):
        meta = row.get("metadata") or {}
        fact = meta.get("key_fact")
        if meta.get("generator") in CHECKED_VIEWS and fact:
            messages = row["messages"]
            rows.append({"question": messages[0]["content"], "expected": fact, "view": meta["generator"]})
    random.Random(seed).shuffle(rows)
    return rows[:n]


def training_qa_accuracy(model_dir: str | Path, mix_path: str | Path, *, n: int = 40, seed: int = 0,
                         report_path: str | Path | None = None, model: Any = None, tokenizer: Any = None
                         ) -> dict[str, Any]:
    """`{"accuracy", "n", "rows"}` (accuracy None when the mix has no checkable question); when
    `report_path` is given, stored in that train_report.json as `train_qa`."""
    from ktools.evaluate.answering import generate_answers
    from ktools.evaluate.metrics import key_fact_hit_rate

    questions = sample_questions(mix_path, n, seed)
    result: dict[str, Any] = {"accuracy": None, "n": 0, "rows": []}
    if questions:
        if model is None or tokenizer is None:
            from ktools.models import load_causal_lm, load_tokenizer

            tokenizer = load_tokenizer(str(model_dir))
            model = load_causal_lm(str(model_dir))
        tokenizer.padding_side = "left"
        answers = generate_answers(model, tokenizer, [q["question"] for q in questions], max_new_tokens=24)
        rows = [{**q, "answer": a, "hit": bool(key_fact_hit_rate(a, [q["expected"]]))}
                for q, a in zip(questions, answers, strict=True)]
        result = {"accuracy": round(sum(r["hit"] for r in rows) / len(rows), 3), "n": len(rows), "rows": rows}
    if report_path is not None and Path(report_path).is_file():
        report = read_json(report_path)
        report["train_qa"] = {k: v for k, v in result.items() if k != "rows"}
        write_json(report_path, report)
    return result
