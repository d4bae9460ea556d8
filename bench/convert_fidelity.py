"""Benchmark: PDF conversion fidelity and speed on real documents no one on the team wrote.

    python bench/convert_fidelity.py [--corpus DIR] [--repeat N]

Over every PDF in `<repo>/../shared/corpus/pdf/` (skipped with a message when absent) and
the sample PDF, with the hand-checked lists in `bench/convert_fidelity_checks.json`:

- sentences that must come out intact (across column, line and page breaks),
- phrases whose words must not be glued (`FOR FURTHER INFORMATION CONTACT`),
- page furniture that must be gone (running headers/footers, rotated margin notes),
- at most `max_tables` markdown tables (text columns must not become tables),

it prints a per-document score for ktools' conversion and, scored the same way, for
pdfplumber's plain `page.extract_text()` and pdfminer's `extract_text`; then the time per
page of each, measured in the same run, and ktools' time as a ratio of the two baselines.
Matching ignores markdown syntax (`#`, `|`, `-` markers, `*`) and whitespace runs only.
Exit status 1 when a ktools check fails or ktools is slower than 3x pdfplumber.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKS = Path(__file__).with_name("convert_fidelity_checks.json")
SPEED_LIMIT = 3.0  # ktools' time per page at most this multiple of pdfplumber's extract_text


def normalise(text: str) -> str:
    """Markdown syntax and whitespace runs removed, so only the words and their order count."""
    text = re.sub(r"^\s*\|?-{3,}.*$", " ", text, flags=re.MULTILINE)   # table rules
    text = re.sub(r"^\s*#{1,6}\s+", " ", text, flags=re.MULTILINE)      # heading marks
    text = re.sub(r"^\s*(?:[-*]|\d{1,3}\.)\s+", " ", text, flags=re.MULTILINE)  # list markers
    text = text.replace("|", " ").replace("**", "")
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class Score:
    passed: int = 0
    total: int = 0
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        self.total += 1
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)


def score(markdown: str, checks: dict, count_tables: bool) -> Score:
    result = Score()
    text = normalise(markdown)
    for sentence in checks.get("sentences", []):
        result.check(normalise(sentence) in text, f"sentence broken: {sentence[:70]}…")
    for phrase in checks.get("spaced", []):
        glued = re.sub(r"\s+", "", phrase)
        result.check(normalise(phrase) in text and glued not in text, f"glued: {phrase}")
    for line in checks.get("absent", []):
        result.check(line not in markdown, f"not dropped: {line}")
    if count_tables and "max_tables" in checks:
        tables = len(re.findall(r"^\|(?:---\|)+\s*$", markdown, flags=re.MULTILINE))
        result.check(tables <= checks["max_tables"], f"{tables} tables (real: {checks['max_tables']})")
    return result


def ktools_convert(data: bytes, name: str, password: str | None) -> tuple[str, int]:
    from ktools.documents.convert.pdf import pdf_to_markdown

    converted = pdf_to_markdown(data, name, [], password=password)
    return converted.markdown, converted.pages


def pdfplumber_text(data: bytes, password: str | None) -> str:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data), password=password or "") as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages)


def pdfminer_text(data: bytes, password: str | None) -> str:
    from pdfminer.high_level import extract_text

    return extract_text(io.BytesIO(data), password=password or "")


def timed(function, repeat: int):
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            value = function()
        except Exception as exc:  # a baseline that cannot read the file scores zero
            value = exc
        best = min(best, time.perf_counter() - started)
    return value, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "pdf")
    parser.add_argument("--repeat", type=int, default=1, help="runs per converter and file (best time kept)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    import logging

    logging.disable(logging.WARNING)  # the converter's warnings about lost pages are expected here
    checks = json.loads(CHECKS.read_text(encoding="utf-8"))["documents"]
    files: list[tuple[str, Path]] = [("assets/sample/sample_document.pdf", REPO / "assets/sample/sample_document.pdf")]
    if args.corpus.is_dir():
        files = [(p.name, p) for p in sorted(args.corpus.glob("*.pdf"))] + files
    else:
        print(f"shared corpus not found at {args.corpus}: only the sample PDF is measured")
    unchecked = [name for name, _ in files if name not in checks]
    if unchecked:
        print(f"no hand-checked list for: {', '.join(unchecked)} (add them to {CHECKS.name})")

    header = f"{'document':38s} {'pages':>5s}  {'ktools':>7s} {'plumber':>7s} {'pdfminer':>8s}   " \
             f"{'ms/page ktools':>14s} {'plumber':>8s} {'pdfminer':>8s}   {'x plumber':>9s} {'x miner':>7s}"
    print(header)
    totals = {"ktools": 0.0, "plumber": 0.0, "miner": 0.0}
    all_pages = 0
    failed = False
    for name, path in files:
        spec = checks.get(name, {})
        data = path.read_bytes()
        password = spec.get("password")
        converted, t_ours = timed(lambda d=data, n=name, p=password: ktools_convert(d, n, p), args.repeat)
        plain, t_plumber = timed(lambda d=data, p=password: pdfplumber_text(d, p), args.repeat)
        mined, t_miner = timed(lambda d=data, p=password: pdfminer_text(d, p), args.repeat)
        if "expect_error" in spec:
            ok = isinstance(converted, Exception) and spec["expect_error"] in str(converted)
            print(f"{name[:38]:38s} {'-':>5s}  {'error' if ok else 'FAIL':>7s}   (expected: a clear error: {converted})")
            failed |= not ok
            continue
        if isinstance(converted, Exception):
            print(f"{name[:38]:38s} FAILED: {converted}")
            failed = True
            continue
        markdown, pages = converted
        ours = score(markdown, spec, count_tables=True)
        theirs = [score("" if isinstance(t, Exception) else t, spec, count_tables=False) for t in (plain, mined)]
        ours_checks = max(ours.total, 1)

        def fraction(s: Score, total: int) -> str:
            return f"{s.passed}/{total}"

        per_page = [1000 * t / pages for t in (t_ours, t_plumber, t_miner)]
        print(f"{name[:38]:38s} {pages:5d}  {fraction(ours, ours.total):>7s} "
              f"{fraction(theirs[0], theirs[0].total):>7s} {fraction(theirs[1], theirs[1].total):>8s}   "
              f"{per_page[0]:14.0f} {per_page[1]:8.0f} {per_page[2]:8.0f}   "
              f"{t_ours / t_plumber:9.2f} {t_ours / t_miner:7.2f}")
        for failure in ours.failures:
            print(f"    ktools: {failure}")
        failed |= ours.passed < ours_checks and ours.total > 0
        totals["ktools"] += t_ours
        totals["plumber"] += t_plumber
        totals["miner"] += t_miner
        all_pages += pages
    ratio = totals["ktools"] / totals["plumber"]
    print(f"\nall documents: {all_pages} pages; ms/page ktools {1000 * totals['ktools'] / all_pages:.0f}, "
          f"pdfplumber extract_text {1000 * totals['plumber'] / all_pages:.0f}, "
          f"pdfminer extract_text {1000 * totals['miner'] / all_pages:.0f}; "
          f"ktools = {ratio:.2f}x pdfplumber, {totals['ktools'] / totals['miner']:.2f}x pdfminer "
          f"(limit {SPEED_LIMIT:g}x pdfplumber)")
    if ratio > SPEED_LIMIT:
        failed = True
    print("result:", "FAIL" if failed else "all checks pass")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
