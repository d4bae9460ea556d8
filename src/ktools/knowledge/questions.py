"""Questions written by rule from a sentence and one of its fact spans.

The sentence becomes a question by putting a question phrase where the fact stood
("… appointed on 4 January 2022." → "… appointed on which date?"), prefixed with the
document (and section) it is about, so the question stands alone. Crude English, but
always answerable from the document, with an answer that occurs in it verbatim; used
for the corpus exam and, on other sentences, for the `fact_qa` training view.

Plain questions, the way people ask (the `plain_qa` view), where the sentence's form allows
one without a parser: a table cell ("what is the distance of Route K1?") and a sentence
"The X is Y" ("who is the current Chief Executive?").
"""

from __future__ import annotations

import re

from ktools.knowledge.facts import FactSpan, Sentence, fact_spans

_WH = {"date": "which date", "time": "what time", "money": "what amount", "code": "which reference",
       "name": "which name", "number": "what number"}
_QUANTITY = re.compile(r"^\s*[\d.,]+(?:\s?[-–]\s?[\d.,]+)?\s*(?P<unit>.+)$")


def short_title(title: str) -> str:
    """How rows name the document: its title, without a long subtitle.

    The name is repeated in every restated sentence and question, so each word of it
    costs hundreds of training tokens; "Orlenmoor Estuary Ferry Authority: Operating
    Regulations for Passenger and Vehicle Services" becomes "Orlenmoor Estuary Ferry
    Authority" (the part before the colon), which still names the entity in full."""
    title = title.strip().rstrip(".")
    for sep in (":", " — ", " – ", " - "):
        head = title.split(sep, 1)[0].strip()
        if sep in title and len(head.split()) >= 2 and len(title.split()) > 8:
            return head
    return title


def wh_phrase(span: FactSpan) -> str:
    if span.kind == "quantity":
        match = _QUANTITY.match(span.text)
        unit = match.group("unit").strip() if match else ""
        return f"how many {unit}" if unit else "how many"
    return _WH.get(span.kind, "what")


def rule_question(sentence: Sentence, span: FactSpan, title: str) -> str:
    """The sentence as a question asking for `span` in place ("… is which name?")."""
    text = sentence.text[: span.start] + wh_phrase(span) + sentence.text[span.end:]
    text = text.rstrip(" .;:!")
    where = f"the {short_title(title)}"
    if sentence.section and sentence.section != title:
        where += f" (section {sentence.section})"
    return f"According to {where}, {text[:1].lower() + text[1:] if _lowerable(text) else text}?"


def _lowerable(text: str) -> bool:
    first = text.split(" ", 1)[0]
    return first[:1].isupper() and first[1:].islower() and first in {
        "The", "A", "An", "These", "This", "They", "It", "Each", "Every", "All", "No", "When", "If", "Where"}


# Headers that do not read as "the <header> of <row>" ("the between of Route K1"): a last
# word that is a preposition or a participle; codes and acronyms ("K4", "OC") likewise.
_IRREGULAR_PARTICIPLES = {"made", "held", "paid", "kept", "built", "sold", "run", "set", "put", "sent", "done",
                          "found", "met", "left", "told", "brought", "bought", "laid", "led", "read", "shut", "spent",
                          "lit"}
_NOT_NOUN_ENDINGS = {"between", "from", "to", "until", "till", "above", "below", "at", "of", "in", "on", "by",
                     "for", "with", "per", "via", "if", "or"} | _IRREGULAR_PARTICIPLES


def column_phrase(header: str) -> str | None:
    """A column header as it reads in "what is the <phrase> of <row>?" ("Scheduled crossing
    time" → "scheduled crossing time"), or None where it does not read as a noun phrase."""
    header = header.strip()
    words = header.split()
    if not words or any(ch.isdigit() for ch in header) or header.isupper():
        return None
    last = words[-1].lower().strip("()")
    if last in _NOT_NOUN_ENDINGS or (last.endswith("ed") and len(last) > 4):
        return None
    first, rest = words[0], words[1:]
    if first[:1].isupper() and first[1:].islower() and all(w == w.lower() for w in rest):
        return " ".join([first.lower(), *rest])
    return header


# "The X is Y" with a determiner subject and no clause in it; Y must hold a fact. Passives
# ("is published at least 56 days …") and subjects that are clauses are not questions of that kind.
_COPULA = re.compile(r"^(?P<subject>(?:The|the|An?|Each|Its|Their)\s+[^,;:]{3,80}?)\s+(?P<verb>is|are)\s+"
                     r"(?P<predicate>.+)$")
_CLAUSE_WORDS = re.compile(r"\b(?:must|may|shall|will|can|should|if|when|whose|which|that|who|where|is|are|was|"
                           r"were)\b", re.IGNORECASE)


# Irregular participles (passives: "is made within 5 minutes") and words that start a property.
_NOT_WHAT_IT_IS = _IRREGULAR_PARTICIPLES | {"not", "also", "only", "responsible", "subject", "liable", "able",
                                            "entitled", "open", "closed"}


def _section_of(sentence: Sentence, where: str) -> str:
    return f" (section {sentence.section})" if sentence.section and sentence.section != where else ""


def copula_question(sentence: Sentence, where: str) -> tuple[str, str] | None:
    """("what is the X?" question, key fact) for a sentence "The X is Y" whose Y holds a fact."""
    if sentence.from_table:
        return None
    match = _COPULA.match(sentence.text)
    if not match or _CLAUSE_WORDS.search(match.group("subject")):
        return None
    predicate = match.group("predicate")
    first = predicate.split(" ", 1)[0].lower().strip(",.")
    if first.endswith("ed") or first.endswith("en") or first in _NOT_WHAT_IT_IS:
        return None  # passive or a property, not what the subject *is*
    spans = fact_spans(predicate)
    if not spans:
        return None
    subject = match.group("subject")
    subject = subject[:1].lower() + subject[1:] if subject.split(" ", 1)[0] in {"The", "An", "A", "Each"} else subject
    wh = "who" if spans[0].kind == "name" and predicate.startswith(spans[0].text) else "what"
    return f"In the {where}{_section_of(sentence, where)}, {wh} {match.group('verb')} {subject}?", spans[0].text


def table_questions(sentence: Sentence, where: str) -> list[tuple[str, str, str, str]]:
    """(column, question, answer, key fact) for each cell of a table-row sentence."""
    if not (sentence.from_table and sentence.row_label and sentence.cells):
        return []
    section = _section_of(sentence, where)
    label = sentence.row_label
    out = []
    for header, cell in sentence.cells:
        column = column_phrase(header)
        if column:
            question = f"In the {where}{section}, what is the {column} of {label}?"
            answer = f"The {column} of {label} is {cell}."
        else:
            question = f"In the {where}{section}, what is given under {header} for {label}?"
            answer = f"Under {header}, {label} has {cell}."
        out.append((header, question, answer, cell))
    return out
