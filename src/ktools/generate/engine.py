"""One engine for all four generators: pipelined, resumable, deterministic.

Units of work are (generator, chunk) pairs. Each unit walks its flow (`flows.py`)
item by item: as soon as one item's answers are back, its children go on to the next
step - there is no barrier across items, chunks or generators. Every teacher call
goes through `_complete`, which

1. looks the request up in the response store (replay, no request sent);
2. otherwise waits for a slot of the ONE global concurrency gate (a priority gate:
   earlier chunks first, so chunks finish in seed order and progress is honest),
   asks the teacher only for the samples not stored yet, and stores them (committed)
   before returning them.

Outputs are not appended as units finish: at the end of a run (also after Ctrl+C or
a token budget stop) they are rebuilt from the units' results in seed order and
written atomically, so an interrupted + resumed run writes byte-identical files to an
uninterrupted one (results are pure functions of the stored responses).

A request that fails after the client's retries fails its unit only; the unit's
status (done / rejected_all / failed + reason) is recorded in the store.

Teacher replies are untrusted: a sample longer than `reply_char_cap(max_tokens)` (far
more than max_tokens can produce, so the server ignored it) is stored as an empty
sample marked REPLY_TOO_LARGE and rejected, and a rejected row keeps only a preview of
the reply (the full text is in the response store): a reply is never stored twice.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ktools.generate.flows import FLOWS, JUDGE_PROMPTS, Flow, Step
from ktools.generate.judges import JudgeSpec, judge_fields, judge_row, judge_verdicts
from ktools.generate.options import JUDGE_STAGE, JUDGES, GenerationOptions
from ktools.generate.parsing import PARSERS, content_words, is_grounded, parse_judge, strip_reasoning
from ktools.generate.report import UnitResult
from ktools.generate.status import DONE, FAILED, PENDING, REJECTED_ALL, fingerprint
from ktools.generate.store import (
    ResponseStore,
    StoredSample,
    canonical_json,
    params_json,
    request_hash_from_json,
)
from ktools.generate.structured import SCHEMAS, judge_schema, parse_structured, response_format
from ktools.generate.structured import enabled as structured_enabled
from ktools.generate.thinking import control_for, thinking_extra
from ktools.llm.types import Choice, SamplingParams, TeacherError
from ktools.prompts import Prompt, load_prompt, load_prompt_file

log = logging.getLogger(__name__)

MAX_PARTIAL_REFILLS = 3
REPLY_TOO_LARGE = "ktools_reply_too_large"  # finish_reason of a sample dropped for its size
RAW_PREVIEW_CHARS = 2000  # of a rejected reply kept in rejected.jsonl


def reply_char_cap(max_tokens: int) -> int:
    """Characters a sample may have: a token is rarely over 16 characters (64 KB at least)."""
    return max(65536, 16 * max_tokens)


def _within_cap(choice: Choice, cap: int) -> Choice:
    size = len(choice.text) + len(choice.reasoning or "")
    if size <= cap:
        return choice
    log.warning("a teacher reply of %d characters is over the %d-character cap (max_tokens ignored?); "
                "rejected and stored empty", size, cap)
    return Choice(text="", finish_reason=REPLY_TOO_LARGE)


class BudgetReached(Exception):
    """The token budget is spent: no new requests; the unit stays pending."""


class PriorityGate:
    """A semaphore whose waiters are served lowest priority value first (FIFO among equals)."""

    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self._in_use = 0
        self._waiters: list[tuple[Any, int, asyncio.Future]] = []
        self._counter = itertools.count()

    async def acquire(self, priority: Any) -> None:
        if self._in_use < self.limit and not self._waiters:
            self._in_use += 1
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._counter), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as we got cancelled
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # hand the slot over; _in_use stays the same
                return
        self._in_use -= 1


@dataclass
class RunCounters:
    requests_sent: int = 0     # HTTP requests the client reported
    calls_sent: int = 0        # prompts that needed the teacher
    calls_cached: int = 0      # prompts answered entirely from the store
    failed: int = 0            # prompts that failed after retries
    prompt_tokens: int = 0     # of requests sent in this run
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def cost(self, options: GenerationOptions) -> float:
        """Money spent on the requests sent in this run (replays are free)."""
        return options.cost(self.prompt_tokens, self.completion_tokens)

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.requests_sent, "calls_sent": self.calls_sent, "cached": self.calls_cached,
                "failed": self.failed, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


@dataclass
class Unit:
    order: int
    generator: str
    seed: dict[str, Any]
    result: UnitResult
    calls: int = 0
    tokens: int = 0  # usage of every call of this unit, sent or replayed (for dry-run estimates)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # An earlier run finished this unit with the same fingerprint: every answer it needs is
    # stored, so its items are replayed one after another (no task per item, same results).
    replay: bool = False

    def add_tokens(self, prompt: int, completion: int) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.tokens += prompt + completion


_NON_WORDS = re.compile(r"\W+")


def _normal(text: str) -> str:
    return _NON_WORDS.sub(" ", text).strip().lower()


def _item_vars(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k[:1] != "_"}


class Engine:
    def __init__(self, client: Any, store: ResponseStore, options: GenerationOptions, *, model: str,
                 embedded_teacher: bool, concurrency: int):
        self.client = client
        self.store = store
        self.options = options
        self.model = model
        self.counters = RunCounters()
        self.gate = PriorityGate(concurrency)
        self.stopping = False  # set by the token budget or the cost cap: no new requests
        self.stop_status = "budget_reached"  # the report's status after such a stop
        self._reserved_cost = 0.0  # worst-case cost of the requests in flight (MAX_COST)
        # A provider ignoring n gets n requests, each with the prompt: the worst case counts them all.
        self.client_supports_n = bool(getattr(client, "supports_n", True))
        self._inflight: dict[str, asyncio.Future] = {}
        self._params_cache: dict[int, tuple[SamplingParams, str]] = {}
        self.prompts = self._load_prompts()
        self.judges = [
            JudgeSpec(name, JUDGE_PROMPTS[name], options.threshold(name),
                      int(self.prompts[JUDGE_PROMPTS[name]].meta.get("scale", 1)))
            for name in JUDGES if options.judge_enabled(name, embedded_teacher)
        ]
        self.embedded_teacher = embedded_teacher
        self.thinking_control = control_for(getattr(client, "provider", None), options.thinking_control)
        self.params = self._sampling_params(embedded_teacher)
        # Stages with a cap or a thinking setting of their own (options.stage_max_tokens /
        # stage_thinking, and for the embedded teacher embedded_stage_max_tokens) get their own
        # params; the others share self.params.
        caps = {step.name: options.max_tokens_for(embedded_teacher, step.name)
                for g in options.generators for step in FLOWS[g].steps}
        self.stage_params = {name: self._with_thinking(replace(self.params, max_tokens=cap), name)
                             for name, cap in caps.items()
                             if cap != self.params.max_tokens or name in options.stage_thinking}
        self.few_shot = (not embedded_teacher) if options.few_shot is None else bool(options.few_shot)
        self.judge_params = self._with_thinking(
            SamplingParams(temperature=0.0, max_tokens=options.judge_max_tokens_for(embedded_teacher),
                           top_p=None, stop=None, seed=options.seed), JUDGE_STAGE)
        # Structured output (ktools.generate.structured): a JSON schema per list-shaped stage and
        # per judge (its scale), where the provider honours one; the usual parsers stay the fallback.
        self.structured = structured_enabled(options.structured_output, getattr(client, "provider", None))
        self.judge_params_by = {spec.name: self._with_schema(self.judge_params, *judge_schema(spec.scale))
                                if self.structured else self.judge_params for spec in self.judges}
        if self.structured:
            for g in options.generators:
                for step in FLOWS[g].steps:
                    if step.parser in SCHEMAS:
                        base = self.stage_params.get(step.name, self.params)
                        self.stage_params[step.name] = self._with_schema(base, *SCHEMAS[step.parser])
        self._bigger_cache: dict[int, SamplingParams | None] = {}
        self._keep_alive: list[SamplingParams] = []
        self._template_thinks = False  # see _split
        self.fingerprints = {g: self._fingerprint(FLOWS[g]) for g in options.generators}

    # ------------------------------------------------------------ setup
    def _load_prompts(self) -> dict[str, Prompt]:
        names = {s.prompt for g in self.options.generators for s in FLOWS[g].steps} | set(JUDGE_PROMPTS.values())
        prompts = {name: load_prompt(name, self.options.prompt_overrides_dir) for name in names}
        for name, path in self.options.prompt_overrides.items():
            if name not in prompts:
                raise ValueError(f"prompt_overrides: no prompt step named {name!r}; "
                                 f"known: {', '.join(sorted(prompts))}")
            prompts[name] = load_prompt_file(path, name)
        return prompts

    def _sampling_params(self, embedded_teacher: bool) -> SamplingParams:
        o = self.options
        extra = dict(o.extra_sampling)
        if o.enable_reasoning:
            extra.setdefault("chat_template_kwargs", {"enable_thinking": True})
        return SamplingParams(temperature=o.temperature, max_tokens=o.max_tokens_for(embedded_teacher),
                              top_p=o.top_p, stop=o.stop, seed=o.seed, extra=tuple(sorted(extra.items())))

    def _split(self, choice: Choice) -> tuple[str, str | None]:
        """(answer, reasoning) of a completion. A teacher whose chat template opens `<think>` in the
        prompt (DeepSeek-R1 distills, QwQ) sends only the closing tag; once one reply showed that,
        a reply cut off before any closing tag is all reasoning, not an answer to parse."""
        text, think = strip_reasoning(choice.text)
        if think is not None:
            if not self._template_thinks and "</think" in choice.text and "<think" not in choice.text:
                self._template_thinks = True
        elif self._template_thinks and choice.truncated and text.strip():
            return "", text
        return text, choice.reasoning or think

    @staticmethod
    def _with_schema(params: SamplingParams, name: str, schema: dict[str, Any]) -> SamplingParams:
        return replace(params, extra=tuple(sorted({**dict(params.extra), **response_format(name, schema)}.items())))

    def _with_thinking(self, params: SamplingParams, stage: str) -> SamplingParams:
        extra = thinking_extra(self.options.stage_thinking.get(stage), self.thinking_control)
        if not extra:
            return params
        return replace(params, extra=tuple(sorted({**dict(params.extra), **extra}.items())))

    def _bigger(self, params: SamplingParams) -> SamplingParams | None:
        """`params` with the cap raised for a truncation retry, or None (no retry: embedded
        teacher, factor 1, or the cap is already at the retry maximum)."""
        key = id(params)
        if key not in self._bigger_cache:
            o = self.options
            cap = min(params.max_tokens * o.truncation_retry_factor, o.truncation_retry_max_tokens)
            bigger = None
            if not self.embedded_teacher and cap > params.max_tokens:
                bigger = replace(params, max_tokens=cap)
                self._keep_alive.append(params)  # id() must stay unique while the cache holds it
            self._bigger_cache[key] = bigger
        return self._bigger_cache[key]

    def _fingerprint(self, flow: Flow) -> str:
        o = self.options
        # Only stages with their own cap are named, so adding the option left the
        # fingerprints (and the finished-unit replay) of uncapped flows as they were.
        caps = {s.name: self.stage_params[s.name].max_tokens for s in flow.steps if s.name in self.stage_params}
        return fingerprint({
            "model": self.model, "flow": flow.name,
            "prompts": {s.prompt: self.prompts[s.prompt].fingerprint for s in flow.steps},
            "judges": [(j.name, j.threshold, self.prompts[j.prompt].fingerprint) for j in self.judges],
            "params": self.params.as_dict(), **({"stage_max_tokens": caps} if caps else {}),
            "system": o.system_message, "extra": o.extra_instructions,
            "counts": [o.number_of_summaries, o.questions_per_chunk, o.facts_per_chunk, o.qa_per_fact],
            "few_shot": self.few_shot,
            # Named only when set, so runs without them keep their fingerprints (and replay).
            **({"stage_thinking": dict(o.stage_thinking), "thinking_control": self.thinking_control}
               if o.stage_thinking else {}),
            **({"judge_max_tokens": self.judge_params.max_tokens}
               if self.judges and self.judge_params.max_tokens != 256 else {}),
            **({"structured_output": True} if self.structured else {}),
        })

    # ------------------------------------------------------------ teacher calls
    def _key(self, messages: list[dict[str, str]], params: SamplingParams) -> tuple[str, str]:
        """(canonical messages JSON, request hash) of a prompt: its key in the response store."""
        messages_json = canonical_json(messages)
        return messages_json, request_hash_from_json(self.model, messages_json, self._params_json(params))

    def _replay(self, req_hash: str, n: int) -> list[StoredSample] | None:
        """The stored samples of this request if all n are stored, else None (nothing counted)."""
        stored = self.store.lookup(req_hash)
        if any(i not in stored for i in range(n)):
            return None
        return [stored[i] for i in range(n)]

    async def _complete(self, unit: Unit, messages: list[dict[str, str]], params: SamplingParams,
                        n: int, key: tuple[str, str] | None = None) -> list[Choice]:
        """n samples for this prompt: stored ones replayed, missing ones asked for and stored first.

        Identical prompts in flight at the same time are sent once (single flight): the
        followers wait for the leader and then read the store, so every use of a key sees
        the same stored answer - in this run and in any resumed one. `key` is `_key(messages,
        params)` when the caller has it already.
        """
        messages_json, req_hash = key or self._key(messages, params)
        unit.calls += 1
        sent = False
        while True:
            stored = self.store.lookup(req_hash)
            missing = [i for i in range(n) if i not in stored]
            if not missing:
                if not sent:
                    self.counters.calls_cached += 1
                    unit.add_tokens(sum(stored[i].prompt_tokens for i in range(n)),
                                    sum(stored[i].completion_tokens for i in range(n)))
                return [stored[i].as_choice() for i in range(n)]
            leader = self._inflight.get(req_hash)
            if leader is not None:
                await asyncio.shield(leader)
                continue
            if not sent:
                unit.add_tokens(sum(s.prompt_tokens for i, s in stored.items() if i < n),
                                sum(s.completion_tokens for i, s in stored.items() if i < n))
                self.counters.calls_sent += 1
            sent = True
            done = asyncio.get_running_loop().create_future()
            self._inflight[req_hash] = done
            try:
                await self._fill(unit, req_hash, messages, messages_json, params, n)
            finally:
                del self._inflight[req_hash]
                done.set_result(None)

    def _params_json(self, params: SamplingParams) -> str:
        # SamplingParams.as_dict (dataclasses.asdict) is slow; there are only a few params objects per run.
        key = id(params)
        cached = self._params_cache.get(key)
        if cached is None or cached[0] is not params:
            cached = self._params_cache[key] = (params, params_json(params))
        return cached[1]

    def _reserve_cost(self, messages_json: str, params: SamplingParams, n: int) -> float:
        """With MAX_COST: the most this request may cost (prompt at ~4 characters a token, every sample
        at its cap), held against the limit while it is in flight, so requests running side by side
        cannot together pass it. A request that might not fit in what is left is not sent."""
        o = self.options
        if not o.max_cost:
            return 0.0
        worst = o.cost(len(messages_json) // 4 * (1 if self.client_supports_n else n), params.max_tokens * n)
        if self.counters.cost(o) + self._reserved_cost + worst > o.max_cost:
            self.stopping, self.stop_status = True, "cost_limit_reached"
            raise BudgetReached
        self._reserved_cost += worst
        return worst

    def _check_budget(self) -> None:
        o = self.options
        if self.stopping:
            raise BudgetReached
        if o.token_budget and self.counters.tokens >= o.token_budget:
            self.stopping, self.stop_status = True, "budget_reached"
            raise BudgetReached
        if o.max_cost and self.counters.cost(o) >= o.max_cost:
            self.stopping, self.stop_status = True, "cost_limit_reached"
            raise BudgetReached

    async def _fill(self, unit: Unit, req_hash: str, messages: list[dict[str, str]], messages_json: str,
                    params: SamplingParams, n: int) -> None:
        """Ask the teacher for the samples of this request not stored yet, and store them."""
        for _ in range(MAX_PARTIAL_REFILLS):
            stored = self.store.lookup(req_hash)
            missing = [i for i in range(n) if i not in stored]
            if not missing:
                return
            self._check_budget()
            await self.gate.acquire(unit.order)
            reserved = 0.0
            try:
                self._check_budget()  # others may have spent it while we waited for a slot
                reserved = self._reserve_cost(messages_json, params, len(missing))
                result = await self.client.achat(messages, params, n=len(missing))
            except TeacherError:
                self.counters.failed += 1
                raise
            finally:
                self._reserved_cost -= reserved
                self.gate.release()
            got = result.choices[: len(missing)]
            usage = result.usage
            self.counters.requests_sent += getattr(result, "requests_sent", 1)
            self.counters.prompt_tokens += usage.prompt_tokens
            self.counters.completion_tokens += usage.completion_tokens
            unit.add_tokens(usage.prompt_tokens, usage.completion_tokens)
            cap = reply_char_cap(params.max_tokens)
            got = [_within_cap(choice, cap) for choice in got]
            if got:
                await self.store.put(req_hash, self.model, messages_json, self._params_json(params),
                                     {missing[j]: c for j, c in enumerate(got)},
                                     usage.prompt_tokens, usage.completion_tokens)
            if len(got) == len(missing):
                return
        self.counters.failed += 1
        raise TeacherError(f"the teacher returned fewer samples than asked for {n} after "
                           f"{MAX_PARTIAL_REFILLS} attempts")

    # ------------------------------------------------------------ flows
    def _option(self, value: int | str | None) -> int | None:
        if value is None or isinstance(value, int):
            return value
        return int(getattr(self.options, value))

    def _render(self, prompt_name: str, variables: dict[str, Any], judge: bool = False) -> list[dict[str, str]]:
        system = None if judge else self.options.system_message
        return self.prompts[prompt_name].render(system_override=system, **variables)

    async def run_unit(self, unit: Unit) -> UnitResult:
        res = unit.result
        flow = FLOWS[unit.generator]
        root = dict(unit.seed)
        root["raw_document"] = unit.seed["document"]
        root["extra_instructions"] = self.options.extra_instructions
        root["use_examples"] = self.few_shot
        root["_item_id"] = f"{unit.seed['chunk_id']}/{flow.default_item_id}"
        root["_truncated"] = False
        root["_reasoning"] = None
        try:
            leaves = await self._expand(unit, flow, 0, root)
        except BudgetReached:
            res.status = PENDING
            return res
        except asyncio.CancelledError:
            res.status = PENDING
            raise
        except TeacherError as exc:
            res.status, res.error = FAILED, str(exc) or type(exc).__name__
            return res
        except Exception as exc:  # noqa: BLE001 - a bug or an unexpected client error fails this unit only
            log.exception("%s / %s failed", unit.generator, unit.seed["chunk_id"])
            res.status, res.error = FAILED, f"{type(exc).__name__}: {exc}"
            return res
        for kept, row in leaves:
            (res.rows if kept else res.rejected).append(row)
        res.status = DONE if res.rows else REJECTED_ALL
        return res

    async def _expand(self, unit: Unit, flow: Flow, index: int, item: dict[str, Any]) -> list[tuple[bool, dict]]:
        """Run steps[index:] for one item; returns (kept?, row) in deterministic order."""
        if index == len(flow.steps):
            return [await self._finish(unit, flow, item)]
        step = flow.steps[index]
        children = await self._run_step(unit, step, item)
        if len(children) == 1:  # no task needed
            return await self._expand(unit, flow, index + 1, children[0])
        if unit.replay:  # answered before: each child completes without waiting; order as gather's
            out: list[tuple[bool, dict]] = []
            for child in children:
                out.extend(await self._expand(unit, flow, index + 1, child))
            return out
        results = await asyncio.gather(*(self._expand(unit, flow, index + 1, c) for c in children),
                                       return_exceptions=True)
        out = []
        for r in results:
            if isinstance(r, BaseException):
                raise r
            out.extend(r)
        return out

    async def _run_step(self, unit: Unit, step: Step, item: dict[str, Any]) -> list[dict[str, Any]]:
        res = unit.result
        counts = res.stage(step.name)
        variables = _item_vars(item)
        for var, option in step.variables.items():
            variables[var] = getattr(self.options, option)
        messages = self._render(step.prompt, variables)
        n = self._option(step.n) or 1
        params = self.stage_params.get(step.name, self.params)
        choices = await self._complete(unit, messages, params, n)
        counts.calls += 1
        counts.samples += len(choices)
        parser = PARSERS[step.parser]
        parsed_all = []
        structured = self.structured and step.parser in SCHEMAS

        def parse(text: str, truncated: bool) -> list[Any]:
            if structured:
                items = parse_structured(step.parser, text)
                if items is not None:
                    counts.structured += 1
                    return items
            return parser(text, truncated=truncated)

        for choice in choices:
            text, reasoning = self._split(choice)
            parsed_all.append((parse(text, choice.truncated), reasoning))
        # Cut off with nothing usable (a thinking teacher spends its cap on reasoning): ask those
        # samples once more with a larger cap - a request of its own, stored and resumable like any.
        cut = [i for i, choice in enumerate(choices) if choice.truncated and not parsed_all[i][0]]
        bigger = self._bigger(params) if cut else None
        if bigger is not None:
            counts.retried += len(cut)
            retried = await self._complete(unit, messages, bigger, len(cut))
            choices = list(choices)
            for i, choice in zip(cut, retried, strict=True):
                text, reasoning = self._split(choice)
                choices[i] = choice
                parsed_all[i] = (parse(text, choice.truncated), reasoning)
        outputs: list[tuple[Any, Choice, str | None]] = []
        for choice, (parsed, reasoning) in zip(choices, parsed_all, strict=True):
            if choice.truncated:
                counts.truncated += 1
            if choice.finish_reason == REPLY_TOO_LARGE:
                counts.unparsable += 1
                res.rejected.append(self._rejected(unit, item, stage=step.name, reason="reply over the size cap",
                                                   raw="", finish_reason=choice.finish_reason))
                continue
            if not parsed:
                if choice.truncated:  # recorded as what it is, not as a parse failure
                    reason = f"truncated at the {len(choice.text.split())}-word mark with nothing usable"
                else:
                    counts.unparsable += 1
                    reason = "unparsable"
                res.rejected.append(self._rejected(unit, item, stage=step.name, reason=reason,
                                                   raw=choice.text, finish_reason=choice.finish_reason))
                continue
            outputs.extend((p, choice, reasoning) for p in parsed)
        if step.not_copies_of and outputs:
            examples = {_normal(str(item.get(f) or "")) for f in step.not_copies_of} - {""}
            kept = []
            for value, choice, reasoning in outputs:
                if _normal(str(value)) in examples:
                    counts.copied += 1
                    rejected = self._rejected(unit, item, stage=step.name, reason="copied the few-shot example",
                                              raw=choice.text, finish_reason=choice.finish_reason)
                    rejected["parsed"] = value
                    res.rejected.append(rejected)
                else:
                    kept.append((value, choice, reasoning))
            outputs = kept
        if step.grounded_in and outputs:
            source = content_words(str(item.get(step.grounded_in) or ""))
            kept = []
            for value, choice, reasoning in outputs:
                text = " ".join(value.values()) if isinstance(value, dict) else str(value)
                if is_grounded(text, source):
                    kept.append((value, choice, reasoning))
                    continue
                counts.ungrounded += 1
                rejected = self._rejected(unit, item, stage=step.name, reason="not grounded: shares no word "
                                          f"with the {step.grounded_in}", raw=choice.text,
                                          finish_reason=choice.finish_reason)
                rejected["parsed"] = value
                res.rejected.append(rejected)
            outputs = kept
        limit = self._option(step.limit)
        if limit is not None:
            outputs = outputs[:limit]
        counts.parsed += len(outputs)
        collected = None
        if step.collect:
            collected = "\n".join(f"{k + 1}. {value}" for k, (value, _, _) in enumerate(outputs))
        children = []
        for k, (value, choice, reasoning) in enumerate(outputs):
            child = dict(item)
            if isinstance(value, dict):
                child.update({f: value[f] for f in step.outputs})
            else:
                child[step.outputs[0]] = value
            if step.item_id:
                child["_item_id"] = f"{unit.seed['chunk_id']}/{step.item_id}/{k}"
            if step.collect:
                child[step.collect] = collected
            child["_truncated"] = item["_truncated"] or choice.truncated
            if step.answer:
                child["_reasoning"] = reasoning
            children.append(child)
        return children

    def _row(self, unit: Unit, flow: Flow, item: dict[str, Any]) -> dict[str, Any]:
        seed = unit.seed
        row = {
            "question": item["question"],
            "response": item["response"],
            "document": item[flow.document_field],
            "raw_document": seed["document"],
            "document_outline": seed.get("document_outline", ""),
            "domain": seed.get("domain", ""),
            "chunk_id": seed["chunk_id"],
            "source": seed.get("source", ""),
            "generator": flow.name,
            "item_id": item["_item_id"],
            # Kept only when asked for (ENABLE_REASONING): a thinking teacher's hundreds of
            # tokens per row would otherwise end up in the training data unasked.
            "reasoning": item["_reasoning"] if self.options.enable_reasoning else None,
            "truncated": bool(item["_truncated"]),
        }
        row.update({f"judge_{name}": None for name in JUDGES})
        for f in flow.row_fields:
            row[f] = item.get(f)
        return row

    async def _finish(self, unit: Unit, flow: Flow, item: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        row = self._row(unit, flow, item)
        if not self.judges:
            return True, row

        variables = {**_item_vars(item), **row}
        prompts = {spec.name: self._render(spec.prompt, variables, judge=True) for spec in self.judges}
        for spec in self.judges:
            stage = unit.result.stage(f"judge_{spec.name}")
            stage.calls += 1
            stage.samples += 1

        keys = {name: self._key(messages, self.judge_params_by[name]) for name, messages in prompts.items()}

        cut_off: set[str] = set()

        async def call(spec: JudgeSpec) -> str:
            params = self.judge_params_by[spec.name]
            choice = (await self._complete(unit, prompts[spec.name], params, 1, keys[spec.name]))[0]
            reply = self._split(choice)[0]
            # A judge's reply is a score and a line of reason: cut off means the cap went elsewhere
            # (thinking), and a "score" read from cut-off text may be the model's musing: once more, larger.
            if choice.truncated:
                bigger = self._bigger(params)
                if bigger is not None:
                    unit.result.stage(f"judge_{spec.name}").retried += 1
                    choice = (await self._complete(unit, prompts[spec.name], bigger, 1))[0]
                    reply = self._split(choice)[0]
                if choice.truncated and parse_judge(reply, spec.scale)[0] is None:
                    cut_off.add(spec.name)
            return reply

        replayed = {name: self._replay(key[1], 1) for name, key in keys.items()}
        if all(r is not None and not r[0].finish_reason == "length"
               for r in replayed.values()):  # all stored and whole: no tasks needed (fast resume)
            for samples in replayed.values():
                unit.calls += 1
                self.counters.calls_cached += 1
                unit.add_tokens(samples[0].prompt_tokens, samples[0].completion_tokens)
            verdicts = judge_verdicts(self.judges, [self._split(replayed[s.name][0].as_choice())[0]
                                                    for s in self.judges])
        else:
            verdicts = await judge_row(self.judges, call)
            verdicts = [replace(v, reason="judge reply truncated") if v.score is None and v.judge in cut_off else v
                        for v in verdicts]
        row.update(judge_fields(verdicts, JUDGES))
        failed = [v for v in verdicts if not v.passed]
        for v in verdicts:
            stage = unit.result.stage(f"judge_{v.judge}")
            if v.score is None and v.judge in cut_off:
                stage.truncated += 1
            elif v.score is None:
                stage.unparsable += 1
            elif v.passed:
                stage.parsed += 1
        if not failed:
            return True, row
        first = failed[0]
        unit.result.judge_rejections[first.judge] += 1
        rejected = dict(row)
        rejected.update({"stage": f"judge_{first.judge}", "reason": first.reason, "raw": first.raw[:RAW_PREVIEW_CHARS],
                         "failed_judges": [v.judge for v in failed]})
        return False, rejected

    def _rejected(self, unit: Unit, item: dict[str, Any], *, stage: str, reason: str, raw: str,
                  finish_reason: str | None) -> dict[str, Any]:
        row = {"generator": unit.generator, "chunk_id": unit.seed["chunk_id"],
               "source": unit.seed.get("source", ""), "item_id": item["_item_id"], "stage": stage,
               "reason": reason, "raw": raw[:RAW_PREVIEW_CHARS], "finish_reason": finish_reason,
               "truncated": finish_reason == "length"}
        if len(raw) > RAW_PREVIEW_CHARS:
            row["raw_chars"] = len(raw)  # the whole reply is in the response store, once
        return row


def make_units(seeds: list[dict[str, Any]], generators: Iterable[str]) -> list[Unit]:
    """Units in seed order; within a chunk, generators in the given order."""
    units = []
    gens = list(generators)
    for ci, seed in enumerate(seeds):
        for gi, g in enumerate(gens):
            order = ci * len(gens) + gi
            units.append(Unit(order=order, generator=g, seed=seed,
                              result=UnitResult(generator=g, chunk_id=seed["chunk_id"],
                                                source=seed.get("source", ""))))
    return units


async def run_units(engine: Engine, units: list[Unit], *, window: int, on_done=None,
                    skip: dict[int, tuple[str, str | None]] | None = None) -> None:
    """Run units with at most `window` in flight, admitting them in order; `on_done(unit)` after each."""
    skip = skip or {}
    slots = asyncio.Semaphore(max(1, window))
    tasks: set[asyncio.Task] = set()

    async def one(unit: Unit) -> None:
        try:
            await engine.run_unit(unit)
            if unit.result.status != PENDING:
                await engine.store.set_status(unit.generator, unit.seed["chunk_id"], unit.result.status,
                                              unit.result.error, engine.fingerprints[unit.generator])
            if on_done:
                on_done(unit)
        finally:
            slots.release()

    try:
        for unit in units:
            if unit.order in skip:
                unit.result.status, unit.result.error = skip[unit.order]
                if on_done:
                    on_done(unit)
                continue
            await slots.acquire()
            if engine.stopping:
                slots.release()
                break
            task = asyncio.create_task(one(unit), name=f"{unit.generator}:{unit.seed['chunk_id']}")
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    except BaseException:
        for t in list(tasks):
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        raise
