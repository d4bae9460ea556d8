"""Optional docling backend for HTML and DOCX (`backend="docling"`).

Measured here (02_Data_Processing/README.md): `docling-slim[html,docx]` installs beside
torch 2.13 / transformers 5 without changing them and converts HTML/DOCX offline, but
its import takes ~17 s, its HTML output keeps page furniture (contents box, [edit]
links, categories) that our default drops, and its PDF pipeline needs layout models
from the hub, so it is not offered for PDF. Install: pip install "docling-slim[html,docx]".
"""

from __future__ import annotations

import io
from functools import lru_cache

from ktools.documents.errors import DocumentError


@lru_cache(maxsize=1)
def _converter():
    from docling.document_converter import DocumentConverter

    return DocumentConverter()


def docling_to_markdown(data: bytes, source: str, extension: str) -> str:
    try:
        from docling.datamodel.base_models import DocumentStream
    except ImportError:
        raise DocumentError(source, "the docling backend is not installed",
                            'pip install "docling-slim[html,docx]" or use the default backend') from None
    name = "document" + (".html" if extension in (".html", ".htm") else extension)
    try:
        result = _converter().convert(DocumentStream(name=name, stream=io.BytesIO(data)))
    except Exception as exc:  # docling wraps parser errors in several types
        raise DocumentError(source, f"docling could not convert it ({type(exc).__name__}: {exc})",
                            "try the default backend") from None
    return result.document.export_to_markdown()
