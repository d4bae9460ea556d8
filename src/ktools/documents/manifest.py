"""The conversion manifest `output/step_02/converted/manifest.json`."""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ktools.io import read_json, write_json

MANIFEST_VERSION = 1


@dataclass
class ManifestEntry:
    source: str            # the path (absolute) or URL as given
    sha256: str            # of the source bytes
    converter: str         # e.g. "pdfplumber", "trafilatura", "python-docx", "text"
    output: str            # converted file name, relative to the converted/ folder
    characters: int
    pages: int | None = None
    page_offsets: list[int] | None = None  # char offset in the markdown where each page starts
    encoding: str | None = None
    title: str | None = None
    warnings: list[str] = field(default_factory=list)
    # PDF pages whose glyphs had no Unicode mapping ((cid:N)): text was lost there.
    unmapped_glyph_pages: list[int] = field(default_factory=list)

    def page_of(self, offset: int) -> int | None:
        """1-based page of a character offset in the converted markdown (None if not paged)."""
        if not self.page_offsets:
            return None
        import bisect

        return bisect.bisect_right(self.page_offsets, offset)


@dataclass
class Manifest:
    documents: list[ManifestEntry]
    errors: list[dict[str, Any]] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    version: int = MANIFEST_VERSION

    def write(self, path: Path) -> Path:
        return write_json(path, {"version": self.version, "created": self.created,
                                 "documents": [asdict(d) for d in self.documents], "errors": self.errors})

    @classmethod
    def read(cls, path: Path) -> Manifest:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no conversion manifest; run the conversion first "
                                    "(`ktools convert-docs SOURCES` or the notebook's conversion cell)")
        raw = read_json(path)
        docs = [ManifestEntry(**d) for d in raw.get("documents", [])]
        return cls(documents=docs, errors=raw.get("errors", []), created=raw.get("created", ""),
                   version=raw.get("version", MANIFEST_VERSION))
