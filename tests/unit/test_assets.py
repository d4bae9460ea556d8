"""The sample document, its renderings and the exams are consistent with each other.

The exam is the yardstick of steps 01 and 06, so a key fact that is not in the document,
or a section that names no heading, would silently corrupt every evaluation.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SAMPLE = ASSETS / "sample"
MARKDOWN = SAMPLE / "sample_document.md"
EXAM = SAMPLE / "exam.jsonl"
GENERAL = ASSETS / "general_questions.jsonl"

EXAM_FIELDS = ("id", "question", "answer", "section", "kind", "key_facts")

# Sentences from different parts of the document that every rendering must carry.
KNOWN_SENTENCES = (
    "The current Chief Executive is Odalys Brennerfeld, appointed on 4 January 2022.",
    "Tidecard credit expires 24 months after the last top-up.",
    "Masters and officers complete refresher training in bridge resource management every 5 years.",
    "The Festival Coordinator for the Authority is Corentin Delahaye-Mosse.",
)
# One cell from each of two tables, and a line of the fenced code block.
KNOWN_TABLE_CELLS = ("OC 1,940", "0800 551 960")
KNOWN_CODE_LINE = "REQUEST ASSISTANCE FROM ORLENMOOR COASTGUARD"


def normalise(text: str) -> str:
    """Lower case, markdown emphasis removed, any whitespace run as one space."""
    return re.sub(r"\s+", " ", text.replace("*", "")).strip().lower()


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                pytest.fail(f"{path.name}:{number}: not valid JSON ({exc})")
    return rows


@pytest.fixture(scope="module")
def markdown() -> str:
    return MARKDOWN.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def headings(markdown: str) -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.+)$", markdown, re.MULTILINE)}


@pytest.fixture(scope="module")
def exam() -> list[dict]:
    return read_jsonl(EXAM)


def test_document_length_is_in_range(markdown: str) -> None:
    words = len(markdown.split())
    assert 4000 <= words <= 8000, f"{MARKDOWN.name} has {words} words; the brief asks for 4,000-8,000"


def test_document_has_heading_levels_tables_lists_and_code(markdown: str) -> None:
    for level in ("# ", "## ", "### "):
        assert re.search(rf"^{level}\S", markdown, re.MULTILINE), f"no '{level.strip()}' heading"
    assert markdown.count("\n|---") >= 5, "expected several markdown tables"
    assert re.search(r"^1\. ", markdown, re.MULTILINE) and re.search(r"^- ", markdown, re.MULTILINE)
    assert "```" in markdown


def test_exam_shape(exam: list[dict]) -> None:
    assert len(exam) >= 60
    for row in exam:
        missing = [name for name in EXAM_FIELDS if not row.get(name)]
        assert not missing, f"{EXAM.name} row {row.get('id')}: missing or empty {missing}"
        assert row["kind"] in ("lookup", "two_fact"), f"{row['id']}: unknown kind {row['kind']!r}"
        assert isinstance(row["key_facts"], list) and 1 <= len(row["key_facts"]) <= 3, row["id"]
    ids = [row["id"] for row in exam]
    assert len(ids) == len(set(ids)), "duplicate exam ids"
    assert all(re.fullmatch(r"q\d{3}", i) for i in ids)
    assert sum(row["kind"] == "two_fact" for row in exam) >= 15


def test_exam_key_facts_occur_in_document_and_reference_answer(exam: list[dict], markdown: str) -> None:
    document = normalise(markdown)
    for row in exam:
        for fact in row["key_facts"]:
            assert normalise(fact) in document, f"{row['id']}: key fact {fact!r} is not in {MARKDOWN.name}"
            assert normalise(fact) in normalise(row["answer"]), (
                f"{row['id']}: key fact {fact!r} is missing from its own reference answer"
            )


def test_exam_sections_name_real_headings(exam: list[dict], headings: set[str]) -> None:
    for row in exam:
        parts = row["section"].split(" + ")
        for part in parts:
            assert part in headings, f"{row['id']}: section {part!r} is not a heading of {MARKDOWN.name}"
        if row["kind"] == "two_fact":
            assert len(parts) == 2, f"{row['id']}: a two_fact question cites two headings joined by ' + '"


def test_exam_covers_the_whole_document(exam: list[dict]) -> None:
    chapters = {
        re.match(r"(\d+|Annex)", part).group(1)
        for row in exam
        for part in row["section"].split(" + ")
        if re.match(r"(\d+|Annex)", part)
    }
    assert {str(n) for n in range(1, 15)} | {"Annex"} <= chapters


def test_general_questions(headings: set[str]) -> None:
    rows = read_jsonl(GENERAL)
    assert len(rows) >= 12
    for row in rows:
        assert all(row.get(name) for name in EXAM_FIELDS), row
        assert row["section"] == "general" and row["kind"] == "general"
        assert all(normalise(fact) in normalise(row["answer"]) for fact in row["key_facts"]), row["id"]
    assert len({row["id"] for row in rows}) == len(rows)
    assert len({normalise(row["question"]) for row in rows}) == len(rows)


def test_no_general_question_is_trained_on_as_replay() -> None:
    # Step 04 trains on the base student's answers to the replay prompts: a general question among
    # them, or a near-copy of one, would measure what replay repeated, not what fine-tuning kept.
    # Near-copy by step 04's own leak rule (same text, containment, or >= 0.6 of word 3-shingles shared):
    # "What is the capital of Italy?" against "...of France?" was one, and is no longer replayed.
    from ktools.knowledge.exam import find_leaks

    general = [{"id": row["id"], "question": row["question"]} for row in read_jsonl(GENERAL)]
    prompts = [row["prompt"] for row in read_jsonl(ASSETS / "replay_prompts.jsonl")]
    assert len(prompts) >= 100
    assert not {normalise(p) for p in prompts} & {normalise(g["question"]) for g in general}
    assert find_leaks(general, prompts) == []


def _assert_contains_known_text(text: str, name: str) -> None:
    flat = normalise(text)
    for sentence in (*KNOWN_SENTENCES, *KNOWN_TABLE_CELLS, KNOWN_CODE_LINE):
        assert normalise(sentence) in flat, f"{name} lacks {sentence!r}"


def test_html_rendering_has_article_and_boilerplate() -> None:
    bs4 = pytest.importorskip("bs4")
    soup = bs4.BeautifulSoup((SAMPLE / "sample_document.html").read_text(encoding="utf-8"), "html.parser")
    for tag in ("nav", "header", "aside", "footer", "main", "article"):
        assert soup.find(tag) is not None, f"sample_document.html has no <{tag}>"
    article = soup.find("article")
    assert article.find("table") and article.find("pre").find("code") and article.find("h3")
    _assert_contains_known_text(article.get_text(" "), "sample_document.html <article>")
    boilerplate = " ".join(soup.find(t).get_text(" ") for t in ("nav", "aside", "footer"))
    assert "Polski" in boilerplate and "Cookies" in boilerplate
    assert "Polski" not in article.get_text(" ")


def test_pdf_rendering_has_text_layer() -> None:
    pypdf = pytest.importorskip("pypdf")
    path = SAMPLE / "sample_document.pdf"
    assert path.stat().st_size < 500_000
    reader = pypdf.PdfReader(path)
    assert len(reader.pages) >= 5
    _assert_contains_known_text("\n".join(page.extract_text() for page in reader.pages), path.name)


def test_docx_rendering_has_styles_lists_and_tables() -> None:
    docx = pytest.importorskip("docx")
    path = SAMPLE / "sample_document.docx"
    assert path.stat().st_size < 500_000
    document = docx.Document(path)
    styles = {p.style.name for p in document.paragraphs}
    assert {"Heading 1", "Heading 2", "Heading 3", "List Bullet", "List Number"} <= styles
    assert len(document.tables) >= 5
    cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    text = "\n".join([p.text for p in document.paragraphs] + cells)
    _assert_contains_known_text(text, path.name)


def test_renderings_are_up_to_date_with_the_markdown(monkeypatch) -> None:
    """The committed renderings equal what build_renderings.py makes from the markdown now."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_renderings", SAMPLE / "build_renderings.py")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while it executes.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    blocks = module.parse_markdown(MARKDOWN.read_text(encoding="utf-8"))
    assert module.render_html(blocks) == (SAMPLE / "sample_document.html").read_text(encoding="utf-8"), (
        "sample_document.html is stale: run python assets/sample/build_renderings.py"
    )
    # DOCX bytes depend on the python-docx version; its text must match, not its bytes.
    docx = pytest.importorskip("docx")
    fresh = docx.Document(io.BytesIO(module.render_docx(blocks)))
    committed = docx.Document(SAMPLE / "sample_document.docx")
    assert [p.text for p in fresh.paragraphs] == [p.text for p in committed.paragraphs], (
        "sample_document.docx is stale: run python assets/sample/build_renderings.py"
    )
