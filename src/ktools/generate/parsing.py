"""Parsing what teachers really return.

Real models (and the embedded 135M SmolLM2 above all) drift off the asked format:
they add a preamble ("Sure! Here are the questions:"), number items as "1)", "Q1:",
"**Question 1:**" or bullets, forget end tags, keep going after the last item, wrap
everything in a code fence, or put reasoning in a <think> block. Every parser here
accepts all of that, returns what it could find, and returns an empty list (never
raises) when nothing usable is there, so the engine can count and keep the raw text
aside in rejected.jsonl.

When a completion was cut off by max_tokens (finish_reason == "length") the last item
of a list is probably incomplete: list parsers drop it (unless it is the only one) and
the engine flags the rows `truncated`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ktools.llm.reasoning import split_reasoning

_SPECIAL = re.compile(r"<\|[a-z_]+\|>|</?s>|\[/?INST\]", re.I)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?|\n?```\s*$")
_PREAMBLE = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|here(?:'s| is| are)|below (?:is|are)|great)\b[^\n]*\n", re.I)
_LABEL_LINE = re.compile(
    r"^\s*(?:#+\s*)?\**\s*(?:extractive |detailed )?(?:summary|answer|response|facts?|key facts|questions?)"
    r"\s*\**\s*:\s*\**\s*", re.I)

# A list item marker at the start of a line: 1.  1)  (1)  -  *  •  Fact 1:  Q1.
_ITEM = re.compile(
    r"^\s*(?:\(?\d{1,3}[\.\):]|[-*•+]|(?:fact|question|q|item)\s*#?\d{0,3}\s*[:\.\)\-])\s*(.*)$", re.I)
_TAGGED = re.compile(r"\[(QUESTION|ANSWER|END)\]", re.I)
# Q/A labels: at line start any form (Q:, Q1:, **Question 2:**, ### Answer), inline only full words.
_QA_LABEL = re.compile(
    r"(?:^|\n)[ \t]*(?:#+[ \t]*)?(?:\d{1,3}[\.\)][ \t]*)?\**[ \t]*(?P<a>question|q|answer|a|response)[ \t]*"
    r"#?\d{0,3}[ \t]*\**[ \t]*[:\.\)][ \t]*\**"
    r"|(?<=[\s\?\.])(?P<b>question|answer)[ \t]*\d{0,3}[ \t]*:"
    r"|(?<=\?)[ \t]*(?P<c>A)\d{0,3}[ \t]*:"
    r"|(?:^|\n)[ \t]*#+[ \t]*\**(?P<d>question|answer)[ \t]*\d{0,3}\**[ \t]*(?=\n)",
    re.I)
# Precompiled: these run several times per teacher answer (re's own cache lookup costs more here).
_SPACES = re.compile(r"\s+")
_NON_WORDS = re.compile(r"\W+")
_LEADING_DIGIT = re.compile(r"^\W*(\d)\b")
_CONTENT_WORD = re.compile(r"[a-z][a-z0-9\-]{3,}")
_QUESTION_WORDS = re.compile(
    r"^(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|should|"
    r"would|will|has|have|had|list|name|describe|explain|according)\b", re.I)


def strip_reasoning(text: str | None) -> tuple[str, str | None]:
    """Split a completion into (answer text, reasoning): <think> blocks (also unterminated or
    opened by the template), gpt-oss channels; see `ktools.llm.reasoning`."""
    return split_reasoning(text)


def clean(text: str | None) -> str:
    """Drop special tokens, code fences, a chatty preamble line and surrounding whitespace."""
    if not text:
        return ""
    # The substring tests skip a regex scan that cannot match (most replies have neither).
    if "<" in text or "[" in text:
        text = _SPECIAL.sub("", text)
    text = text.replace("\r\n", "\n").strip()
    if "```" in text:
        text = _FENCE.sub("", text).strip()
    text = _PREAMBLE.sub("", text, count=1).strip() if "\n" in text else text
    return text


def _unquote(item: str) -> str:
    item = item.strip().strip("*").strip()
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'":
        item = item[1:-1].strip()
    return item


def parse_text(text: str | None, truncated: bool = False, min_chars: int = 20) -> list[str]:
    """A free-text answer (summary): the text without preamble/label, or [] if too short."""
    body = clean(text)
    body = _LABEL_LINE.sub("", body, count=1).strip()
    if len(body) < min_chars:
        return []
    return [body]


def parse_answer(text: str | None, truncated: bool = False, min_chars: int = 2) -> list[str]:
    """One answer: like parse_text, but stops where the model starts inventing the next question."""
    body = clean(text)
    body = _LABEL_LINE.sub("", body, count=1).strip()
    m = re.search(r"\n\s*(?:\**\s*(?:question|q)\s*\d*\s*\**\s*[:\.]|\[QUESTION\]|\[END\])", body, re.I)
    if m:
        body = body[: m.start()].strip()
    body = _TAGGED.sub("", body).strip()
    if len(body) < min_chars:
        return []
    return [body]


def _list_items(body: str) -> tuple[list[str], bool]:
    """Items of a numbered/bulleted list; (items, had_markers)."""
    items: list[str] = []
    had_markers = False
    for line in body.split("\n"):
        if not line.strip():
            continue
        m = _ITEM.match(line)
        if m and m.group(1).strip():
            had_markers = True
            items.append(m.group(1).strip())
        elif m:  # a bare marker line such as "1." - the text follows on the next line
            had_markers = True
            items.append("")
        elif items and had_markers:
            items[-1] = (items[-1] + " " + line.strip()).strip()
        else:
            items.append(line.strip())
    return [i for i in items if i], had_markers


def parse_list(text: str | None, truncated: bool = False, min_words: int = 3) -> list[str]:
    """Items of a list in any common style; a single paragraph falls back to its sentences."""
    body = clean(text)
    body = _LABEL_LINE.sub("", body, count=1).strip()
    if not body:
        return []
    items, had_markers = _list_items(body)
    if not had_markers and len(items) <= 1:
        items = [s for s in re.split(r"(?<=[\.!?])\s+(?=[A-Z])", body) if s.strip()]
    out = []
    for item in items:
        item = _unquote(item)
        if item.endswith(":") or len(item.split()) < min_words:
            continue  # a heading or a fragment
        out.append(item)
    if truncated and len(out) > 1:
        out = out[:-1]
    return _dedupe(out)


def _dedupe(items: list[Any]) -> list[Any]:
    seen, out = set(), []
    for item in items:
        key = _NON_WORDS.sub(" ", str(item)).strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _as_question(item: str) -> str | None:
    item = _TAGGED.sub("", item).strip()
    if "?" in item:
        q = item[: item.index("?") + 1].strip()
        return q if len(q.split()) >= 3 else None
    if _QUESTION_WORDS.match(item) and len(item.split()) >= 4:
        return item.rstrip(".") + "?"
    return None


def parse_questions(text: str | None, truncated: bool = False) -> list[str]:
    """Questions, one per item; an item's text after its question mark (an answer) is dropped."""
    body = clean(text)
    if _TAGGED.search(body):
        chunks = re.split(r"\[QUESTION\]", body, flags=re.I)
        candidates = [re.split(r"\[(?:ANSWER|END)\]", c, flags=re.I)[0] for c in chunks[1:]]
    else:
        candidates, _ = _list_items(_LABEL_LINE.sub("", body, count=1))
        # A model may also put several questions on one line.
        split: list[str] = []
        for c in candidates:
            parts = [p.strip() for p in re.findall(r"[^?]+\?", c)]
            split.extend(parts if len(parts) > 1 else [c])
        candidates = split
    candidates = [re.sub(r"^(?:(?:first|second|third|fourth|fifth|sixth|next|another)\s+)?(?:question|q)"
                         r"\s*\d*\s*[:\.\)]\s*", "", _unquote(c), flags=re.I) for c in candidates]
    questions = [q[0].upper() + q[1:] for q in (_as_question(c) for c in candidates) if q]
    if truncated and len(questions) > 1 and not body.rstrip().endswith("?"):
        questions = questions[:-1]
    return _dedupe(questions)


def _json_value(body: str) -> Any:
    """The JSON array/object in a reply (also inside prose or a fence), or None."""
    start = min((i for i in (body.find("["), body.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    end = max(body.rfind("]"), body.rfind("}"))
    if end <= start:
        return None
    try:
        return json.loads(body[start:end + 1])
    except ValueError:
        return None


def _json_pairs(body: str) -> list[dict[str, str]]:
    value = _json_value(body)
    if isinstance(value, dict):
        value = next((v for v in value.values() if isinstance(v, list)), [value])
    if not isinstance(value, list):
        return []
    pairs = []
    for entry in value:
        if not isinstance(entry, dict):
            continue
        lowered = {str(k).lower(): v for k, v in entry.items()}
        q = lowered.get("question") or lowered.get("q") or lowered.get("instruction")
        a = lowered.get("answer") or lowered.get("response") or lowered.get("a") or lowered.get("output")
        if isinstance(q, str) and isinstance(a, str):
            pairs.append({"question": q, "response": a})
    return pairs


def parse_qa_pairs(text: str | None, truncated: bool = False) -> list[dict[str, str]]:
    """Question/answer pairs: `Question: … Answer: …`, `Q1: … A1: …`, `[QUESTION]…[ANSWER]…[END]`,
    bold/heading labels, a JSON array of {"question", "answer"} objects, or a numbered list of
    "question? answer" items."""
    body = clean(text)
    pairs: list[dict[str, str]] = _json_pairs(body) if ("{" in body and '"' in body) else []
    labels = []
    for m in _TAGGED.finditer(body):
        labels.append((m.start(), m.end(), m.group(1).lower()[0]))
    if not labels and not pairs:
        for m in _QA_LABEL.finditer(body):
            kind = (m.group("a") or m.group("b") or m.group("c") or m.group("d")).lower()[0]
            labels.append((m.start(), m.end(), "q" if kind == "q" else "a"))
    if labels:
        labels.append((len(body), len(body), "e"))
        question = None
        for (_, end, kind), (nxt, _, _) in zip(labels, labels[1:], strict=False):
            segment = body[end:nxt].strip().strip("*").strip()
            if kind == "q":
                question = segment or None
            elif kind == "a" and question:
                answer = segment
                if answer:
                    pairs.append({"question": question, "response": answer})
                question = None
            elif kind == "e":
                question = None
    if not pairs:
        # Fallback: numbered items "Question? Answer." or a question line followed by its answer.
        items, _ = _list_items(body)
        i = 0
        while i < len(items):
            item = _unquote(items[i])
            if "?" in item:
                q, rest = item[: item.index("?") + 1], item[item.index("?") + 1:].strip()
                if rest:
                    pairs.append({"question": q, "response": rest})
                elif i + 1 < len(items) and "?" not in items[i + 1]:
                    pairs.append({"question": q, "response": _unquote(items[i + 1])})
                    i += 1
            i += 1
    cleaned = []
    for p in pairs:
        q = _SPACES.sub(" ", p["question"]).strip()
        a = p["response"].strip()
        if len(q.split()) >= 3 and a:
            cleaned.append({"question": q, "response": a})
    if truncated and len(cleaned) > 1:
        cleaned = cleaned[:-1]
    return _dedupe(cleaned)


_SCORE = re.compile(r"(?:score|rating|verdict|grade)\s*(?:is|of|=|:)?\s*\**\s*(\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?", re.I)
_FRACTION = re.compile(r"\b(\d+(?:\.\d+)?)\s*/\s*(\d+)\b")
_YES = re.compile(r"^\W*(yes|no)\b", re.I)
_REASON = re.compile(r"(?:reason|explanation|because)\s*[:\-]?\s*(.+)", re.I | re.S)


def parse_judge(text: str | None, scale: int = 1) -> tuple[float | None, str]:
    """(score normalised to 0..1 or None if none found, reason). Accepts 'Score: 2', '2/2', 'YES'."""
    body, _ = strip_reasoning(text)
    body = clean(body)
    score: float | None = None
    m = _SCORE.search(body)
    if m:
        value, denominator = float(m.group(1)), m.group(2)
        top = float(denominator) if denominator else float(scale)
        if top > 0 and 0 <= value <= top:
            score = value / top
    if score is None:
        m = _FRACTION.search(body)
        if m and float(m.group(2)) > 0 and float(m.group(1)) <= float(m.group(2)):
            score = float(m.group(1)) / float(m.group(2))
    if score is None:
        m = _YES.match(body)
        if m:
            score = 1.0 if m.group(1).lower() == "yes" else 0.0
    if score is None:
        m = _LEADING_DIGIT.match(body)
        if m and int(m.group(1)) <= scale:
            score = int(m.group(1)) / scale
    reason_match = _REASON.search(body)
    reason = (reason_match.group(1) if reason_match else body).strip()
    reason = _SPACES.sub(" ", reason)[:500]
    return score, reason


PARSERS: dict[str, Callable[..., list[Any]]] = {
    "text": parse_text,
    "answer": parse_answer,
    "list": parse_list,
    "questions": parse_questions,
    "qa_pairs": parse_qa_pairs,
}


_STOPWORDS = frozenset("""
about above after again against also among and any are because been before being below between both but
can cannot could does doing down during each either every from further had has have having here hers how
into its itself just more most must neither nor not now off once only other ought ours over own same
shall should some such than that the their theirs them then there these they this those through too under
until upon very was were what when where which while who whom whose why will with within without would
your yours answer question document text fact facts summary sure here following
""".split())


def content_words(text: str) -> set[str]:
    """Lower-case words of 4+ letters that carry meaning (not stopwords)."""
    return {w for w in _CONTENT_WORD.findall(text.lower()) if w not in _STOPWORDS}


def is_grounded(value: str, source_words: set[str]) -> bool:
    """Does `value` share at least one content word with the source?"""
    return bool(content_words(value) & source_words)
