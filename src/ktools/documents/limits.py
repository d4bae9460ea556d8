"""Resource limits for converting documents: ktools reads documents it did not write.

- URL downloads: size cap and total deadline (enforced in `urls.fetch_url`).
- ZIP packages (.docx): the expanded size and the expansion ratio are checked from the
  ZIP directory before anything is decompressed (a small file can expand to gigabytes).
- Every file: a wall-clock limit on its conversion, so one pathological document stops
  with an error naming it and the other documents still convert.

The defaults fit real documents with room to spare; each is a parameter of
`convert_sources` and a `ktools convert-docs` option.
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from ktools.documents.errors import DocumentError
from ktools.documents.urls import DEFAULT_DOWNLOAD_DEADLINE, DEFAULT_DOWNLOAD_MAX_BYTES


@dataclass(frozen=True)
class ConversionLimits:
    download_deadline: float = DEFAULT_DOWNLOAD_DEADLINE  # seconds for a whole URL download
    download_max_bytes: int = DEFAULT_DOWNLOAD_MAX_BYTES
    archive_max_bytes: int = 200 * 1024 * 1024  # expanded size of a .docx package
    archive_max_ratio: float = 100.0  # expanded / compressed; text XML rarely passes 20
    file_seconds: float = 120.0  # conversion time per file (0: no limit)


def check_archive(data: bytes, source: str, limits: ConversionLimits) -> None:
    """Refuse a ZIP package whose members would expand past the limits (sizes from the
    ZIP directory; a member lying about its size is caught by zipfile's own CRC/size checks)."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except zipfile.BadZipFile:
        return  # not a ZIP: the converter says so in its own words
    expanded = sum(m.file_size for m in members)
    compressed = max(1, sum(m.compress_size for m in members))
    if expanded / compressed > limits.archive_max_ratio:
        raise DocumentError(source, f"the package expands {expanded / compressed:.0f}× (limit "
                            f"{limits.archive_max_ratio:.0f}×): a ZIP bomb or a padded file",
                            "re-save the document in Word/LibreOffice, or raise the limit (archive_max_ratio=)")
    if expanded > limits.archive_max_bytes:
        raise DocumentError(source, f"the package expands to {expanded / 2**20:.0f} MB, over the "
                            f"{limits.archive_max_bytes / 2**20:.0f} MB limit",
                            "split the document, or raise the limit (--max-expanded-mb / archive_max_bytes=)")


class _ConversionTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float, source: str) -> Iterator[None]:
    """Raise a DocumentError naming `source` when the block runs longer than `seconds`.

    Uses SIGALRM, so it applies in the main thread (CLI, notebook kernels, papermill);
    elsewhere, or with seconds <= 0, the block runs unbounded. Python-level converter loops
    are interrupted promptly; a single long C call (one lxml parse) ends before the alarm
    is seen. An alarm someone else armed (pytest-timeout, a scheduler) still fires on
    time and is re-armed afterwards with what remains of it."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "setitimer"):
        yield
        return
    started = time.monotonic()
    ours = started + seconds
    previous = signal.getsignal(signal.SIGALRM)
    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer = started + outer_delay if outer_delay > 0 else None
    outer_fired = False

    def on_alarm(signum, frame):
        nonlocal outer_fired
        if time.monotonic() >= ours - 0.01:
            raise _ConversionTimeout
        outer_fired = True  # the outer alarm came first: it is theirs
        signal.signal(signal.SIGALRM, previous)
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer_delay) if outer else seconds)
    try:
        yield
    except _ConversionTimeout:
        raise DocumentError(source, f"conversion took longer than the {seconds:g} s limit per file",
                            "split the document, convert it to PDF/markdown first, or raise the limit "
                            "(--file-time-limit / file_seconds=)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer is not None and not outer_fired:
            signal.setitimer(signal.ITIMER_REAL, max(outer - time.monotonic(), 0.001), outer_interval)
