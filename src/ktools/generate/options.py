"""`GenerationOptions`: every knob of a generation run, in one frozen dataclass.

The CLI (`ktools generate`), `QAGenerator` and the notebook all map their flags,
environment variables and parameters onto this one type. Options that change what
the teacher is asked (sampling, prompts, system message, extra instructions) end up
in the response-store key, so changing them re-asks exactly the affected requests.
Options that only steer the run (concurrency, subsample, retry_failed, dry_run,
token_budget) do not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.generate.flows import STAGES
from ktools.paths import GENERATORS

# Judge names, in the order they run and appear in reports.
JUDGES = ("question", "faithfulness", "relevancy")
# The name the judges answer to in per-stage settings (caps, thinking), beside the flow stages.
JUDGE_STAGE = "judges"
STAGE_KEYS: frozenset[str] = STAGES | {JUDGE_STAGE}
# A thinking teacher spends hundreds of tokens before a judge's one-line score.
THINKING_JUDGE_MAX_TOKENS = 1024
# Thinking settings per stage: on/off, or a reasoning effort for OpenAI-style APIs.
THINKING_VALUES = ("on", "off", "minimal", "low", "medium", "high")


@dataclass(frozen=True)
class GenerationOptions:
    """Parameters of one generation run (see the module docstring of `ktools.generate`).

    generators:           which of the four flows to run (default: all four).
    number_of_summaries:  summaries per chunk for the two summary generators (sampled with `n`).
    questions_per_chunk:  questions per summary / Q&A pairs per chunk (document_based_qa).
    facts_per_chunk:      at most this many key facts per chunk are used (key_facts_to_qa).
    qa_per_fact:          Q&A pairs asked for per key fact.
    temperature, max_tokens, top_p, stop, seed: sampling; `extra_sampling` carries
                          provider knobs such as top_k or repeat_penalty (sent as extra_body).
    system_message:       replaces the system message of the generator prompts.
    extra_instructions:   appended to every generator prompt (CUSTOMISATION_PROMPT,
                          `--qa-extra-instructions`). Judges never see it.
    prompt_overrides_dir: a folder whose `<prompt name>.yaml` files replace the built-in ones.
    prompt_overrides:     prompt name -> file (YAML prompt or plain Jinja2 text for the user
                          message), e.g. {"document_qa": "custom_template.txt"}.
    judge_question / judge_faithfulness / judge_relevancy: True, False or None (= auto:
                          on for a real teacher, off for the embedded 135M model, which
                          cannot judge reliably; see README).
    question_threshold, faithfulness_threshold, relevancy_threshold: minimum normalised
                          judge score (0..1) a row needs to be kept.
    max_concurrency:      requests in flight for the whole run (None: the client's limit).
    subsample:            use only the first N seed chunks.
    retry_failed:         also re-run chunks recorded as failed (otherwise a resumed run
                          skips them and reports them).
    dry_run:              run `dry_run_chunks` chunks through every stage, write nothing to
                          gen.jsonl, and estimate requests/tokens for the full run.
    token_budget:         stop cleanly (no new requests) once this many tokens were spent
                          on requests sent in this run (cached replays are free).
    price_input, price_output: the teacher's price per million prompt / completion tokens
                          (TEACHER_PRICE_INPUT / _OUTPUT); turn tokens into money in the dry-run
                          estimate, the progress bar and the report. 0 = unknown (no money shown).
    max_cost:             stop cleanly, like token_budget, before the requests sent in this run could
                          cost more than this (needs the prices): each request's worst case (prompt +
                          its cap) is held against it while in flight; status "cost_limit_reached",
                          resumable.
    few_shot:             show the seed's ICL example (icl_document, icl_query_1..3) in the
                          question prompt. None = auto: on for a real teacher, off for the
                          embedded 135M model, which copies the example questions instead
                          of asking its own (measured on the sample document).
    embedded_max_tokens:  cap on max_tokens when the teacher is the embedded SmolLM2-135M
                          (None: no cap). Its answers past ~300 tokens are repetition, and
                          on a CPU every token costs; a real teacher is never capped.
    stage_max_tokens:     per-stage caps on max_tokens, by stage name as in the yield report
                          ("summaries", "questions", "answers", "facts", "qa_pairs"), for any
                          teacher; e.g. {"questions": 200}. Stages not named use max_tokens.
    embedded_stage_max_tokens: per-stage caps applied only to the embedded teacher, on top of
                          embedded_max_tokens. Default: summaries at 192 tokens - measured on
                          the sample document, 52 of 68 of its summaries ran to the 320 cap,
                          and past ~150 words 41 % of their 4-grams repeat earlier text.
    judge_max_tokens:     the judges' cap (their reply is a score and a reason). With enable_reasoning
                          at least THINKING_JUDGE_MAX_TOKENS unless stage_max_tokens["judges"] says.
    truncation_retry_factor: a completion cut off by its cap that yields nothing usable (no item, no
                          score; typically a thinking teacher that spent the cap on reasoning) is asked
                          once more with the cap times this (at most truncation_retry_max_tokens); if
                          that is cut off too it is recorded as truncated, never silently rejected.
                          1 = no retry. Never for the embedded teacher, whose cap bounds CPU time.
    stage_thinking:       per stage (flow stages and "judges"): "on", "off", or an effort ("minimal",
                          "low", "medium", "high"), sent the way the server understands
                          (thinking_control); stages not named send nothing (the server's default).
    thinking_control:     how thinking is switched: "chat_template_kwargs" (vLLM/SGLang and the
                          embedded server: chat_template_kwargs.enable_thinking, Qwen3-style templates),
                          "reasoning_effort" (OpenAI-style APIs; "on"/"off" become medium/low), or "none".
                          None = by provider (see ktools.generate.thinking).
    enable_reasoning:     ask the teacher to think (sends chat_template_kwargs.enable_thinking, which
                          vLLM/SGLang and the embedded server understand; for another provider put
                          its own knob in extra_sampling) and keep the reasoning in the row's
                          `reasoning` field (from reasoning_content or a <think> block).
    dedup_threshold:      a question whose normalised text equals, or whose word-bigram Jaccard
                          similarity reaches this, an earlier kept question (any chunk, any generator)
                          is dropped to <generator>/duplicates.jsonl (DEDUP_THRESHOLD; None = off,
                          1.0 = equal normalised text only). See ktools.generate.dedup.
    structured_output:    "auto" (a JSON schema for questions, facts, Q&A pairs and judge scores where the
                          provider honours one), "on" (send it anyway) or "off" (STRUCTURED_OUTPUT); the
                          tag/list parsers stay the fallback. See ktools.generate.structured.
    show_progress:        draw tqdm.auto progress bars.
    """

    generators: tuple[str, ...] = GENERATORS
    number_of_summaries: int = 5
    questions_per_chunk: int = 3
    facts_per_chunk: int = 10
    qa_per_fact: int = 2
    temperature: float = 0.7
    max_tokens: int = 1024
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    extra_sampling: Mapping[str, Any] = field(default_factory=dict)
    system_message: str | None = None
    extra_instructions: str = ""
    prompt_overrides_dir: str | Path | None = None
    prompt_overrides: Mapping[str, str | Path] = field(default_factory=dict)
    judge_question: bool | None = None
    judge_faithfulness: bool | None = None
    judge_relevancy: bool | None = None
    question_threshold: float = 1.0
    faithfulness_threshold: float = 1.0
    relevancy_threshold: float = 0.5
    judge_max_tokens: int = 256
    truncation_retry_factor: int = 4
    truncation_retry_max_tokens: int = 16384
    stage_thinking: Mapping[str, str] = field(default_factory=dict)
    thinking_control: str | None = None
    max_concurrency: int | None = None
    subsample: int | None = None
    retry_failed: bool = False
    dry_run: bool = False
    dry_run_chunks: int = 2
    token_budget: int | None = None
    price_input: float = 0.0
    price_output: float = 0.0
    max_cost: float | None = None
    few_shot: bool | None = None
    embedded_max_tokens: int | None = 320
    stage_max_tokens: Mapping[str, int] = field(default_factory=dict)
    embedded_stage_max_tokens: Mapping[str, int] = field(default_factory=lambda: {"summaries": 192})
    enable_reasoning: bool = False
    dedup_threshold: float | None = 0.9
    structured_output: str = "off"
    show_progress: bool = True

    def __post_init__(self) -> None:
        gens = (self.generators,) if isinstance(self.generators, str) else tuple(self.generators)
        unknown = [g for g in gens if g not in GENERATORS]
        if unknown or not gens:
            raise ValueError(f"unknown generator(s) {unknown or gens!r}; choose from {', '.join(GENERATORS)}")
        object.__setattr__(self, "generators", tuple(dict.fromkeys(gens)))
        if self.stop is not None and not isinstance(self.stop, tuple):
            stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
            object.__setattr__(self, "stop", stop or None)
        for name in ("number_of_summaries", "questions_per_chunk", "facts_per_chunk", "qa_per_fact",
                     "max_tokens", "judge_max_tokens", "dry_run_chunks", "truncation_retry_factor",
                     "truncation_retry_max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GenerationOptions.{name}={value!r}: expected an integer >= 1")
        for name in ("question_threshold", "faithfulness_threshold", "relevancy_threshold"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"GenerationOptions.{name}={value!r}: expected a number between 0 and 1")
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise ValueError(f"GenerationOptions.temperature={self.temperature!r}: expected 0..2")
        for name in ("max_concurrency", "subsample", "token_budget", "embedded_max_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"GenerationOptions.{name}={value!r}: expected an integer >= 1 or None")

        for name in ("price_input", "price_output"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"GenerationOptions.{name}={getattr(self, name)!r}: expected a price >= 0")
        if self.structured_output not in ("auto", "on", "off"):
            raise ValueError(f"GenerationOptions.structured_output={self.structured_output!r}: expected auto, on or off")
        if self.dedup_threshold is not None and not 0.0 < float(self.dedup_threshold) <= 1.0:
            raise ValueError(f"GenerationOptions.dedup_threshold={self.dedup_threshold!r}: expected a number in "
                             "(0, 1] or None (off)")
        if self.max_cost is not None and float(self.max_cost) <= 0:
            raise ValueError(f"GenerationOptions.max_cost={self.max_cost!r}: expected an amount > 0 or None")
        if self.max_cost is not None and not (self.price_input or self.price_output):
            raise ValueError("GenerationOptions.max_cost needs the teacher's prices: set TEACHER_PRICE_INPUT and "
                             "TEACHER_PRICE_OUTPUT (per million tokens), or --price-input / --price-output")
        for name in ("stage_max_tokens", "embedded_stage_max_tokens"):
            caps = dict(getattr(self, name) or {})
            unknown = sorted(set(caps) - STAGE_KEYS)
            if unknown:
                raise ValueError(f"GenerationOptions.{name}: unknown stage(s) {', '.join(unknown)}; "
                                 f"stages: {', '.join(sorted(STAGE_KEYS))}")
            bad = {k: v for k, v in caps.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1}
            if bad:
                raise ValueError(f"GenerationOptions.{name}: {bad!r}: each cap must be an integer >= 1")
            object.__setattr__(self, name, caps)
        thinking = {k: str(v).strip().lower() if not isinstance(v, bool) else ("on" if v else "off")
                    for k, v in dict(self.stage_thinking or {}).items()}
        unknown = sorted(set(thinking) - STAGE_KEYS)
        bad = {k: v for k, v in thinking.items() if v not in THINKING_VALUES}
        if unknown or bad:
            raise ValueError(f"GenerationOptions.stage_thinking: {unknown or bad!r}: expected stage -> one of "
                             f"{', '.join(THINKING_VALUES)}; stages: {', '.join(sorted(STAGE_KEYS))}")
        object.__setattr__(self, "stage_thinking", thinking)
        if self.thinking_control not in (None, "chat_template_kwargs", "reasoning_effort", "none"):
            raise ValueError(f"GenerationOptions.thinking_control={self.thinking_control!r}: expected "
                             "chat_template_kwargs, reasoning_effort, none or None (by provider)")

    def max_tokens_for(self, embedded_teacher: bool, stage: str | None = None) -> int:
        """The max_tokens requests carry: the smallest cap that applies (to `stage`, if given)."""
        caps = [self.max_tokens, self.stage_max_tokens.get(stage) if stage else None]
        if embedded_teacher:
            caps += [self.embedded_max_tokens, self.embedded_stage_max_tokens.get(stage) if stage else None]
        return min(c for c in caps if c)

    def judge_max_tokens_for(self, embedded_teacher: bool) -> int:
        """The judges' cap: stage_max_tokens["judges"] if given, else judge_max_tokens (raised to
        THINKING_JUDGE_MAX_TOKENS when the teacher is asked to think)."""
        cap = self.stage_max_tokens.get(JUDGE_STAGE)
        if cap is None:
            cap = self.judge_max_tokens
            if self.enable_reasoning:
                cap = max(cap, THINKING_JUDGE_MAX_TOKENS)
        if embedded_teacher and self.embedded_stage_max_tokens.get(JUDGE_STAGE):
            cap = min(cap, self.embedded_stage_max_tokens[JUDGE_STAGE])
        return cap

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Money for these tokens at the configured prices (0.0 when no price is set)."""
        return (prompt_tokens * self.price_input + completion_tokens * self.price_output) / 1_000_000

    @property
    def priced(self) -> bool:
        return bool(self.price_input or self.price_output)

    def replace(self, **changes: Any) -> GenerationOptions:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> GenerationOptions:
        """Options from `ktools.config.Settings` (NUMBER_OF_SUMMARIES, MAX_CONCURRENCY, ...)."""
        values: dict[str, Any] = {
            "number_of_summaries": settings.number_of_summaries,
            "max_concurrency": settings.max_concurrency,
            "enable_reasoning": settings.enable_reasoning,
            "subsample": settings.seed_data_subsample,
            "extra_instructions": settings.customisation_prompt or "",
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
            "stage_max_tokens": getattr(settings, "stage_max_tokens", None) or None,
            "stage_thinking": getattr(settings, "stage_thinking", None) or None,
            "thinking_control": getattr(settings, "thinking_control", None) or None,
            "token_budget": getattr(settings, "token_budget", None),
            "price_input": getattr(settings, "teacher_price_input", 0.0),
            "price_output": getattr(settings, "teacher_price_output", 0.0),
            "max_cost": getattr(settings, "max_cost", None),
            "structured_output": getattr(settings, "structured_output", None) or None,
        }
        values = {k: v for k, v in values.items() if v is not None}
        if hasattr(settings, "dedup_threshold"):
            values["dedup_threshold"] = settings.dedup_threshold or None  # DEDUP_THRESHOLD=0: off
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def judge_enabled(self, judge: str, embedded_teacher: bool) -> bool:
        value = getattr(self, f"judge_{judge}")
        return (not embedded_teacher) if value is None else bool(value)

    def threshold(self, judge: str) -> float:
        return float(getattr(self, f"{judge}_threshold"))

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["generators"] = list(self.generators)
        d["stop"] = list(self.stop) if self.stop else None
        d["extra_sampling"] = dict(self.extra_sampling)
        d["stage_max_tokens"] = dict(self.stage_max_tokens)
        d["embedded_stage_max_tokens"] = dict(self.embedded_stage_max_tokens)
        d["stage_thinking"] = dict(self.stage_thinking)
        d["prompt_overrides"] = {k: str(v) for k, v in self.prompt_overrides.items()}
        d["prompt_overrides_dir"] = str(self.prompt_overrides_dir) if self.prompt_overrides_dir else None
        return d


def normalise_generators(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """'all', 'a,b' or a list -> a tuple of generator names (validated by GenerationOptions)."""
    if value is None or value == "all" or value == ["all"]:
        return GENERATORS
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    return tuple(value)
