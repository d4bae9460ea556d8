"""JSON/JSONL files that survive crashes.

- `write_atomic` / `write_json` / `write_jsonl`: write a temp file beside the target,
  fsync, then `os.replace` — a reader sees the old file or the new one, never half.
- `JsonlJournal`: append-only, one complete JSON object per line, flushed per record.
  A `kill -9` can leave a torn last line; `read_jsonl` drops it (and only it) with a
  warning, and `JsonlJournal` truncates it before appending so later lines stay valid.
- Bad records in the middle of a file are real corruption: `JsonlError` names the
  file, the line number and what is wrong.
- Files and folders are created with the mode the process umask gives (as `open` would),
  not mkstemp's private 0600; `replace_dir_atomic` swaps a whole folder (a saved model)
  in one step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class JsonlError(ValueError):
    """A JSONL file has a bad record; the message names file, line and problem."""


def _dumps(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def process_umask() -> int:
    """The umask, read without changing it where /proc allows (os.umask sets it to read it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes | bytearray | memoryview | Iterable[str]) -> Path:
    """Replace `path` with `data` (text, bytes, or text pieces written one by one so a
    large file is never held whole in memory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~process_umask())  # mkstemp's 0600 would hide outputs from the group
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, str | bytes | bytearray | memoryview):
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            else:
                for piece in data:
                    fh.write(piece.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


_RENAME_EXCHANGE = 2  # renameat2 flag (Linux >= 3.15): swap two paths atomically
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux renameat2); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def recover_dir(target: str | Path) -> None:
    """Finish a `replace_dir_atomic` that a crash cut between its two renames (no
    renameat2): the previous folder, kept as `<target>.old`, is put back."""
    target = Path(target)
    old = target.with_name(target.name + ".old")
    if not target.exists() and old.is_dir():
        os.replace(old, target)
        log.warning("%s: restored the previous folder after an interrupted save", target)


def replace_dir_atomic(target: str | Path, write: Callable[[Path], Any]) -> Path:
    """Let `write(tmp)` fill a fresh folder beside `target`, then put it in place of
    `target` in one step: a reader (or a crash) sees the whole old folder or the whole
    new one. Where the OS cannot swap two folders atomically, the old one is renamed to
    `<target>.old` first and `recover_dir` restores it after a crash in between."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~process_umask())
        write(tmp)
        if target.exists() and _exchange(tmp, target):
            shutil.rmtree(tmp)  # now the previous folder
            return target
        old = target.with_name(target.name + ".old")
        if target.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    return write_atomic(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise JsonlError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def write_jsonl(path: str | Path, records: Iterable[Any]) -> Path:
    """Atomically replace `path` with one JSON object per line."""
    return write_atomic(path, (_dumps(r) + "\n" for r in records))


def iter_jsonl(path: str | Path, *, drop_torn_tail: bool = True) -> Iterator[dict[str, Any]]:
    """Yield records; a torn (unterminated, unparsable) last line is dropped with a warning."""
    path = Path(path)
    with path.open("rb") as fh:
        data = fh.read()
    if not data:
        return
    lines = data.split(b"\n")
    ends_with_newline = data.endswith(b"\n")
    if ends_with_newline:
        lines = lines[:-1]
    # Only a last line without its newline can be a torn write; a complete bad line is an error.
    torn = -1 if ends_with_newline else len(lines) - 1
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if i == torn and drop_torn_tail:
                log.warning("%s: dropping torn last line %d (%d bytes) left by an interrupted write",
                            path, i + 1, len(raw))
                return
            if isinstance(exc, UnicodeDecodeError):
                raise JsonlError(
                    f"{path}, line {i + 1}: not UTF-8 text (byte {raw[exc.start:exc.start + 1]!r} at column "
                    f"{exc.start + 1}). Re-save the file as UTF-8."
                ) from None
            raise JsonlError(
                f"{path}, line {i + 1}: not valid JSON ({exc}). Fix or delete that line; "
                "the other lines are intact."
            ) from None
        if not isinstance(record, dict):
            raise JsonlError(f"{path}, line {i + 1}: expected a JSON object, got {type(record).__name__}")
        yield record


def read_jsonl(path: str | Path, *, drop_torn_tail: bool = True) -> list[dict[str, Any]]:
    return list(iter_jsonl(path, drop_torn_tail=drop_torn_tail))


def read_jsonl_or_raise(path: Path, error: type[Exception], utf8_hint: str) -> list[dict[str, Any]]:
    """`read_jsonl`, with a bad line or non-UTF-8 bytes raised as `error` (the caller's own
    error type, whose message names the file and line; `utf8_hint` says what the file must be)."""
    try:
        return read_jsonl(path)
    except JsonlError as exc:
        raise error(str(exc)) from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text; {utf8_hint}.") from None


def load_each(paths: Iterable[Path], load: Callable[[Path], T], errors: list[tuple[str, str]],
              error: type[Exception] | tuple[type[Exception], ...],
              logger: logging.Logger | None = None) -> Iterator[tuple[Path, T]]:
    """`(path, load(path))` for each file that loads; a file raising `error` is added to
    `errors` as `(path, reason)` (and logged to `logger`), and the others still load."""
    for path in paths:
        try:
            value = load(path)
        except error as exc:
            errors.append((str(path), str(exc)))
            if logger is not None:
                logger.error("%s", exc)
            continue
        yield path, value


def repair_torn_tail(path: str | Path) -> int:
    """Cut an unterminated last line off an append-only file; return bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    with path.open("rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # Walk back to the previous newline.
        pos = size - 1
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            buf = fh.read(pos - start)
            idx = buf.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        else:
            keep = 0
        fh.truncate(keep)
        log.warning("%s: removed torn last line (%d bytes) before appending", path, size - keep)
        return size - keep


class JsonlJournal:
    """Append-only JSONL writer: each `append` writes one whole line and flushes it.

    `fsync=True` makes each record durable against power loss too (slower); the
    default survives process crashes and `kill -9`, which is what resume needs.
    """

    def __init__(self, path: str | Path, *, fsync: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fh = self.path.open("ab")
        self._fsync = fsync

    def append(self, record: Any) -> None:
        self._fh.write((_dumps(record) + "\n").encode("utf-8"))
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def extend(self, records: Iterable[Any]) -> None:
        data = "".join(_dumps(r) + "\n" for r in records)
        if data:
            self._fh.write(data.encode("utf-8"))
            self._fh.flush()
            if self._fsync:
                os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> JsonlJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
