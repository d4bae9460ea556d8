"""Step 04's knowledge components: the corpus exam, the views, closed-book Q&A and replay.

`build_knowledge` turns step 02's chunks (and step 03's Q&A) into the rows `build_mixes`
adds to every cut, and writes nothing itself: the exam is returned for `build_mixes` to
write with the mixes, so a failure leaves the previous outputs as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.knowledge.corpus import load_corpus
from ktools.knowledge.exam import ExamBuild, build_exam, find_leaks
from ktools.knowledge.replay import load_prompts, replay_answers, replay_count, replay_rows, spread
from ktools.knowledge.views import VIEWS, ViewRow, build_view_rows

log = logging.getLogger(__name__)

CLOSED_BOOK = "closed_book_qa"
REPLAY = "replay"
COMPONENTS = (*VIEWS, CLOSED_BOOK, REPLAY)
# Step 03's Q&A asked with the chunk in the prompt; their closed-book copies drop it.
_CLOSED_BOOK_SOURCES = ("document_based_qa",)


@dataclass
class KnowledgeBuild:
    rows: dict[str, list[ViewRow]] = field(default_factory=dict)
    exam: ExamBuild | None = None
    leaks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"rows": {k: len(v) for k, v in self.rows.items()},
                "exam_items": len(self.exam.items) if self.exam else 0,
                "exam_per_source": self.exam.per_source if self.exam else {},
                "exam_written_by": _count(i.written_by for i in self.exam.items) if self.exam else {},
                "leaks_removed": len(self.leaks), "notes": self.notes}


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def closed_book_rows(train: dict[str, list[dict[str, Any]]]) -> list[ViewRow]:
    """Step 03's document Q&A again without the document: the exam is asked closed-book."""
    from ktools.mixing.formats import clean_answer, question_problem

    rows = []
    for generator in _CLOSED_BOOK_SOURCES:
        for r in train.get(generator, []):
            question, answer = (r.get("question") or "").strip(), clean_answer(r.get("response", ""))
            if not answer or question_problem(question):
                continue
            rows.append(ViewRow(CLOSED_BOOK, question, answer, str(r.get("source", "")), str(r["chunk_id"]),
                                f"{r['item_id']}/closed_book", unmask=False))
    return rows


def build_knowledge(chunks_path: Path, manifest_path: Path, train: dict[str, list[dict[str, Any]]], *,
                    components: tuple[str, ...], corpus_exam: bool, exam_share: float, exam_max_per_source: int,
                    replay_share: float, replay_prompts: Path | None, replay_cache: Path, student: str, seed: int,
                    rephrase: Any = None, progress: bool = False, replay_self_prompts: int = 0,
                    replay_exclude: Sequence[str] = ()) -> KnowledgeBuild:
    build = KnowledgeBuild()
    views = tuple(c for c in components if c in VIEWS)
    if (views or corpus_exam) and not Path(chunks_path).is_file():
        # Step 03 rows made from chunks of another tool (`ktools generate --chunks-dir`) still mix.
        note = (f"knowledge views and corpus exam skipped: no step 02 chunks at {chunks_path} (run step 02 "
                "to get them; the mix holds step 03's rows only)")
        log.warning(note)
        build.notes.append(note)
        views, corpus_exam = (), False
    if views or corpus_exam:
        corpus, chunks = load_corpus(chunks_path, manifest_path)
        if corpus_exam:
            build.exam = build_exam(corpus, share=exam_share, max_per_source=exam_max_per_source, seed=seed,
                                    rephrase=rephrase)
            build.notes.extend(build.exam.notes)
        held_out = build.exam.held_out if build.exam else set()
        for source, facts in corpus.items():
            for view, rows in build_view_rows(facts, chunks.get(source, []), views=views, held_out=held_out,
                                              seed=seed).items():
                build.rows.setdefault(view, []).extend(rows)
    if CLOSED_BOOK in components:
        build.rows[CLOSED_BOOK] = closed_book_rows(train)
    if REPLAY in components and replay_share > 0:
        others = sum(len(v) for v in train.values()) + sum(len(v) for v in build.rows.values())
        if replay_prompts is None or not replay_prompts.is_file():
            build.notes.append(f"general replay skipped: no prompts file at {replay_prompts}")
        else:
            prompts = load_prompts(replay_prompts)
            wanted = replay_count(others, replay_share, 10**9)
            # The student writes what the hand-written prompts leave unfilled, up to its cap.
            own = max(0, min(replay_self_prompts, wanted - len(prompts)))
            n = replay_count(others, replay_share, len(prompts) + own)
            answers = (replay_answers(student, spread(prompts, n), replay_cache, self_prompts=own, exclude=replay_exclude,
                                      seed=seed, progress=progress) if n else [])
            build.rows[REPLAY] = replay_rows(answers, n)
            written = sum(1 for a in answers if str(a.get("id", "")).startswith("self"))
            if own:
                build.notes.append(f"general replay: {written} of {len(answers)} prompts written by the student "
                                   f"itself (asked for {own})")
            if n and len(answers) < wanted:
                build.notes.append(f"general replay: {len(answers)} rows, fewer than {replay_share:.0%} of the "
                                   f"mix ({len(prompts)} prompts in {replay_prompts.name}"
                                   + (f", {written} written by the student)" if own else "; REPLAY_SELF_PROMPTS "
                                      "lets the student write the rest)"))
    return build


def remove_leaks(build: KnowledgeBuild, train: dict[str, list[dict[str, Any]]],
                 user_exam: list[dict[str, Any]] | None = None) -> None:
    """Drop every training row (view or step-03 row) whose question leaks an exam item: the
    corpus exam's or a user-written one's (`EXAM_PATH`)."""
    exam = [i.to_dict() for i in build.exam.items] if build.exam else []
    exam += [{"id": f"user:{e['id']}", "question": e["question"]} for e in user_exam or []]
    if not exam:
        return
    from ktools.mixing.formats import user_turn
    from ktools.mixing.load import WITH_DOCUMENT

    for name, rows in list(build.rows.items()):
        leaks = find_leaks(exam, [r.prompt for r in rows])
        bad = {leak.row_index for leak in leaks}
        build.leaks.extend({"dataset": name, "exam_id": leak.exam_id, "reason": leak.reason,
                            "row": rows[leak.row_index].item_id} for leak in leaks)
        build.rows[name] = [r for k, r in enumerate(rows) if k not in bad]
    for generator, rows in list(train.items()):
        questions = [(r.get("question") or "") if WITH_DOCUMENT.get(generator, True) else user_turn(r, False)[0]
                     for r in rows]
        leaks = find_leaks(exam, questions)
        bad = {leak.row_index for leak in leaks}
        build.leaks.extend({"dataset": generator, "exam_id": leak.exam_id, "reason": leak.reason,
                            "row": rows[leak.row_index].get("item_id")} for leak in leaks)
        train[generator] = [r for k, r in enumerate(rows) if k not in bad]
    if build.leaks:
        log.info("removed %d training rows that leaked a corpus-exam question", len(build.leaks))
