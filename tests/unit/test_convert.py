"""Converters on small files the tests make, including every bad input of issue 3."""

from __future__ import annotations

import http.server
import threading

import pytest
from docfixtures import (
    BOILERPLATE,
    FACTS,
    WIKI_HTML,
    make_docx,
    make_encrypted_pdf,
    make_report_pdf,
    make_scanned_pdf,
)

from ktools.documents.convert import convert_source, convert_sources
from ktools.documents.errors import DocumentError
from ktools.documents.manifest import Manifest


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_markdown_passes_through(tmp_path):
    src = tmp_path / "a.md"
    src.write_text("# Title\r\n\r\nSome *text*.\r\n", encoding="utf-8")
    doc = convert_source(src)
    assert doc.markdown == "# Title\n\nSome *text*.\n"
    assert doc.converter == "text" and doc.title == "Title" and len(doc.sha256) == 64


def test_html_keeps_the_article_and_drops_boilerplate(tmp_path):
    src = tmp_path / "page.html"
    src.write_text(WIKI_HTML, encoding="utf-8")
    md = convert_source(src).markdown
    for fact in FACTS:
        assert fact in _flat(md), fact
    for junk in BOILERPLATE:
        assert junk not in md, junk
    assert md.startswith("# Greywater Lighthouse")
    assert "## History" in md and "### Restoration" in md and "[edit]" not in md
    assert "- Phase two rebuilt the gallery rail in 2024." in md
    assert "| Pier 7 | 06:00 | 22:15 |" in md
    assert "```\nbeacon --mode fog --interval 30s\n```" in md


def test_pdf_headings_table_columns_and_pages(tmp_path):
    doc = convert_source(make_report_pdf(tmp_path / "r.pdf"))
    md = doc.markdown
    assert doc.converter == "pdfplumber" and doc.pages == 2
    for fact in FACTS:
        assert fact in _flat(md), fact
    assert md.startswith("# Harbour Operations Report")
    assert "## 1. Meetings" in md and "## 3. Two columns" in md
    assert "| Pier 7 | 06:00 | 22:15 |" in md
    # two columns: the whole left column comes before the right one
    assert md.index("LEFT three") < md.index("RIGHT one")
    assert doc.page_offsets[0] == 0 and md[doc.page_offsets[1]:].startswith("## 3. Two columns")


def test_docx_structure(tmp_path):
    md = convert_source(make_docx(tmp_path / "h.docx")).markdown
    assert md.startswith("# Harbour Handbook\n\n## Meetings")
    assert "### Safety" in md and "**Attendance is mandatory.**" in md
    assert "- No sailing above a maximum wind speed of 34 knots." in md
    assert "1. Check the forecast.\n2. Sign the log." in md
    assert "| Pier | Opens | Closes |\n|---|---|---|\n| Pier 3 | 05:30 | 21:00 |" in md


@pytest.mark.parametrize("name, data, expected", [
    ("empty.md", b"", "empty"),
    ("blank.txt", b"   \n\n", "empty"),
    ("binary.md", b"\x00\x01\x02PK\x00" * 50, "binary"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage", "PDF"),
    ("fake.pdf", b"this is not a pdf at all", "not a PDF"),
    ("fake.docx", b"plain text pretending to be word", "not a valid .docx"),
    ("old.doc", b"\xd0\xcf\x11\xe0 old word", "unsupported"),
    ("data.xyz", b"something", "unsupported"),
])
def test_bad_inputs_name_the_file_and_hint(tmp_path, name, data, expected):
    src = tmp_path / name
    src.write_bytes(data)
    with pytest.raises(DocumentError) as err:
        convert_source(src)
    message = str(err.value)
    assert name in message and expected.lower() in message.lower() and "Hint:" in message


def test_non_utf8_text_is_detected_and_reported(tmp_path):
    src = tmp_path / "latin.txt"
    src.write_bytes("Größe und Übergänge der Fähre: maximal 34 Knoten bei Windstärke.\n".encode("cp1252") * 5)
    doc = convert_source(src)
    assert "Fähre" in doc.markdown and doc.encoding and doc.encoding != "utf-8"
    assert doc.warnings and "not UTF-8" in doc.warnings[0] and "line 1" in doc.warnings[0]


def test_scanned_pdf_is_a_clear_error(tmp_path):
    with pytest.raises(DocumentError, match=r"no extractable text \(scanned\?\).*ocrmypdf"):
        convert_source(make_scanned_pdf(tmp_path / "scan.pdf"))


def test_encrypted_pdf_is_a_clear_error(tmp_path):
    with pytest.raises(DocumentError, match="password-protected"):
        convert_source(make_encrypted_pdf(tmp_path / "locked.pdf"))


def test_folder_is_recursive_and_one_bad_file_does_not_stop_the_others(tmp_path, tmp_output):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# A\n\nAlpha text.\n")
    (folder / "sub" / "b.html").write_text(WIKI_HTML)
    make_scanned_pdf(folder / "sub" / "scan.pdf")
    (folder / "sub" / "notes.xyz").write_text("?")
    result = convert_sources([folder], tmp_output / "converted", progress=False)
    assert sorted(d.output for d in result.documents) == ["a.md", "b_html.md"]
    failed = {e.source.split("/")[-1]: e for e in result.errors}
    assert set(failed) == {"scan.pdf", "notes.xyz"}
    manifest = Manifest.read(result.manifest_path)
    assert [d.output for d in manifest.documents] == [d.output for d in result.documents]
    assert {e["problem"] for e in manifest.errors} == {e.problem for e in result.errors}
    entry = manifest.documents[0]
    assert entry.sha256 and entry.characters == len((tmp_output / "converted" / entry.output).read_text())


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/article.html":
            body = WIKI_HTML.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_is_fetched_and_converted(local_site, tmp_output):
    url = f"{local_site}/article.html"
    result = convert_sources([url, f"{local_site}/missing.html"], tmp_output / "c", progress=False)
    assert len(result.documents) == 1 and result.documents[0].source == url
    assert "Captain Ilse Varga" in (tmp_output / "c" / result.documents[0].output).read_text()
    assert len(result.errors) == 1 and "HTTP 404" in str(result.errors[0])


def test_unreachable_url_is_a_clear_error():
    with pytest.raises(DocumentError, match="cannot reach the URL.*Hint"):
        convert_source("http://127.0.0.1:9/nothing-listens-here", timeout=5)


def test_docling_backend_is_optional(tmp_path):
    src = tmp_path / "h.docx"
    make_docx(src)
    try:
        import docling  # noqa: F401
    except ImportError:
        with pytest.raises(DocumentError, match=r"docling backend is not installed.*docling-slim"):
            convert_source(src, backend="docling")
    else:  # pragma: no cover - only where the optional extra is installed
        doc = convert_source(src, backend="docling")
        assert doc.converter == "docling" and "Captain Ilse Varga" in doc.markdown
    # PDFs keep the default converter whatever the backend
    assert convert_source(make_report_pdf(tmp_path / "r.pdf"), backend="docling").converter == "pdfplumber"
