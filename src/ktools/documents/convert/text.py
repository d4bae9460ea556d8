"""Plain text and markdown: decode (UTF-8, else detect the encoding and say so)."""

from __future__ import annotations

import codecs

from ktools.documents.errors import DocumentError

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_text(data: bytes, source: str, warnings: list[str] | None = None) -> tuple[str, str]:
    """Return (text, encoding). Non-UTF-8 text is decoded with the detected encoding and a
    warning; binary data or an undetectable encoding is a DocumentError with the line."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _normalise(data.decode(encoding)), encoding
    if b"\x00" in data[:8192]:
        raise DocumentError(source, "binary data, not text (NUL bytes near the start)",
                            "check the file is really text/markdown; a Word or PDF file needs the "
                            ".docx / .pdf extension")
    try:
        return _normalise(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start: exc.start + 1]
    text, encoding = _detect(data)
    if text is None:
        raise DocumentError(source, f"not UTF-8 (byte {bad!r}) and the encoding could not be detected",
                            "re-save the file as UTF-8", line=line)
    message = (f"{source}: not UTF-8 (first bad byte {bad!r} at line {line}); decoded as {encoding}. "
               "Re-save as UTF-8 if characters look wrong.")
    if warnings is not None:
        warnings.append(message)
    return _normalise(text), encoding


# Detectors rank rare code pages (hp_roman8, mac_*) high on short Western texts; among
# their candidates we take the first common one, and cp1252 before anything exotic.
_COMMON = ("cp1252", "latin_1", "iso8859_15", "cp1250", "iso8859_2", "cp1251", "koi8_r", "cp1253", "cp1254",
           "cp1257", "shift_jis", "cp932", "euc_jp", "gb2312", "gb18030", "big5", "euc_kr", "utf_16", "utf_32")


def _detect(data: bytes) -> tuple[str | None, str]:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - charset-normalizer is a dependency of the docs extra
        matches = []
    else:
        matches = list(from_bytes(data))
    if matches:
        # Short Western texts ("café crème") leave many single-byte code pages tied with no
        # chaos and no language evidence, cp1250 often listed first; among the candidates
        # as good as the best, our order decides (cp1252 before Central European pages).
        best = matches[0]
        tied = {m.encoding: m for m in matches if m.chaos <= best.chaos and m.coherence >= best.coherence}
        for encoding in _COMMON:
            if encoding in tied:
                return str(tied[encoding]), encoding
    for match in matches:
        if match.encoding in _COMMON:
            return str(match), match.encoding
    for encoding in ("cp1252", "latin_1"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return (str(matches[0]), matches[0].encoding) if matches else (None, "")


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_to_markdown(data: bytes, source: str, warnings: list[str]) -> tuple[str, str]:
    """Markdown and .txt pass through unchanged (only decoded and newline-normalised)."""
    return decode_text(data, source, warnings)
