"""General replay: the base student's own answers to general prompts, mixed into training.

Fine-tuning on one document pulls a small model away from everything else it knew;
~10 % of general data in the mix limits that (EntiGraph, Yang et al. 2024; LAB). No
download is needed: the student answers `assets/replay_prompts.jsonl` (general
questions and instructions, none of them in the general eval set) before training,
greedily, and those answers are trained on as they are — the student is asked to keep
saying what it already says. Answers are cached beside the mix, keyed by the weights
and the prompts, so a re-run of step 04 does not generate them again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ktools.io import iter_jsonl, read_json, write_json
from ktools.knowledge.views import ViewRow

log = logging.getLogger(__name__)

REPLAY_MAX_NEW_TOKENS = 96


def default_prompts_path(repo_root: Path) -> Path:
    return repo_root / "assets" / "replay_prompts.jsonl"


def load_prompts(path: Path) -> list[dict[str, str]]:
    prompts = []
    for line, row in enumerate(iter_jsonl(path), start=1):
        if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise ValueError(f"{path}, record {line}: field 'prompt' must be a non-empty string")
        prompts.append({"id": str(row.get("id") or f"r{line:03d}"), "prompt": row["prompt"].strip()})
    return prompts


def replay_answers(model_name: str, prompts: list[dict[str, str]], cache: Path, *, progress: bool = False
                   ) -> list[dict[str, str]]:
    """`[{id, prompt, answer}]`: the student's greedy answers, from the cache when it matches."""
    from ktools.evaluate.runner import model_fingerprint

    key = hashlib.sha256(json.dumps({"model": model_fingerprint(model_name), "prompts": prompts,
                                     "max_new_tokens": REPLAY_MAX_NEW_TOKENS}, sort_keys=True).encode()
                         ).hexdigest()[:16]
    if cache.is_file():
        try:
            stored = read_json(cache)
            if stored.get("key") == key:
                return stored["answers"]
        except (OSError, ValueError, KeyError):
            log.info("replay cache %s unreadable; answering again", cache)
    from ktools.evaluate.answering import generate_answers
    from ktools.models import load_causal_lm, load_tokenizer
    from ktools.train.threads import choose_torch_threads

    choose_torch_threads()
    tokenizer = load_tokenizer(model_name)
    tokenizer.padding_side = "left"
    model = load_causal_lm(model_name)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(prompts), desc="replay: base student answering general prompts")
    try:
        answers = generate_answers(model, tokenizer, [p["prompt"] for p in prompts],
                                   max_new_tokens=REPLAY_MAX_NEW_TOKENS, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    rows = [{**p, "answer": a} for p, a in zip(prompts, answers, strict=True) if a.strip()]
    write_json(cache, {"key": key, "model": model_name, "answers": rows})
    return rows


def replay_rows(answers: list[dict[str, str]], n: int) -> list[ViewRow]:
    """The first `n` answers as training rows (answer-only loss, as any chat answer).

    Each answer once: going round the answers again to fill a larger share (20 %: 194 rows
    from 63 answers, each ~3 times) kept *fewer* general answers than the 63 alone (15 of 21
    against 19, exp2 and exp3 of the README, same mix otherwise), so a share the prompts
    cannot fill stays unfilled and says so (a note in mix_stats.json)."""
    return [ViewRow("replay", a["prompt"], a["answer"], source="replay", chunk_id="", item_id=f"replay/{a['id']}",
                    unmask=False) for a in answers[:n]]


def replay_count(other_rows: int, share: float, available: int) -> int:
    """Rows making `share` of the final mix (capped by the prompts there are)."""
    if share <= 0 or other_rows <= 0:
        return 0
    wanted = round(other_rows * share / (1 - share))
    return max(0, min(available, wanted))

