"""The hand-checked real PDFs of `../shared/corpus/pdf/` (beside the repository, as in CI) and the
sample PDF pass every check of bench/convert_fidelity_checks.json: sentences intact across column,
line and page breaks, no glued words, furniture gone, no tables made of text columns."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus" / "pdf"
CHECKS = json.loads((REPO / "bench" / "convert_fidelity_checks.json").read_text(encoding="utf-8"))["documents"]


def _bench():
    """bench/convert_fidelity.py (not a package): its scoring is the one the benchmark prints."""
    if "convert_fidelity" not in sys.modules:
        spec = importlib.util.spec_from_file_location("convert_fidelity", REPO / "bench" / "convert_fidelity.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["convert_fidelity"] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules["convert_fidelity"]


def _path(name: str) -> Path:
    return REPO / name if "/" in name else CORPUS / name


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_real_pdf_passes_its_hand_checked_list(name):
    path = _path(name)
    if not path.is_file():
        pytest.skip(f"{path} not found: the shared corpus is expected at <repo>/../shared/corpus/pdf")
    from ktools.documents.convert import convert_source
    from ktools.documents.errors import DocumentError

    spec = CHECKS[name]
    if "expect_error" in spec:
        with pytest.raises(DocumentError, match=spec["expect_error"]) as raised:
            convert_source(path, pdf_password=spec.get("password"))
        assert path.name in str(raised.value) and "Hint:" in str(raised.value)
        return
    doc = convert_source(path, pdf_password=spec.get("password"))
    result = _bench().score(doc.markdown, spec, count_tables=True)
    assert result.total > 0 and not result.failures, "\n".join(result.failures)


def test_every_shared_pdf_has_a_hand_checked_list():
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} not found: the shared corpus is expected beside the repository")
    assert {p.name for p in CORPUS.glob("*.pdf")} <= set(CHECKS)


def test_federal_register_columns_make_no_tables_and_keep_words_apart():
    path = CORPUS / "federal-register-2020-17221.pdf"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    from ktools.documents.convert import convert_source

    markdown = convert_source(path).markdown
    # The two real tables are the cost estimates; no table row holds running text from columns.
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert all("cost" in row.lower() or "$" in row or "work-hours" in row for row in rows), rows
    assert len(rows) >= 3
    assert "FOR FURTHER INFORMATION CONTACT" in markdown and "FORFURTHER" not in markdown


def test_password_example_needs_its_password():
    path = CORPUS / "password-example.pdf"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    from ktools.documents.convert import convert_source
    from ktools.documents.errors import DocumentError

    with pytest.raises(DocumentError, match=r"password-example\.pdf: the PDF is password-protected.*--password"):
        convert_source(path)
    assert "Backup4all" in convert_source(path, pdf_password="test").markdown
