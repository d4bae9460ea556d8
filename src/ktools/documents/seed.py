"""The seed dataset: every chunk plus the ICL fields the generators use.

ICL fields: `document_outline`, `domain`, `icl_document`, `icl_query_1..3`, one set
per source document. Two ways to get them, both real:

(a) given by the user — notebook parameters (`given=` for every source), a mapping
    file `{source name: {fields}}` (`icl_file=`), or `<stem>.icl.yaml` beside the
    source document; queries may also be given as a list `icl_queries`.
(b) drafted by the teacher — `domain` + `document_outline` from the title, headings
    and beginning; `icl_document` is NOT written by the model: it is an excerpt of
    ~500 tokens chosen deterministically (the most fact-dense early section, see
    `select_excerpt`); then the teacher writes three questions about that excerpt.
    Drafts are cached in `output/step_02/icl_drafts.json` by source checksum, so a
    re-run never re-asks. The embedded teacher is small: replies are parsed
    leniently, and whatever cannot be used falls back (outline = title + headings,
    domain from the title, questions built from the excerpt's own sentences); each
    field's `origin` (given / drafted / excerpt / fallback) is recorded and shown.

`validate_seed` names every bad record and field.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ktools.documents.chunking import chunk_markdown, parse_blocks, token_starts
from ktools.documents.errors import DocumentError, SeedProblem
from ktools.io import read_json, write_json

log = logging.getLogger(__name__)

QUERY_FIELDS = ("icl_query_1", "icl_query_2", "icl_query_3")
ICL_FIELDS = ("document_outline", "domain", "icl_document", *QUERY_FIELDS)
CHUNK_FIELDS = ("document", "source", "chunk_id", "start", "end", "n_tokens", "heading_path")
EXCERPT_TOKENS = 500


@dataclass
class IclFields:
    values: dict[str, str]
    origin: dict[str, str]
    source: str = ""
    sha256: str = ""
    model: str = ""
    excerpt_heading: str = ""
    notes: list[str] = field(default_factory=list)
    # The teacher failed (error, not a poor reply) for at least one field, which then got its
    # fallback: such fields are not the teacher's drafts and must not be cached as if they were.
    teacher_failed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "sha256": self.sha256, "model": self.model, "values": self.values,
                "origin": self.origin, "excerpt_heading": self.excerpt_heading, "notes": self.notes,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IclFields:
        return cls(values=dict(data["values"]), origin=dict(data["origin"]), source=data.get("source", ""),
                   sha256=data.get("sha256", ""), model=data.get("model", ""),
                   excerpt_heading=data.get("excerpt_heading", ""), notes=list(data.get("notes", [])))


# --- (a) given by the user -------------------------------------------------------

def normalise_given(values: Mapping[str, Any], where: str) -> dict[str, str]:
    """Given ICL values as {field: text}; `icl_queries: [..]` is accepted for the three queries."""
    if not isinstance(values, Mapping):
        raise DocumentError(where, "ICL values must be a mapping of field: text",
                            f"use the keys {', '.join(ICL_FIELDS)}")
    out: dict[str, str] = {}
    unknown = [k for k in values if k not in ICL_FIELDS and k != "icl_queries"]
    if unknown:
        raise DocumentError(where, f"unknown ICL field(s) {unknown}", f"known fields: {', '.join(ICL_FIELDS)}",
                            field=unknown[0])
    queries = values.get("icl_queries")
    if queries is not None:
        if not isinstance(queries, list | tuple) or len(queries) != 3:
            raise DocumentError(where, "icl_queries must be a list of exactly three questions", "",
                                field="icl_queries")
        out.update({f: str(q).strip() for f, q in zip(QUERY_FIELDS, queries, strict=True)})
    for key in ICL_FIELDS:
        if key in values and values[key] is not None:
            if not isinstance(values[key], str | int | float):
                raise DocumentError(where, f"{key} must be text", "", field=key)
            out[key] = str(values[key]).strip()
    return {k: v for k, v in out.items() if v}


def load_icl_file(path: str | Path) -> dict[str, dict[str, str]]:
    """A mapping file `{source name: {field: text}}`; a file with ICL keys at the top
    level is one source's values (returned under the key "*")."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DocumentError(str(path), "ICL file not found", "check ICL_FILE / --icl-file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DocumentError(str(path), f"not valid YAML ({getattr(exc, 'problem', exc)})",
                            "check indentation; multi-line text goes in a `|` block",
                            line=(mark.line + 1) if mark else None) from None
    if not isinstance(data, dict) or not data:
        raise DocumentError(str(path), "expected a mapping", "see 02_Data_Processing/README.md for the format")
    if any(k in ICL_FIELDS or k == "icl_queries" for k in data):
        return {"*": normalise_given(data, str(path))}
    return {str(name): normalise_given(values, f"{path} [{name}]") for name, values in data.items()}


def given_for(source: str, output_name: str, mapping: Mapping[str, Mapping[str, str]] | None,
              given: Mapping[str, Any] | None) -> dict[str, str]:
    """The user's ICL values for one source: `<stem>.icl.yaml` beside the source, then
    the mapping file (by file name, stem, or converted name), then `given`."""
    values: dict[str, str] = {}
    if given:
        values.update(normalise_given(given, "ICL parameters"))
    if mapping:
        names = [Path(source).name, Path(source).stem, output_name, Path(output_name).stem, source, "*"]
        for name in names:
            if name in mapping:
                values.update(mapping[name])
                break
    if not re.match(r"^https?://", source):
        path = Path(source)
        for beside in (path.with_name(path.name + ".icl.yaml"), path.with_name(path.stem + ".icl.yaml")):
            if beside.is_file():
                values.update(load_icl_file(beside).get("*", {}))
                break
    return values


# --- (b) drafted by the teacher ---------------------------------------------------

_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_PROPER = re.compile(r"(?<=[a-z,;] )[A-Z][a-z]+")


def select_excerpt(markdown: str, tokenizer: Any, target_tokens: int = EXCERPT_TOKENS) -> tuple[str, str]:
    """(excerpt, heading): ~`target_tokens` of the document starting at its most
    fact-dense early section. Deterministic: for the window of `target_tokens` starting
    at each heading, the score is (numbers + names) per token, discounted by position
    (the first half of the document is favoured); the excerpt ends at a block boundary."""
    starts = token_starts(markdown, tokenizer)
    blocks = parse_blocks(markdown)
    titles = {b.start: b.title for b in blocks if b.kind == "heading"}
    candidates = sorted({0, *titles})
    best, best_score = 0, -1.0
    for a in candidates:
        first = int(np.searchsorted(starts, a, side="left"))
        if first >= len(starts):
            continue
        last = min(first + target_tokens, len(starts))
        b = int(starts[last]) if last < len(starts) else len(markdown)
        n = max(last - first, 1)
        text = markdown[a:b]
        facts = len(_NUMBER.findall(text)) + len(_PROPER.findall(text))
        # windows shorter than the target (the document's end) are scored as if full
        score = facts / max(n, min(target_tokens, len(starts))) * (1.0 - 0.5 * a / max(len(markdown), 1))
        if score > best_score:
            best, best_score = a, score
    tail = markdown[best:]
    result = chunk_markdown(tail, tokenizer, source="excerpt", max_tokens=target_tokens + target_tokens // 10,
                            overlap_tokens=0, min_tokens=0)
    excerpt = result.chunks[0].document.strip() if result.chunks else tail.strip()
    return excerpt, titles.get(best, "")


def _headings(markdown: str) -> list[str]:
    return [("  " * (b.level - 1)) + b.title for b in parse_blocks(markdown) if b.kind == "heading"]


def fallback_outline(markdown: str, source: str) -> tuple[str, str]:
    """(outline, domain) without a model: the title and the top-level headings."""
    blocks = [b for b in parse_blocks(markdown) if b.kind == "heading"]
    title = blocks[0].title if blocks else Path(source).stem.replace("_", " ")
    rest = [b for b in blocks[1:] if b.title != title]
    top = min((b.level for b in rest), default=0)
    sections = list(dict.fromkeys(b.title for b in rest if b.level == top))[:12]
    outline = title if not sections else f"{title} — sections: {'; '.join(sections)}"
    return outline, title


def fallback_questions(excerpt: str, count: int = 3) -> list[str]:
    """Questions built from the excerpt's own fact-bearing sentences (answerable by construction)."""
    text = re.sub(r"^#+\s.*$", "", excerpt, flags=re.M)
    sentences = [s.strip(" -*|") for s in re.split(r"(?<=[.;:])\s+|\n+", text) if len(s.split()) >= 6]
    ranked = sorted(sentences, key=lambda s: -len(_NUMBER.findall(s)))[: count * 2] or sentences
    questions = []
    for sentence in ranked:
        opening = " ".join(sentence.split()[:7]).rstrip(",;:.")
        question = f"What does the document state in the passage beginning \"{opening}\"?"
        if question not in questions:
            questions.append(question)
        if len(questions) == count:
            break
    while len(questions) < count:
        questions.append(f"What is the main rule described in this excerpt (part {len(questions) + 1})?")
    return questions


def parse_outline_reply(text: str) -> tuple[str | None, str | None]:
    """(domain, outline) from a reply of the form 'Domain: …\\nOutline: …' (lenient)."""
    def grab(label: str) -> str | None:
        match = re.search(rf"(?im)^[\s*#>-]*{label}\s*[:\-–]\s*(.+)$", text)
        if not match:
            return None
        value = match.group(1).strip().strip("*\"'` ").strip()
        return value or None

    domain, outline = grab("domain"), grab("outline")
    if domain and (len(domain) > 80 or len(domain.split()) > 10):
        domain = None
    if outline and (len(outline) > 400 or len(outline.split()) < 3):
        outline = None
    return domain, outline


def parse_questions(text: str) -> list[str]:
    """Questions from a numbered/bulleted reply; keeps distinct lines that ask something."""
    found: list[str] = []
    for raw in re.split(r"\n+|(?<=\?)\s+(?=\d+[.)]\s)", text):
        line = re.sub(r"^\s*(?:\d+[.)]|[-*•]|Q\d*[:.)]|Question\s*\d*[:.)])\s*", "", raw).strip().strip("*\"")
        if "?" not in line:
            continue
        line = line[: line.index("?") + 1].strip()
        if not 10 <= len(line) <= 300 or line.lower().startswith(("excerpt", "questions")):
            continue
        if line.lower() not in {q.lower() for q in found}:
            found.append(line)
    return found


def draft_icl(markdown: str, source: str, sha256: str, client: Any, tokenizer: Any, *,
              given: Mapping[str, str] | None = None, max_tokens: int = 256, temperature: float = 0.2) -> IclFields:
    """Teacher-drafted ICL fields for one document (given values win and are not asked for)."""
    from ktools.llm.types import SamplingParams
    from ktools.prompts import load_prompt

    given = dict(given or {})
    values: dict[str, str] = {}
    origin: dict[str, str] = {}
    notes: list[str] = []
    failed: list[str] = []
    params = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=0)
    model = getattr(client, "model", "") or ""

    def ask(messages: list[dict[str, str]], what: str) -> str:
        try:
            result = client.chat(messages, params)
            return result.choices[0].text if result.choices else ""
        except Exception as exc:  # a failing teacher falls back, it does not stop the seed
            failed.append(what)
            notes.append(f"teacher failed for the {what} ({type(exc).__name__}: {exc}); used the fallback")
            log.warning("%s: %s", source, notes[-1])
            return ""

    fb_outline, fb_domain = fallback_outline(markdown, source)
    if "document_outline" not in given or "domain" not in given:
        blocks = [b for b in parse_blocks(markdown) if b.kind == "heading"]
        beginning = markdown[: 1500]
        reply = ask(load_prompt("seed_outline").render(title=blocks[0].title if blocks else source,
                                                     headings=_headings(markdown)[:40], beginning=beginning),
                    "outline")
        domain, outline = parse_outline_reply(reply)
        for key, value, fallback in (("domain", domain, fb_domain), ("document_outline", outline, fb_outline)):
            values[key], origin[key] = (value, "drafted") if value else (fallback, "fallback")
            if not value and reply:
                notes.append(f"could not use the teacher's {key} (reply: {reply[:120]!r}); used the fallback")

    if "icl_document" in given:
        values["icl_document"], heading = given["icl_document"], ""
        origin["icl_document"] = "given"
    else:
        values["icl_document"], heading = select_excerpt(markdown, tokenizer)
        origin["icl_document"] = "excerpt"
    if not all(q in given for q in QUERY_FIELDS):
        reply = ask(load_prompt("seed_queries").render(excerpt=values["icl_document"]), "questions")
        questions = parse_questions(reply)
        fallbacks = fallback_questions(values["icl_document"])
        for index, key in enumerate(QUERY_FIELDS):
            if index < len(questions):
                values[key], origin[key] = questions[index], "drafted"
            else:
                values[key], origin[key] = fallbacks[index], "fallback"
        if len(questions) < 3:
            notes.append(f"the teacher gave {len(questions)} usable question(s); the rest are built from the excerpt")
    for key, value in given.items():
        values[key], origin[key] = value, "given"
    return IclFields(values=values, origin=origin, source=source, sha256=sha256, model=model,
                     excerpt_heading=heading, notes=notes, teacher_failed=bool(failed))


class DraftCache:
    """`icl_drafts.json`: drafted ICL fields by source checksum (written after each draft)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = read_json(self.path) if self.path.is_file() else {}

    def get(self, sha256: str) -> IclFields | None:
        entry = self.entries.get(sha256)
        return IclFields.from_dict(entry) if entry else None

    def put(self, fields: IclFields) -> None:
        self.entries[fields.sha256] = fields.as_dict()
        write_json(self.path, self.entries)


# --- the seed rows and their validation --------------------------------------------

def given_fields(values: Mapping[str, str], source: str, where: str = "given ICL values") -> IclFields:
    """IclFields from user values only; every field must be there."""
    missing = [f for f in ICL_FIELDS if not values.get(f)]
    if missing:
        raise DocumentError(source, f"ICL mode 'given' but no value for {', '.join(missing)}",
                            f"give them in {where} (notebook parameters, an ICL YAML file, or "
                            f"{Path(source).stem}.icl.yaml beside the document), or use ICL mode 'teacher'",
                            field=missing[0])
    return IclFields(values={f: values[f] for f in ICL_FIELDS}, origin=dict.fromkeys(ICL_FIELDS, "given"),
                     source=source)


def seed_rows(chunk_rows: list[dict[str, Any]], icl_by_source: Mapping[str, IclFields]) -> list[dict[str, Any]]:
    rows = []
    for row in chunk_rows:
        icl = icl_by_source.get(row["source"])
        rows.append({**row, **({f: icl.values.get(f, "") for f in ICL_FIELDS} if icl else {})})
    return rows


def validate_seed(rows: list[dict[str, Any]], icl_by_source: Mapping[str, IclFields] | None = None,
                  ) -> list[SeedProblem]:
    """Every problem with (1-based record, chunk_id, field). Checks: chunk and ICL fields
    present and non-empty; chunk_id unique; queries are questions, distinct, and come
    with their icl_document (given together with it, or drafted from that excerpt)."""
    problems: list[SeedProblem] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        chunk_id = str(row.get("chunk_id", ""))

        def bad(field_name: str, problem: str) -> None:
            problems.append(SeedProblem(number, chunk_id, field_name, problem))  # noqa: B023

        for key in (*CHUNK_FIELDS, *ICL_FIELDS):
            if key not in row:
                bad(key, "missing")
            elif key in ("document", *ICL_FIELDS) and not str(row[key]).strip():
                bad(key, "empty")
        if chunk_id in seen:
            bad("chunk_id", f"duplicate of record {seen[chunk_id]}")
        seen.setdefault(chunk_id, number)
        queries = [str(row.get(q, "")).strip() for q in QUERY_FIELDS]
        for key, query in zip(QUERY_FIELDS, queries, strict=True):
            if query and not query.rstrip().endswith("?"):
                bad(key, "not a question (must end with '?')")
        if len({q.lower() for q in queries if q}) < len([q for q in queries if q]):
            bad("icl_query_1", "the three ICL queries are not distinct")
        icl = (icl_by_source or {}).get(row.get("source", ""))
        if icl is not None:
            doc_origin = icl.origin.get("icl_document")
            for key in QUERY_FIELDS:
                q_origin = icl.origin.get(key)
                if q_origin == "given" and doc_origin != "given":
                    bad(key, "query was given but icl_document was not: queries must come with the excerpt "
                             "they are answered from (give icl_document too)")
                if q_origin in ("drafted", "fallback") and doc_origin not in ("excerpt", "given"):
                    bad(key, f"query drafted without an icl_document (origin {doc_origin!r})")
    return problems
