"""The generation worker: one thread that decodes every waiting request in one batch.

Why a loop of our own instead of `model.generate`: on this CPU a decode step costs
nearly the same for 1 row as for 16, so throughput comes from keeping the batch full.
With `generate` a batch runs until its longest member ends and nobody may join;
here (continuous batching) finished rows leave after any step and waiting requests
are prefilled and join between steps. A request with `n` samples is prefilled once
and its cache copied n times. Every row carries its own temperature, top_p, seed,
stop strings and token budget, so requests with different parameters share a batch.

The model runs through `lean.LeanLlama` (fused, prepacked matmuls, packed prompt
prefill) where it has a Llama shape, else through `model(...)`; `lean=False` keeps the
transformers forward (`--forward generic`, the baseline of the bench). With
`draft_tokens` > 0 rows also verify prompt-lookup drafts each step (`speculative.py`).

`continuous=False` gives the classic "static batch" behaviour (admit only when the
batch is empty) with the same kernels; `bench/teacher_serving.py` compares both.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import DynamicCache

from ktools.llm.local.jsonschema_guide import JsonSchemaGuide
from ktools.llm.local.kv import GROW_STEP, BatchKV
from ktools.llm.local.lean import LeanLlama, decode_mask
from ktools.llm.local.requests import (  # noqa: F401 - re-exported for callers of this module
    Completion,
    EngineStopped,
    GenerationRequest,
    GenerationResult,
)
from ktools.llm.local.requests import (
    settle as _settle,
)
from ktools.llm.local.sampling import choose_tokens, probabilities
from ktools.llm.local.speculative import Drafter, verify

log = logging.getLogger(__name__)

GUIDED_DRAWS = 64  # response_format: draws (each removing a rejected token) before scanning by likelihood
GUIDED_SCAN = 4096  # ...and how many of the most likely tokens that scan tries


@dataclass
class _Row:
    request: GenerationRequest
    sample: int
    generator: torch.Generator
    position: int  # position id of the next token fed to the model
    tokens: list[int] = field(default_factory=list)
    result: Completion | None = None
    # Lean path: tokens chosen but not yet delivered (accepted drafts, then the next input token).
    pending: list[int] | None = None
    drafter: Drafter | None = None
    schema_done: bool = False  # response_format: the text is a complete JSON document
    schema_stuck: bool = False  # response_format: no likely token continues the document


class BatchEngine:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch: int = 32,
        continuous: bool = True,
        prefill_tokens: int = 4096,
        kv_budget_tokens: int = 96_000,
        governor: Any = None,
        lean: bool = True,
        draft_tokens: int = 0,
        gather_seconds: float = 0.0,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.continuous = continuous
        self.prefill_tokens = prefill_tokens
        self.kv_budget_tokens = kv_budget_tokens
        self.governor = governor  # threads.ThreadGovernor: torch's thread count follows the machine
        # The lean forward (lean.py) where the model has a Llama shape, else transformers' own.
        self.lean = LeanLlama(model) if lean and LeanLlama.supports(model) else None
        self.draft_tokens = draft_tokens if self.lean is not None else 0  # speculative.py; 0 = off
        self.gather_seconds = gather_seconds
        self.context_window = int(getattr(model.config, "max_position_embeddings", 2048))
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.stats = {"requests": 0, "sequences": 0, "prompt_tokens": 0, "completion_tokens": 0,
                      "steps": 0, "busy_seconds": 0.0, "errors": 0, "drafted": 0, "accepted": 0,
                      "prefills": 0, "prefill_seconds": 0.0}
        self._waiting: deque[GenerationRequest] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._admitting: list[GenerationRequest] = []  # taken from the queue, not yet rows
        self._thread: threading.Thread | None = None
        self._reset_batch()

    # --- public ---
    def start(self) -> BatchEngine:
        self._thread = threading.Thread(target=self._run, name="teacher-engine", daemon=True)
        self._thread.start()
        return self

    def submit(self, request: GenerationRequest) -> Future:
        with self._cond:
            if self._stopping:
                raise EngineStopped("the teacher is shutting down")
            self._waiting.append(request)
            self._cond.notify()
        return request.future

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def active_rows(self) -> int:
        return len(self._rows)

    # --- the worker thread ---
    def _settle(self, rows: list, keep: list[int]) -> bool:
        """After a step: hand finished rows' results to their requests, resolve the requests
        that are done, and shrink the batch to the rows in `keep` (their cache, mask and
        logits). False when no row is left (the batch is reset)."""
        for row in rows:
            if row.result is not None:
                row.request.results[row.sample] = row.result
        for request in {id(r.request): r.request for r in rows if r.result is not None or r.request.cancelled}.values():
            self._maybe_resolve(request)
        if not keep:
            self._reset_batch()
            return False
        if len(keep) < len(rows):
            index = torch.tensor(keep)
            mask = self._mask.index_select(0, index)
            used = mask.sum(0).nonzero()
            drop_left = int(used[0]) if used.numel() else 0
            self._kv.select(index, drop_left)
            self._mask = mask[:, drop_left:]
            if self._logits is not None and self._logits.shape[0] == len(rows):
                self._logits = self._logits.index_select(0, index)
            self._rows = [rows[i] for i in keep]
        return True

    def _reset_batch(self) -> None:
        self._rows: list[_Row] = []
        self._kv: BatchKV | None = None
        self._mask: torch.Tensor | None = None  # [rows, length]: 1 = real token
        self._logits: torch.Tensor | None = None  # [rows, vocab]: next-token logits

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not self._waiting and not self._rows and not self._stopping:
                        self._cond.wait()
                    if self._stopping:
                        break
                    if not self._rows and self.gather_seconds > 0:
                        # An idle engine that gets a request waits a moment for the ones sent with
                        # it, so a burst is prefilled together and its rows decode in step (else
                        # the first prefill runs alone and the burst ends ~10 steps later).
                        # Each arrival extends the wait by gather_seconds, up to 5x that in all.
                        now = time.monotonic()
                        quiet, cap = now + self.gather_seconds, now + 5 * self.gather_seconds
                        seen = len(self._waiting)
                        while not self._stopping and len(self._waiting) < self.max_batch:
                            left = min(quiet, cap) - time.monotonic()
                            if left <= 0:
                                break
                            self._cond.wait(left)
                            if len(self._waiting) != seen:
                                seen, quiet = len(self._waiting), time.monotonic() + self.gather_seconds
                started = time.perf_counter()
                threads = self.governor.poll() if self.governor is not None else None
                if threads is not None:
                    torch.set_num_threads(threads)
                try:
                    self._admit()
                    if self._rows:
                        self._step()
                except Exception as exc:  # keep serving: fail only the requests in this batch
                    log.exception("generation step failed; failing %d active rows", len(self._rows))
                    self.stats["errors"] += 1
                    for request in [*self._admitting, *(row.request for row in self._rows)]:
                        _settle(request.future, exception=exc)
                    self._admitting = []
                    self._reset_batch()
                self.stats["busy_seconds"] += time.perf_counter() - started
        for request in [*self._waiting, *(r.request for r in self._rows)]:
            _settle(request.future, exception=EngineStopped("the teacher shut down"))

    def _take_admissible(self) -> list[GenerationRequest]:
        taken: list[GenerationRequest] = []
        with self._cond:
            while self._waiting and self._waiting[0].cancelled:
                self._waiting.popleft()
            if not self.continuous and self._rows:
                return taken
            rows = len(self._rows)
            length = self._kv.length if self._kv is not None else 0
            while self._waiting:
                request = self._waiting[0]
                if request.cancelled:
                    self._waiting.popleft()
                    continue
                new_rows = rows + request.n
                new_length = max(length, len(request.prompt_ids)) + 128
                fits = new_rows <= self.max_batch and new_rows * new_length <= self.kv_budget_tokens
                if not fits and (rows or taken):
                    break  # the first request is always admitted into an empty batch
                taken.append(self._waiting.popleft())
                rows, length = new_rows, max(length, len(request.prompt_ids))
        return taken

    def _admit(self) -> None:
        taken = self._take_admissible()
        self._admitting = taken
        group: list[GenerationRequest] = []
        for request in taken:
            if self.lean is not None:  # packed prompts: the cost is their tokens, no padding
                size = sum(len(r.prompt_ids) for r in group) + len(request.prompt_ids)
            else:
                size = max([len(r.prompt_ids) for r in group] + [len(request.prompt_ids)]) * (len(group) + 1)
            if group and size > self.prefill_tokens:
                self._prefill(group)
                group = []
            group.append(request)
        if group:
            self._prefill(group)
        self._admitting = []

    def _prefill(self, requests: list[GenerationRequest]) -> None:
        started = time.perf_counter()
        try:
            self._prefill_group(requests)
        finally:
            self.stats["prefills"] += 1
            self.stats["prefill_seconds"] += time.perf_counter() - started

    def _prefill_group(self, requests: list[GenerationRequest]) -> None:
        longest = max(len(r.prompt_ids) for r in requests)
        ids = torch.full((len(requests), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), longest), dtype=torch.long)
        for i, request in enumerate(requests):
            ids[i, longest - len(request.prompt_ids):] = torch.tensor(request.prompt_ids)
            mask[i, longest - len(request.prompt_ids):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        counts = [r.n for r in requests]
        if self.lean is not None:
            kv, logits = self.lean.prefill([r.prompt_ids for r in requests], longest + GROW_STEP)
        else:
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                             past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
            kv = BatchKV.from_cache(out.past_key_values, mask)
            logits = out.logits[:, -1, :].float()
        kv.repeat_rows(counts)
        repeat = torch.tensor(counts)
        logits = logits.repeat_interleave(repeat, dim=0)
        mask = mask.repeat_interleave(repeat, dim=0)
        for request in requests:
            self.stats["requests"] += 1
            self.stats["sequences"] += request.n
            self.stats["prompt_tokens"] += len(request.prompt_ids)
            for sample in range(request.n):
                row = _Row(request, sample, _generator(request.seed, sample), len(request.prompt_ids))
                if self.draft_tokens:
                    row.drafter = Drafter(request.prompt_ids)
                self._rows.append(row)
        if self._kv is None:
            self._kv, self._mask, self._logits = kv, mask, logits
            return
        assert self._mask is not None and self._logits is not None
        width = max(self._kv.length, kv.length)
        self._mask = torch.cat([_pad_left(self._mask, width), _pad_left(mask, width)])
        self._kv.merge(kv)
        self._logits = torch.cat([self._logits, logits])

    def _step(self) -> None:
        if self.lean is not None:
            self._step_lean()
        else:
            self._step_generic()

    def _step_lean(self) -> None:
        """Deliver each row's chosen tokens, then run one forward over its next input and drafts."""
        assert self._kv is not None and self._mask is not None and self._logits is not None
        rows = self._rows
        fresh = [i for i, r in enumerate(rows) if r.pending is None]  # just prefilled: choose from logits
        if fresh:
            index = torch.tensor(fresh)
            chosen = choose_tokens(self._logits.index_select(0, index),
                                   torch.tensor([rows[i].request.temperature for i in fresh], dtype=torch.float32),
                                   torch.tensor([rows[i].request.top_p for i in fresh], dtype=torch.float32),
                                   [rows[i].generator for i in fresh]).tolist()
            for i, token in zip(fresh, chosen, strict=True):
                rows[i].pending = [self._guided(rows[i], self._logits[i], token)]
        self.stats["steps"] += 1
        keep: list[int] = []
        for i, row in enumerate(rows):
            if row.request.cancelled:
                continue
            assert row.pending is not None
            for token in row.pending:
                if self._advance(row, token) is not None:
                    break
                if row.drafter is not None:
                    row.drafter.append(token)
            if row.result is None:
                keep.append(i)
        if not self._settle(rows, keep):
            return
        rows = self._rows
        # A row with a JSON schema picks each token with the schema (`_guided`), so a step with
        # one runs without drafts (verification would draw its token unguided).
        guided = any(r.request.grammar is not None for r in rows)
        drafts = [[] if guided else self._draft(r) for r in rows]
        width = 1 + max(len(d) for d in drafts)
        inputs = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        valid = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, (row, draft) in enumerate(zip(rows, drafts, strict=True)):
            assert row.pending is not None
            inputs[i, : len(draft) + 1] = torch.tensor([row.pending[-1], *draft])
            valid[i, : len(draft) + 1] = True
        positions = torch.tensor([r.position for r in rows])[:, None] + torch.arange(width)
        mask = decode_mask(self._mask, valid)
        logits = self.lean.forward(inputs, positions, self._kv, mask, keep=valid)  # type: ignore[union-attr]
        if width == 1:
            self._logits = logits
            for row in rows:
                row.pending = None
                row.position += 1
            self._mask = torch.cat([self._mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
            return
        outcome = verify(logits, drafts, [r.request.temperature for r in rows], [r.request.top_p for r in rows],
                         [r.generator for r in rows])
        filled = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, draft, (accepted, next_token)) in enumerate(zip(rows, drafts, outcome, strict=True)):
            self.stats["drafted"] += len(draft)
            self.stats["accepted"] += len(accepted)
            filled[i, : len(accepted) + 1] = 1  # the input token and the accepted drafts stay in the cache
            row.position += len(accepted) + 1
            row.pending = [*accepted, next_token]
        self._mask = torch.cat([self._mask, filled], dim=1)

    def _guided(self, row: _Row, logits: torch.Tensor, token: int) -> int:
        """The token to take for a row with a JSON schema (response_format); others keep `token`.

        The drawn token stands if the text stays a valid prefix; otherwise it is removed
        and another drawn from the rest (greedy: the most likely valid token)."""
        guide = row.request.grammar
        if not isinstance(guide, JsonSchemaGuide):
            return token
        before = self._decode(row.tokens)

        def state(candidate: int) -> str:
            if candidate in self.eos_ids:
                return "invalid"  # the row ends by itself once the document is complete
            text = self._decode([*row.tokens, candidate])
            return "invalid" if text == before else guide.state(text)

        found = state(token)
        if found == "invalid" and row.request.temperature > 0:
            probs = probabilities(logits[None].float(), torch.tensor([row.request.temperature]),
                                  torch.tensor([row.request.top_p]))[0].clone()
            for _ in range(GUIDED_DRAWS):
                probs[token] = 0.0
                cumulative = probs.cumsum(0)
                if float(cumulative[-1]) <= 0:
                    break
                draw = torch.rand((), generator=row.generator) * cumulative[-1]
                token = int(torch.searchsorted(cumulative, draw[None]).clamp(max=len(probs) - 1))
                found = state(token)
                if found != "invalid":
                    break
        if found == "invalid":  # greedy, or sampling found nothing: the most likely valid token
            for candidate in logits.topk(min(GUIDED_SCAN, logits.shape[-1])).indices.tolist():
                found = state(candidate)
                if found != "invalid":
                    token = candidate
                    break
        # Nothing likely continues the document: the row ends here ("length", its text a valid
        # start) rather than failing the whole batch.
        row.schema_stuck = found == "invalid"
        row.schema_done = found == "complete"
        return token

    def _draft(self, row: _Row) -> list[int]:
        if row.drafter is None or not self.draft_tokens:
            return []
        assert row.pending is not None
        # Room left: the pending token is delivered first; a draft past the budget would be wasted.
        room = min(self.draft_tokens, row.request.max_tokens - len(row.tokens) - 1,
                   self.context_window - row.position - 2)
        return row.drafter.propose(room)

    def _step_generic(self) -> None:
        assert self._kv is not None and self._mask is not None and self._logits is not None
        rows = self._rows
        temperatures = torch.tensor([r.request.temperature for r in rows], dtype=torch.float32)
        top_ps = torch.tensor([r.request.top_p for r in rows], dtype=torch.float32)
        tokens = choose_tokens(self._logits, temperatures, top_ps, [r.generator for r in rows]).tolist()
        tokens = [self._guided(row, self._logits[i], token) for i, (row, token) in enumerate(zip(rows, tokens,
                                                                                                strict=True))]
        self.stats["steps"] += 1
        keep: list[int] = []
        for i, (row, token) in enumerate(zip(rows, tokens, strict=True)):
            if row.request.cancelled:
                continue
            if self._advance(row, token) is None:
                keep.append(i)
        if not self._settle(rows, keep):
            return
        rows = self._rows
        input_ids = torch.tensor([[r.tokens[-1]] for r in rows], dtype=torch.long)
        positions = torch.tensor([[r.position] for r in rows], dtype=torch.long)
        self._mask = torch.cat([self._mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
        if self.lean is not None:
            self._logits = self.lean.forward(input_ids, positions, self._kv, self._mask.bool()[:, None, None, :])
        else:
            out = self.model(input_ids=input_ids, attention_mask=self._mask, position_ids=positions,
                             past_key_values=self._kv.as_cache(), use_cache=True, logits_to_keep=1)
            self._kv.length += 1
            self._logits = out.logits[:, -1, :].float()
        for r in rows:
            r.position += 1

    def _advance(self, row: _Row, token: int) -> Completion | None:
        """Add a token to a row; returns its completion when the row is finished."""
        request = row.request
        if row.schema_stuck:
            row.result = Completion(self._decode(row.tokens), "length", len(row.tokens))
            return row.result
        self.stats["completion_tokens"] += 1
        if token in self.eos_ids:
            row.result = Completion(self._decode(row.tokens), "stop", len(row.tokens) + 1)
            return row.result
        row.tokens.append(token)
        if row.schema_done:
            row.result = Completion(self._decode(row.tokens), "stop", len(row.tokens))
            return row.result
        if request.stop:
            text = self._decode(row.tokens)
            cut = min((i for i in (text.find(s) for s in request.stop) if i >= 0), default=-1)
            if cut >= 0:
                row.result = Completion(text[:cut], "stop", len(row.tokens))
                return row.result
        if len(row.tokens) >= request.max_tokens or row.position + 1 >= self.context_window:
            row.result = Completion(self._decode(row.tokens), "length", len(row.tokens))
            return row.result
        return None

    def _maybe_resolve(self, request: GenerationRequest) -> None:
        if request.future.done():
            return
        if request.cancelled:
            request.future.cancel()
            return
        if len(request.results) == request.n:
            completions = [request.results[i] for i in range(request.n)]
            _settle(request.future, result=GenerationResult(completions, len(request.prompt_ids)))

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)


def _pad_left(mask: torch.Tensor, width: int) -> torch.Tensor:
    if mask.shape[1] == width:
        return mask
    return torch.cat([mask.new_zeros((mask.shape[0], width - mask.shape[1])), mask], dim=1)


def _generator(seed: int | None, sample: int) -> torch.Generator:
    generator = torch.Generator()
    base = seed if seed is not None else secrets.randbits(62)
    # Distinct, reproducible streams for the n samples of one seeded request.
    generator.manual_seed((base * 1_000_003 + sample) % (2**63))
    return generator


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    # A chat model that emits the document-end token has nothing more to say.
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if isinstance(end_of_text, int) and end_of_text != tokenizer.unk_token_id:
        ids.add(end_of_text)
    return ids
