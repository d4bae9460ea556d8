"""Questions written by rule from a sentence and one of its fact spans.

The sentence becomes a question by putting a question phrase where the fact stood
("… appointed on 4 January 2022." → "… appointed on which date?"), prefixed with the
document (and section) it is about, so the question stands alone. Crude English, but
always answerable from the document, with an answer that occurs in it verbatim; used
for the corpus exam and, on other sentences, for the `fact_qa` training view.
"""

from __future__ import annotations

import re

from ktools.knowledge.facts import FactSpan, Sentence

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


