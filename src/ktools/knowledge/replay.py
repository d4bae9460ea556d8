"""General replay: the base student's own answers to general prompts, mixed into training.

Fine-tuning on one document pulls a small model away from everything else it knew;
~10 % of general data in the mix limits that (EntiGraph, Yang et al. 2024; LAB). No
download is needed: the student answers `assets/replay_prompts.jsonl` (general
questions and instructions, none of them in the general eval set) before training,
greedily, and those answers are trained on as they are — the student is asked to keep
saying what it already says. Answers are cached beside the mix, keyed by the weights
and the prompts, so a re-run of step 04 does not generate them again.

When the hand-written prompts cannot fill the share, the student writes more itself
(Magpie, Xu et al. 2024): sampled from its chat template's user-turn prefix alone, an
aligned model writes the kind of request it was tuned on. Repeating the same answers to
fill a share kept fewer general answers (see `replay_rows`); prompts of the student's own
distribution are distinct and need no download. Near-copies of the general eval questions
are dropped, so the forgetting measure stays held out. Off by default: on the sample
document (README, run exp9) 131 such prompts at a 20 % share kept no more general answers
and cost exam key facts; the 135M student writes advice requests with long answers, not the
short factual questions it forgets. A larger student's own prompts may serve better.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ktools.io import iter_jsonl, read_json, write_json
from ktools.knowledge.views import ViewRow

log = logging.getLogger(__name__)

REPLAY_MAX_NEW_TOKENS = 96
# Self-written prompts: sampled at temperature 1 (the model's own distribution), short enough
# to be questions and requests rather than essays; a prompt cut off before its end of turn is
# dropped, as are those under 4 or over 60 words.
SELF_PROMPT_MAX_NEW_TOKENS = 64
SELF_PROMPT_WORDS = (4, 60)
SELF_PROMPT_BATCH = 16
_USER_MARK = "KTOOLS-USER-TURN-7f3a"


def default_prompts_path(repo_root: Path) -> Path:
    return repo_root / "assets" / "replay_prompts.jsonl"


def load_prompts(path: Path) -> list[dict[str, str]]:
    prompts = []
    for line, row in enumerate(iter_jsonl(path), start=1):
        if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise ValueError(f"{path}, record {line}: field 'prompt' must be a non-empty string")
        prompts.append({"id": str(row.get("id") or f"r{line:03d}"), "prompt": row["prompt"].strip()})
    return prompts


def user_turn_prefix(tokenizer: Any) -> str | None:
    """The chat-template text before the user's message (system turn included): what the
    student continues to write a request of its own. None without a usable chat template."""
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": _USER_MARK}], tokenize=False)
    except Exception:  # noqa: BLE001 - no template, or one that rejects a lone user turn
        return None
    return text[: text.index(_USER_MARK)] if _USER_MARK in text else None


def clean_self_prompt(text: str) -> str | None:
    """A sampled user turn as a prompt, or None when it is not one (too short or long, mostly
    symbols, or holding chat-template markup)."""
    text = text.strip().split("\n\n")[0].strip()
    words = text.split()
    if not SELF_PROMPT_WORDS[0] <= len(words) <= SELF_PROMPT_WORDS[1]:
        return None
    if "<|" in text or "|>" in text or sum(c.isalpha() for c in text) < 0.6 * len(text.replace(" ", "")):
        return None
    return text


def write_self_prompts(model: Any, tokenizer: Any, n: int, *, seed: int, exclude: Sequence[str] = (),
                       progress: Any = None) -> list[dict[str, str]]:
    """Up to `n` distinct prompts the student writes itself, none a near-copy of `exclude`.

    Sampling stops after 4n attempts, so a model that rarely ends its turn cleanly yields fewer
    (the caller says so)."""
    import torch

    from ktools.knowledge.exam import find_leaks, normalise

    prefix = user_turn_prefix(tokenizer)
    if prefix is None or n <= 0:
        return []
    prefix_ids = tokenizer(prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
    eos = tokenizer.eos_token_id
    stop = {eos} if isinstance(eos, int) else set(eos or ())
    blocked = [{"id": f"x{k}", "question": q} for k, q in enumerate(exclude)]
    seen = {normalise(q) for q in exclude}
    prompts: list[dict[str, str]] = []
    attempts = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        while len(prompts) < n and attempts < 4 * n:
            batch = min(SELF_PROMPT_BATCH, 4 * n - attempts)
            attempts += batch
            with torch.no_grad():
                out = model.generate(input_ids=prefix_ids.repeat(batch, 1).to(model.device),
                                     attention_mask=torch.ones((batch, prefix_ids.shape[1]), dtype=torch.long,
                                                               device=model.device),
                                     do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                                     max_new_tokens=SELF_PROMPT_MAX_NEW_TOKENS,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
            candidates = []
            for row in out[:, prefix_ids.shape[1]:].tolist():
                ends = [k for k, t in enumerate(row) if t in stop]
                if not ends:  # cut off before its end of turn
                    continue
                text = clean_self_prompt(tokenizer.decode(row[: ends[0]], skip_special_tokens=True))
                if text and normalise(text) not in seen:
                    seen.add(normalise(text))
                    candidates.append(text)
            leaking = {leak.row_index for leak in find_leaks(blocked, candidates)}
            for k, text in enumerate(candidates):
                if k not in leaking and len(prompts) < n:
                    prompts.append({"id": f"self{len(prompts) + 1:03d}", "prompt": text})
            if progress is not None:
                progress.update(batch)
    return prompts


def replay_answers(model_name: str, prompts: list[dict[str, str]], cache: Path, *, self_prompts: int = 0,
                   exclude: Sequence[str] = (), seed: int = 0, progress: bool = False) -> list[dict[str, str]]:
    """`[{id, prompt, answer}]`: the student's greedy answers to `prompts` and to `self_prompts`
    more it writes itself (ids `self001`...), from the cache when it matches."""
    from ktools.evaluate.runner import model_fingerprint

    key = hashlib.sha256(json.dumps({"model": model_fingerprint(model_name), "prompts": prompts,
                                     "max_new_tokens": REPLAY_MAX_NEW_TOKENS, "self_prompts": self_prompts,
                                     "self_prompt_tokens": SELF_PROMPT_MAX_NEW_TOKENS, "seed": seed,
                                     "exclude": sorted(exclude) if self_prompts else []},
                                    sort_keys=True).encode()).hexdigest()[:16]
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
    model.eval()
    bar = _bar(progress, 4 * self_prompts, "replay: base student writing general prompts")
    try:
        own = write_self_prompts(model, tokenizer, self_prompts, seed=seed,
                                 exclude=[*exclude, *(p["prompt"] for p in prompts)], progress=bar)
    finally:
        _close(bar)
    everything = [*prompts, *own]
    bar = _bar(progress, len(everything), "replay: base student answering general prompts")
    try:
        answers = generate_answers(model, tokenizer, [p["prompt"] for p in everything],
                                   max_new_tokens=REPLAY_MAX_NEW_TOKENS, progress=bar)
    finally:
        _close(bar)
    rows = [{**p, "answer": a} for p, a in zip(everything, answers, strict=True) if a.strip()]
    write_json(cache, {"key": key, "model": model_name, "answers": rows})
    return rows


def _bar(enabled: bool, total: int, desc: str) -> Any:
    if not enabled or total <= 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc)


def _close(bar: Any) -> None:
    if bar is not None:
        bar.close()


def general_questions(path: Path) -> list[str]:
    """The general eval set's questions (what self-written prompts must not copy); [] without it."""
    from ktools.evaluate.evalset import load_eval_set

    return [item.question for item in load_eval_set(path)] if path.is_file() else []


def replay_rows(answers: list[dict[str, str]], n: int) -> list[ViewRow]:
    """The first `n` answers as training rows (answer-only loss, as any chat answer).

    Each answer once: going round the answers again to fill a larger share (20 %: 194 rows
    from 63 answers, each ~3 times) kept *fewer* general answers than the 63 alone (15 of 21
    against 19, exp2 and exp3 of the README, same mix otherwise), so a share the prompts
    cannot fill stays unfilled and says so (a note in mix_stats.json)."""
    return [ViewRow("replay", a["prompt"], a["answer"], source="replay", chunk_id="", item_id=f"replay/{a['id']}",
                    unmask=False) for a in answers[:n]]


def spread(prompts: list[dict[str, str]], n: int) -> list[dict[str, str]]:
    """`n` prompts evenly spaced over the file (all of them when `n` covers it).

    The file is written in kinds (capitals, science, people, numbers, instructions...): the
    first `n` would replay some kinds and none of the others, while an even spread keeps
    every kind in the share."""
    if n >= len(prompts):
        return list(prompts)
    return [prompts[i * len(prompts) // n] for i in range(n)]


def replay_count(other_rows: int, share: float, available: int) -> int:
    """Rows making `share` of the final mix (capped by the prompts there are)."""
    if share <= 0 or other_rows <= 0:
        return 0
    wanted = round(other_rows * share / (1 - share))
    return max(0, min(available, wanted))

