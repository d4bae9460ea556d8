"""ktools.knowledge: fact spans, the views' rows and loss masks, the corpus exam and its leak check,
and step 04 with the knowledge components on a real (small) document."""

from __future__ import annotations

import json

import pytest

from ktools.io import read_jsonl, write_jsonl
from ktools.knowledge.exam import build_exam, find_leaks, rule_question
from ktools.knowledge.facts import best_span, defined_terms, document_facts, fact_spans, sentences
from ktools.knowledge.questions import short_title
from ktools.knowledge.views import TEXT_VIEWS, build_view_rows, sentence_key
from ktools.mixing import MixOptions, build_mixes
from ktools.paths import OutputPaths
from ktools.testing.synthetic_generated import SyntheticShape, write_synthetic_step03

DOC = """# Harbour Board of Quillmouth: Berthing Rules for Visiting Vessels and Yachts

These Rules are issued by the Harbour Board of Quillmouth (HBQ). They apply from 1 April 2026.

## 1. Officers

The Harbourmaster is Marta Ellingsen, appointed on 12 June 2023. The Deputy Harbourmaster is Joss Arendel.
The Board meets on the second Monday of each month at 18:30.

## 2. Definitions

- **Visitor berth** means a berth on pontoon C reserved for visiting yachts.
- **Night rate** means the fee for a stay between 20:00 and 08:00.

## 3. Fees

A visiting yacht pays 2.40 per metre per night. Vessels longer than 24 metres must book 48 hours ahead.
The maximum stay at a visitor berth is 14 nights in any 30 days.

| Berth | Depth | Max length |
|---|---|---|
| C1 | 3.5 metres | 12 metres |
| C2 | 4.0 metres | 18 metres |

## 4. Conduct

Engines may not run alongside between 22:00 and 07:00. Fuel is sold at the north quay by Tarrow Marine Services.
Complaints are handled by the HBQ office on the east quay. Dogs must be kept on a lead on every pontoon. Swimming in the harbour is forbidden at all times.
Waste oil goes to the collection point at berth C9, which is emptied every 7 days by Brevik Recycling.
"""


@pytest.fixture(scope="module")
def facts():
    return document_facts(DOC, "rules.md")


def test_sentences_tables_and_headings(facts):
    title, found = sentences(DOC)
    assert title.startswith("Harbour Board of Quillmouth")
    texts = [s.text for s in found]
    assert "The Harbourmaster is Marta Ellingsen, appointed on 12 June 2023." in texts
    # A table row is read with its column names, under its section.
    row = next(s for s in found if s.from_table and s.text.startswith("Berth C2"))
    assert row.text == "Berth C2: Depth 4.0 metres; Max length 18 metres." and row.section == "3. Fees"
    assert all("**" not in t for t in texts)


def test_fact_spans_and_terms():
    kinds = {s.text: s.kind for s in fact_spans("The Harbourmaster is Marta Ellingsen, appointed on 12 June 2023.")}
    assert kinds == {"Marta Ellingsen": "name", "12 June 2023": "date"}
    assert {s.kind for s in fact_spans("Vessels longer than 24 metres must book 48 hours ahead.")} == {"quantity"}
    assert best_span("The Board meets at 18:30.").text == "18:30"
    assert [s.text for s in fact_spans("It costs OC 5.00, see OEFA-REG-009.")] == ["OC 5.00", "OEFA-REG-009"]
    assert defined_terms(DOC) == {"Visitor berth": "a berth on pontoon C reserved for visiting yachts",
                                  "Night rate": "the fee for a stay between 20:00 and 08:00",
                                  "HBQ": "Harbour Board of Quillmouth"}
    assert short_title("Harbour Board of Quillmouth: Berthing Rules for Visiting Vessels and Yachts") == \
        "Harbour Board of Quillmouth"


def test_fact_spans_in_typeset_public_documents():
    """Seen in the Federal Register: "9 a.m." read as "9 a" (amperes), codes joined by en dashes."""
    assert [s.text for s in fact_spans("Open between 9 a.m. and 5 p.m., Monday through Friday.")] == ["9 a.m", "5 p.m"]
    assert best_span("Include Docket No. FAA–2020–0686 in your comments.").text == "FAA–2020–0686"
    assert [s.kind for s in fact_spans("A fuse of 9 A; a fee of 9 a day.")] == ["quantity"]


def test_exam_asks_each_key_fact_once():
    text = "# Office hours\n\n" + "\n\n".join(
        f"## Office {name}\n\nThe {name} office opens to visitors at 9 a.m. on weekdays. "
        f"Its manager is {person}, who took office in {year}."
        for name, person, year in zip(["North", "South", "East", "West", "Upper", "Lower", "Inner", "Outer",
                                       "Harbour", "River", "Market", "Castle"],
                                      ["Ada Brisk", "Ben Cole", "Cai Dorn", "Dee Ember", "Eli Frost", "Fay Gale",
                                       "Gus Hale", "Hal Irons", "Ivy Jute", "Jon Keel", "Kit Lark", "Lou Mast"],
                                      range(2001, 2013), strict=True))
    exam = build_exam({"offices.md": document_facts(text, "offices.md")}, share=0.49, min_per_source=6)
    answers = [i.answer.casefold() for i in exam.items]
    # 8 questions from 24 sentences, half of which share "9 a.m.": that one is asked once.
    assert len(answers) == 8 and len(answers) == len(set(answers)) and answers.count("9 a.m") == 1


def _chunks(text: str = DOC) -> list[dict]:
    parts = text.split("\n## ")
    return [{"document": (p if i == 0 else "## " + p), "source": "rules.md", "chunk_id": f"rules-{i:04d}",
             "heading_path": []} for i, p in enumerate(parts)]


def test_views_rows_and_held_out_sentences(facts):
    held = next(s for s in facts.sentences if "Marta Ellingsen" in s.text)
    rows = build_view_rows(facts, _chunks(), held_out={sentence_key("rules.md", held.text)})
    assert set(rows) == {"raw_text", "restatement", "shuffled", "cloze", "fact_qa", "about", "plain_qa"}
    for view, items in rows.items():
        assert items, view
        assert all(r.unmask == (view in TEXT_VIEWS) for r in items), view
    # The held-out sentence is read (text views) but never quizzed (question views).
    assert any("Marta Ellingsen" in r.answer for r in rows["restatement"])
    assert any("Marta Ellingsen" in r.answer for r in rows["shuffled"])
    assert not any("Marta Ellingsen" in r.prompt + r.answer for v in ("cloze", "fact_qa", "about", "plain_qa")
                   for r in rows[v])
    # A restatement names the document and expands the document's own abbreviations and terms.
    restated = " ".join(r.answer for r in rows["restatement"])
    assert "According to the Harbour Board of Quillmouth, section 3. Fees:" in restated
    assert "the HBQ (Harbour Board of Quillmouth) office on the east quay" in restated
    assert "a berth on pontoon C reserved for visiting yachts" in next(
        r.answer for r in rows["restatement"] if "maximum stay" in r.answer)
    cloze = next(r for r in rows["cloze"] if r.key_fact == "Tarrow Marine Services")
    assert "____" in cloze.prompt and "Tarrow Marine Services" not in cloze.prompt
    assert cloze.answer == "Fuel is sold at the north quay by Tarrow Marine Services."  # the whole sentence
    fact_qa = next(r for r in rows["fact_qa"] if r.key_fact == "Tarrow Marine Services")
    assert fact_qa.prompt.endswith("by which name?") and fact_qa.answer == cloze.answer
    about = next(r for r in rows["about"] if r.prompt.endswith("about Brevik Recycling?"))
    assert "berth C9" in about.answer
    record = cloze.record("harbours")
    assert record["messages"][0]["role"] == "user" and record["metadata"]["generator"] == "cloze"
    assert record["unmask"] is False and record["metadata"]["key_fact"] == "Tarrow Marine Services"


def test_table_questions_ask_each_cell_plainly_and_skip_held_out_rows(facts):
    every = build_view_rows(facts, _chunks(), views=("plain_qa",))["plain_qa"]
    rows = [r for r in every if "Berth" in r.prompt]
    by_question = {r.prompt: r for r in rows}
    assert len(rows) == 4  # two berths x two columns
    depth = by_question["In the Harbour Board of Quillmouth (section 3. Fees), what is the depth of Berth C2?"]
    assert depth.answer == "The depth of Berth C2 is 4.0 metres." and depth.key_fact == "4.0 metres"
    assert depth.unmask is False and depth.record()["metadata"]["generator"] == "plain_qa"
    assert "what is the max length of Berth C1?" in " ".join(by_question)
    # Every answer holds its key fact verbatim, as the document writes it.
    assert all(r.key_fact in r.answer and r.key_fact in DOC for r in rows)
    held = next(s for s in facts.sentences if s.text.startswith("Berth C2"))
    kept = build_view_rows(facts, _chunks(), views=("plain_qa",), held_out={sentence_key("rules.md", held.text)})
    assert [r.prompt for r in kept["plain_qa"] if "Berth" in r.prompt] == [r.prompt for r in rows if "C1" in r.prompt]
    # Sentences "The X is Y" are asked about too ("who is the Harbourmaster?").
    assert {r.key_fact for r in every if r not in rows} >= {"Marta Ellingsen", "Joss Arendel"}


@pytest.mark.parametrize("header, phrase", [
    ("Scheduled crossing time", "scheduled crossing time"), ("Depth", "depth"), ("Max length", "max length"),
    ("Between", None), ("Built", None), ("Vehicles carried", None), ("K4", None), ("OC", None),
    ("Suspended at or above", None), ("Tidecard balance", "tidecard balance"), ("VAT Rate", "VAT Rate"),
])
def test_column_headers_read_as_the_noun_of_a_question_or_not_at_all(header, phrase):
    from ktools.knowledge.questions import column_phrase

    assert column_phrase(header) == phrase


def test_a_header_that_is_not_a_noun_still_gets_a_question_that_names_it():
    from ktools.knowledge.questions import table_questions

    _, sample = sentences("# Fares\n\n| Ticket type | K4 |\n|---|---|\n| Adult passenger | OC 14.50 |\n")
    (_, question, answer, key_fact), = table_questions(sample[0], "Fares")
    assert question == "In the Fares, what is given under K4 for Ticket type Adult passenger?"
    assert answer == "Under K4, Ticket type Adult passenger has OC 14.50." and key_fact == "OC 14.50"


@pytest.mark.parametrize("text, question, key_fact", [
    ("The Harbourmaster is Marta Ellingsen, appointed on 12 June 2023.", "who is the Harbourmaster?",
     "Marta Ellingsen"),
    ("The maximum stay at a visitor berth is 14 nights in any 30 days.",
     "what is the maximum stay at a visitor berth?", "14"),
    ("The appeal fee is OC 20, which is refunded if the appeal succeeds.", "what is the appeal fee?", "OC 20"),
    ("The passenger safety announcement is made within 5 minutes of departure.", None, None),   # passive
    ("Each timetable is published at least 56 days before it takes effect.", None, None),      # passive
    ("The vessel that is late is held at 3 knots.", None, None),                                 # a clause
    ("The Board is responsible for 4 terminals.", None, None),                                   # a property
    ("The waiting room is warm.", None, None),                                                   # no fact
])
def test_plain_questions_from_sentences_that_say_what_something_is(text, question, key_fact):
    from ktools.knowledge.facts import Sentence
    from ktools.knowledge.questions import copula_question

    asked = copula_question(Sentence(text, ("Rules", "1. Officers")), "Rules")
    if question is None:
        assert asked is None
    else:
        assert asked == (f"In the Rules (section 1. Officers), {question}", key_fact)


def test_view_loss_masks(facts):
    from ktools.models import load_tokenizer
    from ktools.train.data import IGNORE_INDEX, tokenize_conversation

    tokenizer = load_tokenizer()
    rows = build_view_rows(facts, _chunks(), views=("raw_text", "cloze"))
    text = rows["raw_text"][0].record()
    example = tokenize_conversation(tokenizer, text["messages"], text["unmask"])
    assert example.labels == example.input_ids  # text views: loss on every token
    cloze = rows["cloze"][0].record()
    example = tokenize_conversation(tokenizer, cloze["messages"], cloze["unmask"])
    scored = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(scored).startswith(cloze["messages"][1]["content"])  # the answer (and end of turn)
    assert len(scored) < len(example.input_ids) // 3


def test_exam_without_teacher(facts):
    exam = build_exam({"rules.md": facts}, share=0.3, min_per_source=3)
    assert 3 <= len(exam.items) <= len(facts.sentences) // 3
    for item in exam.items:
        assert item.answer in DOC and item.key_facts == [item.answer]  # verbatim in the document
        assert item.question.endswith("?") and item.answer not in item.question
        assert item.written_by == "rule"
        if item.choices:
            assert len(set(item.choices)) == 4 and item.answer in item.choices
    assert len({i.section for i in exam.items}) >= 2  # spread over sections
    again = build_exam({"rules.md": facts}, share=0.3, min_per_source=3)
    assert [i.to_dict() for i in again.items] == [i.to_dict() for i in exam.items]  # seeded


def test_exam_with_teacher_rephrasing(facts):
    asked = []

    def teacher(question, sentence, answer):
        asked.append(answer)
        if len(asked) == 1:
            return f"Is the answer {answer}?"  # gives the answer away: refused
        if len(asked) == 2:
            return "Sure! Here is a question"  # not a question: refused
        return "What does the Harbour Board of Quillmouth's rule book say about this?"

    exam = build_exam({"rules.md": facts}, share=0.3, min_per_source=3, rephrase=teacher)
    assert len(asked) == len(exam.items)
    assert [i.written_by for i in exam.items][:2] == ["rule", "rule"]
    assert all(i.written_by == "teacher" for i in exam.items[2:])


def test_rule_question_form(facts):
    sentence = next(s for s in facts.sentences if "Marta Ellingsen" in s.text)
    span = next(s for s in fact_spans(sentence.text) if s.kind == "date")
    assert rule_question(sentence, span, facts.title) == (
        "According to the Harbour Board of Quillmouth (section 1. Officers), the Harbourmaster is Marta "
        "Ellingsen, appointed on which date?")


def test_leaks_by_text_and_by_fact():
    exam = [{"id": "e1", "question": "According to the rules, the Harbourmaster is which name?",
             "sentence_key": "k1"}]
    questions = ["according to the RULES, the harbourmaster is which name",      # same after normalising
                 "Who is the harbourmaster according to the rules?",             # different wording: kept
                 "Per the rules, the Harbourmaster is which name?",  # near-copy (5 of 8 shingles)
                 "What is the depth of berth C2?"]
    leaks = find_leaks(exam, questions, row_sentence_keys=[[], [], [], ["k1"]])
    reasons = {leak.row_index: leak.reason for leak in leaks}
    assert set(reasons) == {0, 2, 3}
    assert reasons[0] == "same question" and reasons[2].startswith("near-copy")
    assert reasons[3] == "question built from an exam sentence"


def _write_step02(out, text: str = DOC) -> None:
    converted = out / "step_02" / "converted"
    converted.mkdir(parents=True)
    (converted / "rules.md").write_text(text, encoding="utf-8")
    (converted / "manifest.json").write_text(json.dumps({"version": 1, "created": "", "errors": [], "documents": [
        {"source": "/docs/rules.md", "sha256": "0", "converter": "text", "output": "rules.md",
         "characters": len(text)}]}), encoding="utf-8")
    write_jsonl(out / "step_02" / "chunks.jsonl", _chunks(text))


def test_step04_with_knowledge_components(tmp_output):
    from ktools.models import load_tokenizer

    _write_step02(tmp_output)
    write_synthetic_step03(tmp_output, SyntheticShape(n_chunks=3, summaries_per_chunk=2), seed=1)
    paths = OutputPaths(tmp_output)
    # A step-03 question that copies the exam's wording must not reach training.
    options = MixOptions(cut_sizes=[1], eval_share=0.0, components=("raw_text", "restatement", "cloze", "about",
                                                                    "closed_book_qa"),
                         exam_share=0.3, seed=5, drop_invented=False)  # synthetic rows: random words
    report = build_mixes(options, paths, tokenizer=load_tokenizer(), progress=False)
    exam = read_jsonl(paths.corpus_exam)
    assert exam and report.knowledge["exam_items"] == len(exam)
    mix = read_jsonl(paths.training_mix(1))
    by_view = {}
    for row in mix:
        by_view.setdefault(row["metadata"]["generator"], []).append(row)
    assert {"raw_text", "restatement", "cloze", "about", "closed_book_qa", "key_facts_to_qa"} <= set(by_view)
    assert all(r["token_length"] > 0 for r in mix)
    assert not find_leaks(exam, [r["messages"][0]["content"] for r in mix])
    exam_facts = {e["sentence_key"] for e in exam}
    cloze_sources = {sentence_key("rules.md", r["messages"][0]["content"]) for r in by_view["cloze"]}
    assert not exam_facts & cloze_sources
    # The leak filter works on the real mix too: plant a copy of an exam question in step 03's data.
    gen = paths.generated("document_based_qa")
    rows = read_jsonl(gen)
    rows[0]["question"] = exam[0]["question"]
    write_jsonl(gen, rows)
    report = build_mixes(options, paths, tokenizer=load_tokenizer(), progress=False)
    assert any(leak["reason"] == "same question" for leak in report.knowledge["leaks"])
    assert not find_leaks(exam, [r["messages"][0]["content"] for r in read_jsonl(paths.training_mix(1))])


def test_step04_without_step02_chunks_mixes_step03_only(tmp_output):
    from ktools.models import load_tokenizer

    write_synthetic_step03(tmp_output, SyntheticShape(n_chunks=3, summaries_per_chunk=2), seed=1)
    report = build_mixes(MixOptions(cut_sizes=[1], components=("raw_text", "cloze")), OutputPaths(tmp_output),
                         tokenizer=load_tokenizer(), progress=False)
    assert any("knowledge views and corpus exam skipped" in n for n in report.notes)
    assert not OutputPaths(tmp_output).corpus_exam.exists()


def test_replay_uses_each_answer_once_and_says_when_the_share_is_not_filled(tmp_path, monkeypatch):
    from ktools.knowledge import components
    from ktools.knowledge.replay import replay_count

    assert replay_count(80, 0.2, 100) == 20 and replay_count(80, 0.2, 4) == 4 and replay_count(80, 0.0, 9) == 0
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(f'{{"id": "r{k}", "prompt": "General question {k}?"}}\n' for k in range(4)))
    monkeypatch.setattr(components, "replay_answers", lambda student, ps, cache, **kw: [
        {**p, "answer": f"What I already say about {p['id']}."} for p in ps])
    train = {"key_facts_to_qa": [{"question": f"q{k}", "response": "a"} for k in range(40)]}
    build = components.build_knowledge(tmp_path / "missing_chunks.jsonl", tmp_path / "manifest.json", train,
                                       components=("replay",), corpus_exam=False, exam_share=0.1,
                                       exam_max_per_source=10, replay_share=0.2, replay_prompts=prompts,
                                       replay_cache=tmp_path / "cache.json", student="student", seed=1)
    rows = build.rows["replay"]
    assert [r.answer for r in rows] == [f"What I already say about r{k}." for k in range(4)]  # each once
    assert all(r.view == "replay" and r.unmask is False for r in rows)
    assert any("general replay: 4 rows, fewer than 20% of the mix" in n for n in build.notes), build.notes


def test_replay_spreads_a_partial_share_over_the_whole_prompts_file(tmp_path, monkeypatch):
    from ktools.knowledge import components
    from ktools.knowledge.replay import spread

    ten = [{"id": f"r{k}", "prompt": f"p{k}"} for k in range(10)]
    assert [p["id"] for p in spread(ten, 5)] == ["r0", "r2", "r4", "r6", "r8"]
    assert spread(ten, 10) == ten and spread(ten, 30) == ten and spread(ten, 0) == []
    # Through step 04's builder: 2 rows of a 10-prompt file come from both halves, not the first two.
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in ten))
    asked: list[str] = []
    monkeypatch.setattr(components, "replay_answers", lambda student, ps, cache, **kw: [
        asked.append(p["id"]) or {**p, "answer": "a"} for p in ps])
    train = {"key_facts_to_qa": [{"question": f"q{k}", "response": "a"} for k in range(18)]}
    build = components.build_knowledge(tmp_path / "missing_chunks.jsonl", tmp_path / "manifest.json", train,
                                       components=("replay",), corpus_exam=False, exam_share=0.1,
                                       exam_max_per_source=10, replay_share=0.1, replay_prompts=prompts,
                                       replay_cache=tmp_path / "cache.json", student="student", seed=1)
    assert asked == ["r0", "r5"] and [r.item_id for r in build.rows["replay"]] == ["replay/r0", "replay/r5"]


def test_components_option_parsing():
    from ktools.knowledge.components import COMPONENTS
    from ktools.mixing.build import parse_components

    assert parse_components("all") == COMPONENTS and parse_components("none") == ()
    assert parse_components("-cloze,-replay") == tuple(c for c in COMPONENTS if c not in {"cloze", "replay"})
    with pytest.raises(ValueError, match="unknown mix component"):
        MixOptions(components=("clozes",)).validate()
    assert MixOptions().replace(components="raw_text,about").components == ("raw_text", "about")


def test_exam_rephrased_by_a_real_teacher_over_http(facts, tmp_path):
    """A non-embedded teacher (here the scripted OpenAI-compatible server) rewrites the rule
    questions through the real client; a rewrite that gives the answer away is not kept."""
    from ktools.config import load_settings
    from ktools.knowledge.rephrase import teacher_rephraser
    from ktools.testing.fake_openai import FakeOpenAIServer

    def responder(body, index):
        prompt = body["messages"][-1]["content"]
        answer = prompt.split("The answer must be exactly: ", 1)[1].split(". Do not include", 1)[0]
        if "Tarrow" in answer:
            return f"Which company, {answer}, sells fuel?"  # gives it away: refused
        return "What does the Harbour Board of Quillmouth's rule say on this point?"

    with FakeOpenAIServer(responder=responder) as server:
        settings = load_settings(environ={"TEACHER_PROVIDER": "vllm", "TEACHER_MODEL_BASE_URL": server.base_url,
                                          "TEACHER_MODEL_NAME": "fake-model"}, repo_root=tmp_path)
        rephrase = teacher_rephraser(settings)
        exam = build_exam({"rules.md": facts}, share=0.45, min_per_source=5, rephrase=rephrase)
        rephrase.close()
        assert len(server.requests) == len(exam.items)
    by_answer = {i.answer: i for i in exam.items}
    for item in exam.items:
        if item.answer == "Tarrow Marine Services":
            assert item.written_by == "rule"
        else:
            assert item.written_by == "teacher" and item.question.startswith("What does the Harbour Board")
    assert "Tarrow Marine Services" in by_answer  # the refused rewrite was really asked
    # The embedded teacher is never asked to rephrase.
    assert teacher_rephraser(load_settings(environ={}, repo_root=tmp_path)) is None


def test_step04_callers_have_a_real_teacher_rephrase_the_exam(tmp_output, tmp_path, monkeypatch):
    """`ktools mix` and the Kubeflow step-04 component run step 04 as notebook 04 does
    (`ktools.mixing.step.mixing_step`): with a real (non-embedded) teacher the corpus exam's
    rule questions are rephrased through it, and both build the same exam."""
    from ktools.cli import main
    from ktools.kubeflow import steps
    from ktools.testing.fake_openai import FakeOpenAIServer

    def responder(body, index):
        assert "Rewrite the quiz question" in body["messages"][-1]["content"]  # only the exam asks here
        return "What does the Harbour Board of Quillmouth's rule say on this point?"

    _write_step02(tmp_output)
    write_synthetic_step03(tmp_output, SyntheticShape(n_chunks=3, summaries_per_chunk=2), seed=1)
    paths = OutputPaths(tmp_output)
    with FakeOpenAIServer(responder=responder) as server:
        teacher = {"teacher_provider": "vllm", "teacher_base_url": server.base_url,
                   "teacher_model_name": "fake-model"}
        for name, value in zip(("TEACHER_PROVIDER", "TEACHER_MODEL_BASE_URL", "TEACHER_MODEL_NAME"),
                               teacher.values(), strict=True):
            monkeypatch.setenv(name, value)
        assert main(["mix", "--cut-sizes", "1", "--components", "raw_text,cloze", "--eval-share", "0",
                     "--keep-invented", "--json"]) == 0
        exam = read_jsonl(paths.corpus_exam)
        asked = len(server.requests)
        assert exam and asked == len(exam)
        assert any(item["written_by"] == "teacher" for item in exam)
        # The component gets the endpoint as pipeline parameters, not from the environment.
        for name in ("TEACHER_PROVIDER", "TEACHER_MODEL_BASE_URL", "TEACHER_MODEL_NAME"):
            monkeypatch.delenv(name)
        artifact = tmp_path / "step_04_artifact"
        steps.run_knowledge_mixing(paths.step(3), artifact, step_02_in=paths.step(2), cut_sizes="1",
                                   components="raw_text,cloze", eval_share=0.0, drop_invented=False, **teacher)
        assert len(server.requests) == 2 * asked
    assert read_jsonl(artifact / paths.corpus_exam.relative_to(paths.step(4))) == exam


def test_step04_checks_the_sample_exam_for_leaks_only_for_the_sample(tmp_path, repo_root):
    """Step 06 scores the sample's hand-written exam when the documents are the sample, so step
    04 drops training rows that copy its questions, as it does for a user's EXAM_PATH; and the
    views built from the sample copy none of them."""
    import hashlib

    from ktools.documents.manifest import Manifest, ManifestEntry
    from ktools.knowledge.exam import read_exam
    from ktools.mixing.build import sample_exam_for

    sample = repo_root / "assets" / "sample" / "sample_document.md"
    paths = OutputPaths(tmp_path / "output")
    paths.conversion_manifest.parent.mkdir(parents=True, exist_ok=True)

    def manifest_of(data: bytes) -> None:
        entry = ManifestEntry(source="doc.md", sha256=hashlib.sha256(data).hexdigest(), converter="text",
                              output="x.md", characters=len(data))
        Manifest(documents=[entry]).write(paths.conversion_manifest)

    manifest_of(sample.read_bytes())
    assert sample_exam_for(paths) == repo_root / "assets" / "sample" / "exam.jsonl"
    manifest_of(b"# A manual of someone else's\n")
    assert sample_exam_for(paths) is None

    exam = read_exam(repo_root / "assets" / "sample" / "exam.jsonl")
    views = build_view_rows(document_facts(sample.read_text(), "sample_document.md"), [])
    questions = [r.prompt for view in ("cloze", "fact_qa", "about", "plain_qa") for r in views[view]]
    assert len(questions) > 400 and find_leaks(exam, questions) == []
