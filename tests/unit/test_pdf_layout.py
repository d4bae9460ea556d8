"""PDF conversion reads generated pages as a person would: columns in order, furniture dropped,
words spaced from glyph positions, ligatures and hyphenation resolved, lost glyphs reported."""

from __future__ import annotations

import re

import pytest
from docfixtures import make_encrypted_pdf
from pdffixtures import (
    make_ligature_pdf,
    make_three_column_pdf,
    make_tight_type_pdf,
    make_two_column_pdf,
)

from ktools.documents.convert import convert_source
from ktools.documents.convert.pdf_text import drop_overprinted, join_hyphenated, row_words, vocabulary
from ktools.documents.errors import DocumentError


def flat(markdown: str) -> str:
    """Whitespace runs as one space: a sentence is intact whether or not a paragraph break split it."""
    return re.sub(r"\s+", " ", markdown)


def tables(markdown: str) -> int:
    return len(re.findall(r"^\|(?:---\|)+\s*$", markdown, flags=re.MULTILINE))


def test_two_columns_below_a_full_width_title_and_table_are_read_in_order(tmp_path):
    path, crossing = make_two_column_pdf(tmp_path / "two.pdf")
    markdown = convert_source(path).markdown
    assert crossing, "the fixture must have a sentence across the column break"
    for sentence in crossing:
        assert sentence in flat(markdown)
    assert markdown.index("# Estuary Ferry Operations") < markdown.index("| Route |") < markdown.index("(R-1)")
    assert "| K4 Marrow Point | 25 minutes | No |" in markdown   # the real table stays a table
    assert tables(markdown) == 1                                  # the columns do not become one
    assert markdown.index("(R-1).") < markdown.index("(R-12).") < markdown.index("(R-20).")


def test_three_columns_on_every_page_and_furniture_dropped(tmp_path):
    path, crossing, furniture = make_three_column_pdf(tmp_path / "three.pdf")
    doc = convert_source(path)
    text = flat(doc.markdown)
    assert len(crossing) >= 6
    for sentence in crossing:
        assert sentence in text
    for line in furniture:   # running header, footer and the rotated printer's mark
        assert line not in doc.markdown
    assert tables(doc.markdown) == 0
    rules = [int(n) for n in re.findall(r"\(R-(\d+)\)", doc.markdown)]
    assert rules == sorted(rules), "sentences out of reading order"
    assert doc.pages == 3 and len(doc.page_offsets) == 3


def test_letter_spaced_capitals_tight_words_and_hyphenation(tmp_path):
    markdown = convert_source(make_tight_type_pdf(tmp_path / "tight.pdf")).markdown
    assert "FOR FURTHER INFORMATION CONTACT" in markdown
    assert "a highly diverse set of tables" in markdown
    assert "is hiring two new deck officers" in markdown       # hir- / ing: neither half a word
    assert "Its well-known ferries" in markdown                # "well" is a word of the document
    assert "Every self-service kiosk" in markdown              # "service" is a word of the document


def test_ligatures_are_expanded(tmp_path):
    markdown = convert_source(make_ligature_pdf(tmp_path / "lig.pdf")).markdown
    assert "The first offline field test was finished on time." in markdown
    assert not re.search("[\ufb00-\ufb06]", markdown)


def test_unmapped_glyphs_flag_the_page_and_warn(tmp_path, caplog):
    doc = convert_source(make_ligature_pdf(tmp_path / "cid.pdf", unmapped=True))
    assert doc.unmapped_glyph_pages == [1]
    assert "(cid:" not in doc.markdown
    assert any("page(s) 1 lost text" in w and "cid.pdf" in w for w in doc.warnings)
    assert "lost text" in caplog.text
    clean = convert_source(make_ligature_pdf(tmp_path / "ok.pdf"))
    assert clean.unmapped_glyph_pages == [] and not clean.warnings


def test_unmapped_pages_reach_the_manifest(tmp_path):
    from ktools.documents.convert import convert_sources
    from ktools.documents.manifest import Manifest

    folder = tmp_path / "in"
    folder.mkdir()
    make_ligature_pdf(folder / "cid.pdf", unmapped=True)
    result = convert_sources(folder, tmp_path / "out", progress=False)
    entry = Manifest.read(result.manifest_path).documents[0]
    assert entry.unmapped_glyph_pages == [1] and any("lost text" in w for w in entry.warnings)


def test_password_opens_an_encrypted_pdf_and_a_wrong_one_says_how(tmp_path):
    path = make_encrypted_pdf(tmp_path / "locked.pdf", password="s3cret")
    assert "Harbour Operations Report" in convert_source(path, pdf_password="s3cret").markdown
    with pytest.raises(DocumentError, match=r"locked\.pdf: the PDF is password-protected and the password given"):
        convert_source(path, pdf_password="wrong")
    with pytest.raises(DocumentError, match=r"locked\.pdf: the PDF is password-protected.*--password.*PDF_PASSWORD"):
        convert_source(path)


def test_password_from_the_setting_and_the_cli(tmp_path, tmp_output, monkeypatch, capsys):
    from ktools.cli import main

    path = make_encrypted_pdf(tmp_path / "locked.pdf", password="s3cret")
    assert main(["convert-docs", str(path)]) == 1
    assert "--password" in capsys.readouterr().err
    assert main(["convert-docs", str(path), "--password", "s3cret"]) == 0
    monkeypatch.setenv("PDF_PASSWORD", "s3cret")
    assert main(["convert-docs", str(path)]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "locked_pdf.md" in out


def test_settings_mask_the_pdf_password(tmp_path):
    from ktools.config import load_settings

    settings = load_settings(environ={"PDF_PASSWORD": "open-sesame-1"}, repo_root=tmp_path)
    assert settings.pdf_password.reveal() == "open-sesame-1"
    assert "open-sesame-1" not in repr(settings)
    row = next(r for r in settings.as_table() if r["variable"] == "PDF_PASSWORD")
    assert "open-sesame-1" not in row["value"]


# --- the pieces ------------------------------------------------------------------------

def _chars(spec: list[tuple[str, float, float]], size: float = 10.0) -> list[dict]:
    return [{"text": t, "x0": x0, "x1": x1, "top": 0.0, "bottom": size, "size": size, "fontname": "F"}
            for t, x0, x1 in spec]


def test_word_gap_is_relative_to_the_font_size_and_the_rows_letter_spacing():
    # 5 pt capitals with a 1.4 pt word gap and no space glyph (senate-expenditures.pdf): two words.
    small = _chars([("A", 0, 3), ("B", 3, 6), ("C", 7.4, 10.4), ("D", 10.4, 13.4)], size=5.0)
    assert [w["text"] for w in row_words(small)] == ["AB", "CD"]
    # Letter-spaced: 2 pt between letters, 5 pt between words at 10 pt.
    spaced = _chars([("F", 0, 6), ("O", 8, 14), ("R", 16, 22), ("T", 27, 33), ("H", 35, 41), ("E", 43, 49)])
    assert [w["text"] for w in row_words(spaced)] == ["FOR", "THE"]


def test_overprinted_glyphs_are_removed_once():
    glyphs = _chars([("A", 0, 5), ("A", 0.3, 5.3), ("B", 5, 10)])
    assert [c["text"] for c in drop_overprinted(glyphs)] == ["A", "B"]


def test_hyphenation_rule():
    words = vocabulary(["the hiring of staff", "a well paid crew and a self-", "service desk"])
    assert "self" not in words and "service" not in words   # pieces of a broken word are not words
    assert join_hyphenated("hir-", "ing", words) == "hiring"            # the joined word is known
    assert join_hyphenated("informa-", "tion", set()) == "information"  # neither half is a word
    assert join_hyphenated("well-", "known", words) == "well-known"     # one half is a word
    assert join_hyphenated("Soekarno-", "Hatta", set()) == "Soekarno-Hatta"


def test_a_page_displayed_turned_is_read_in_its_own_frame(tmp_path):
    from pypdf import PdfReader, PdfWriter

    path, crossing = make_two_column_pdf(tmp_path / "two.pdf")
    writer = PdfWriter()
    for page in PdfReader(path).pages:
        page.rotate(90)   # /Rotate 90: shown as landscape, the text itself was set upright
        writer.add_page(page)
    turned = tmp_path / "turned.pdf"
    with turned.open("wb") as handle:
        writer.write(handle)
    markdown = convert_source(turned).markdown
    assert markdown.startswith("# Estuary Ferry Operations")
    for sentence in crossing:
        assert sentence in flat(markdown)


def test_footnotes_follow_the_body_and_never_split_a_sentence(tmp_path):
    from pdffixtures import make_footnote_pdf

    path, sentence, footnote = make_footnote_pdf(tmp_path / "notes.pdf")
    doc = convert_source(path)
    text = flat(doc.markdown)
    assert sentence in text                          # runs on over the page break
    assert footnote in text
    assert text.index(sentence) < text.index(footnote)
