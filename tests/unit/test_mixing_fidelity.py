"""Step 04 drops step-03 rows that state numbers or names their chunk does not contain."""

from __future__ import annotations

from ktools.mixing.fidelity import drop_invented, names, numbers
from ktools.mixing.load import SUMMARY_GENERATORS

CHUNK = ("Route K1 runs every 30 minutes between 06:00 and 22:00. The fare is 1,200 crowns. "
         "Tickets are sold at Kesterholm Terminal; the regulations are kept by the harbourmaster.")


def row(question, response, document=CHUNK, chunk="c1"):
    return {"question": question, "response": response, "document": document, "raw_document": CHUNK,
            "chunk_id": chunk, "source": "ferry.md", "document_outline": "Ferry regulations", "domain": "transport"}


def test_numbers_and_names_are_read_as_a_reader_would():
    assert numbers("runs at 06:00, costs 1,200 crowns or 3.5 euros") == {"06", "00", "1200", "35"}
    # Sentence-initial capitals and list items are not names; mid-sentence ones are.
    assert names("The ferry stops at Brannock Quay. Then it returns.\n- Masters must log it") == {"brannock", "quay"}


def test_invented_specifics_are_dropped_and_faithful_rows_kept():
    datasets = {
        "document_based_qa": [
            row("How often does Route K1 run?", "Every 30 minutes, between 06:00 and 22:00."),
            row("What is the fare?", "It is 1200 crowns."),                   # same number, other grouping
            row("What is the fare?", "The fare is 1,500 crowns."),            # invented number
            row("Who keeps the regulations?", "The Harbourmaster at Kesterholm Terminal."),  # case differs: fine
            row("Where are tickets sold?", "At the Midnight Barrack office run by Keswick Rail."),  # names invented
        ],
        "detailed_summary": [
            row("What does the summary say?", "Route K1 runs every 30 minutes.",
                document="Route K1 runs every 30 minutes from Keswick in Kent since 2019."),  # summary invents
        ],
    }
    kept, report = drop_invented(datasets, SUMMARY_GENERATORS)
    assert [r["response"] for r in kept["document_based_qa"]] == [
        "Every 30 minutes, between 06:00 and 22:00.", "It is 1200 crowns.", "The Harbourmaster at Kesterholm Terminal."]
    assert kept["detailed_summary"] == []
    assert report.checked == {"document_based_qa": 5, "detailed_summary": 1}
    assert report.dropped == {"document_based_qa": 2, "detailed_summary": 1}
    invented = {tuple(e["invented_numbers"]) for e in report.examples}
    assert ("1500",) in invented and ("2019",) in invented
    assert any({"midnight", "barrack"} <= set(e["invented_names"]) for e in report.examples)


def test_one_invented_name_is_tolerated():
    kept, report = drop_invented({"document_based_qa": [row("Where?", "At the terminal in Orlenmoor.")]},
                                 SUMMARY_GENERATORS)
    assert len(kept["document_based_qa"]) == 1 and not report.dropped


def test_answers_that_say_nothing_are_dropped_and_short_real_answers_kept():
    # The embedded teacher's scaffolding-only answers (sample document, run f3's step 03).
    empty = ["Answer:", "The answer is:", "The Fact: The", "The", "**Answer:**"]
    real = ["Red.", "Yes", "30", "06:00", "Kesterholm Terminal", "It is 1200 crowns."]
    datasets = {"key_facts_to_qa": [row("What does the ferry regulation say?", text) for text in empty + real]}
    kept, report = drop_invented(datasets, SUMMARY_GENERATORS)
    assert [r["response"] for r in kept["key_facts_to_qa"]] == real
    assert report.dropped == {"key_facts_to_qa": len(empty)} and report.checked == {"key_facts_to_qa": 11}
    assert {e["reason"] for e in report.examples} == {"the answer says nothing"}
