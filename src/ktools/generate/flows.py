"""The four generators as data.

A flow is an ordered list of LLM steps. Each step renders its prompt for one item,
asks the teacher for `n` samples, parses every sample into zero or more outputs, and
expands the item into one child item per output (the child inherits every field of
its parent). Items that come out of the last step are Q&A rows; the judges (if on)
then filter them. The engine (`engine.py`) knows nothing about summaries or facts:
adding a generator means adding a `Flow` here and its prompts in `ktools/prompts/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    """One LLM step of a flow.

    name:      stage name in the yield report ("summaries", "questions", ...).
    prompt:    prompt template name (ktools/prompts/<prompt>.yaml).
    parser:    key of `parsing.PARSERS`.
    outputs:   item fields the parsed values go to; one field for string outputs,
               ("question", "response") for Q&A pairs (dict outputs).
    n:         samples per prompt: an int, or the name of a GenerationOptions field.
    limit:     keep at most this many outputs per item (int or option name).
    item_id:   if set, each child gets item_id "<chunk_id>/<item_id>/<k>" (k counts
               this step's outputs for the parent, in sample order).
    collect:   if set, every child also gets this field holding all outputs of the
               step for its parent as a numbered list (the "fact list" document).
    variables: template variables taken from options: {template var: option field}.
    answer:    this step produces the response (its reasoning is kept in the row).
    grounded_in: if set, an output sharing no content word with this item field is
               dropped (kept in rejected.jsonl as "not grounded"): the cheap guard
               against refusals and chatter that weak teachers return as "facts".
    not_copies_of: item fields (the few-shot examples) an output must not repeat; small
               teachers copy the example questions instead of asking their own.
    """

    name: str
    prompt: str
    parser: str
    outputs: tuple[str, ...]
    n: int | str = 1
    limit: int | str | None = None
    item_id: str | None = None
    collect: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    answer: bool = False
    grounded_in: str | None = None
    not_copies_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class Flow:
    """A generator. `document_field` is the item field written as the row's `document`;
    `row_fields` are extra item fields copied into each row (e.g. key_fact)."""

    name: str
    steps: tuple[Step, ...]
    document_field: str
    default_item_id: str = "document"
    row_fields: tuple[str, ...] = ()


def _summary_flow(name: str) -> Flow:
    return Flow(
        name=name,
        steps=(
            Step("summaries", prompt=name, parser="text", outputs=("summary",),
                 n="number_of_summaries", item_id="summary"),
            Step("questions", prompt="summary_questions", parser="questions", outputs=("question",),
                 limit="questions_per_chunk", variables={"n_questions": "questions_per_chunk"},
                 grounded_in="summary", not_copies_of=("icl_query_1", "icl_query_2", "icl_query_3")),
            Step("answers", prompt="summary_answer", parser="answer", outputs=("response",), answer=True),
        ),
        document_field="summary",
    )


FLOWS: dict[str, Flow] = {
    "extractive_summary": _summary_flow("extractive_summary"),
    "detailed_summary": _summary_flow("detailed_summary"),
    "key_facts_to_qa": Flow(
        name="key_facts_to_qa",
        steps=(
            Step("facts", prompt="key_facts", parser="list", outputs=("key_fact",),
                 limit="facts_per_chunk", item_id="fact", collect="fact_list", grounded_in="document"),
            Step("qa_pairs", prompt="fact_qa", parser="qa_pairs", outputs=("question", "response"),
                 limit="qa_per_fact", variables={"n_pairs": "qa_per_fact"}, answer=True),
        ),
        document_field="fact_list",
        row_fields=("key_fact",),
    ),
    "document_based_qa": Flow(
        name="document_based_qa",
        steps=(
            Step("qa_pairs", prompt="document_qa", parser="qa_pairs", outputs=("question", "response"),
                 limit="questions_per_chunk", variables={"n_pairs": "questions_per_chunk"}, answer=True,
                 grounded_in="document"),
        ),
        document_field="document",
    ),
}

# Stage names (the yield report's), e.g. for per-stage max_tokens caps.
STAGES: frozenset[str] = frozenset(step.name for flow in FLOWS.values() for step in flow.steps)

# Judges: name -> prompt. Scores are normalised to 0..1 with the prompt's `scale`.
JUDGE_PROMPTS: dict[str, str] = {
    "question": "judge_question",
    "faithfulness": "judge_faithfulness",
    "relevancy": "judge_relevancy",
}
