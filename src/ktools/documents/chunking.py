"""Structure-aware chunking by tokens of the student's tokenizer.

How it works (and why it is fast):

1. The markdown is parsed once, line by line, into blocks that tile the text:
   headings, paragraphs, list items (with their continuation lines), table rows,
   code-fence lines. Every block start is a candidate break with a weight:
   before a heading (best) > between different blocks > between list items >
   between table rows / code lines. A break never falls inside a line of a table
   or code block, because candidates are line starts.
2. The text is tokenized ONCE with offsets (fast tokenizer, `encode_batch` over
   pieces cut right before whitespace runs — for byte-level BPE that gives exactly
   the tokens of the whole text). A chunk's token count is then arithmetic:
   the number of token start offsets inside [start, end) (a binary search).
3. Greedy packing: from the chunk start, among the candidates that keep the chunk
   within `max_tokens` (and leave either nothing or at least `min_tokens` for the
   tail), take the best of weight + fill fraction. Only when a single block is
   longer than `max_tokens` is it cut inside, at a token boundary (preferably a word
   start), with a warning naming the line.
4. The next chunk starts `overlap_tokens` tokens before the end of the previous one
   (snapped back to a word start), so consecutive ranges overlap.

Every chunk keeps `start`/`end` such that `markdown[start:end] == chunk text`.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_LIST_ITEM = re.compile(r"^[ \t]*([-*+]|\d{1,3}[.)])[ \t]+\S")
_TABLE_ROW = re.compile(r"^[ \t]*\|")

# Candidate-break weights (added to the fill fraction 0..1 when choosing a break).
WEIGHT_HEADING = 1.0
WEIGHT_BLOCK = 0.5
WEIGHT_ITEM = 0.3
WEIGHT_LINE = 0.1
WEIGHT_ORPHAN = -0.9
MIN_FILL = 0.25  # a break that leaves the chunk less than 25% full is taken only if nothing else fits


@dataclass
class Block:
    start: int
    end: int
    kind: str  # heading | paragraph | list_item | table_row | code_line | code_fence
    line: int  # 1-based line of the block start
    level: int = 0  # heading level
    title: str = ""


@dataclass
class Chunk:
    document: str
    source: str
    chunk_id: str
    start: int
    end: int
    n_tokens: int
    heading_path: list[str]
    pages: list[int] | None = None

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChunkingResult:
    chunks: list[Chunk]
    warnings: list[str] = field(default_factory=list)
    n_tokens: int = 0


def parse_blocks(markdown: str) -> list[Block]:
    """Blocks that tile `markdown`: each one ends where the next begins (blank lines
    belong to the block before them)."""
    blocks: list[Block] = []
    in_fence = False
    position = 0
    previous_kind = ""
    for number, line in enumerate(markdown.splitlines(keepends=True), start=1):
        stripped = line.strip()
        start = position
        position += len(line)
        if _FENCE.match(line):
            in_fence = not in_fence
            if in_fence or not blocks:
                blocks.append(Block(start, position, "code_fence", number))
            else:
                blocks[-1].end = position  # the closing fence stays with the last code line
            previous_kind = "code_fence" if in_fence else "code_end"
            continue
        if in_fence:
            blocks.append(Block(start, position, "code_line", number))
            previous_kind = "code_line"
            continue
        if not stripped:
            if blocks:
                blocks[-1].end = position
            else:
                blocks.append(Block(start, position, "paragraph", number))
            previous_kind = "blank"
            continue
        heading = _HEADING.match(line.rstrip("\n"))
        if heading:
            blocks.append(Block(start, position, "heading", number, len(heading.group(1)), heading.group(2).strip()))
        elif _TABLE_ROW.match(line):
            blocks.append(Block(start, position, "table_row", number))
        elif _LIST_ITEM.match(line):
            blocks.append(Block(start, position, "list_item", number))
        elif previous_kind in ("paragraph", "list_item") and blocks:
            blocks[-1].end = position  # a continuation line
            continue
        else:
            blocks.append(Block(start, position, "paragraph", number))
        previous_kind = blocks[-1].kind
    if blocks:
        blocks[-1].end = len(markdown)
    return blocks


def _break_weight(previous: Block, block: Block) -> float:
    if previous.kind == "heading":
        return WEIGHT_ORPHAN  # never leave a heading alone at the end of a chunk
    if block.kind == "heading":
        return WEIGHT_HEADING + 0.02 * (6 - block.level)
    if block.kind == previous.kind == "list_item":
        return WEIGHT_ITEM
    if block.kind == previous.kind and block.kind in ("table_row", "code_line"):
        return WEIGHT_LINE
    if block.kind == "code_line" and previous.kind == "code_fence":
        return WEIGHT_LINE
    return WEIGHT_BLOCK


def _piece_cuts(text: str, piece_chars: int) -> list[int]:
    """Cut positions about every `piece_chars`, each right before a whitespace run: at the
    next newline when there is one within another `piece_chars`, else at the next space
    (a long single line), else (no whitespace at all) at the size itself."""
    cuts = [0]
    n = len(text)
    while cuts[-1] + piece_chars < n:
        floor = cuts[-1] + piece_chars
        ceiling = min(n, floor + piece_chars)
        target = text.find("\n", floor, ceiling)
        if target < 0:
            target = next((m.start() for m in _WHITESPACE.finditer(text, floor, ceiling)), -1)
        if target < 0:
            target = floor  # no whitespace: a token or so may differ at this cut
        cut = target
        while cut > cuts[-1] and text[cut - 1].isspace():
            cut -= 1
        if cut <= cuts[-1]:
            cut = target
        cuts.append(cut)
    cuts.append(n)
    return cuts


_WHITESPACE = re.compile(r"\s")


def token_starts(text: str, tokenizer: Any, piece_chars: int = 4096, batch_chars: int = 1 << 20) -> np.ndarray:
    """Start offsets (chars) of every token of `text`, from batched encodings.

    Pieces are cut right before a whitespace run: a byte-level BPE pre-tokenizer never
    joins a non-space character with the whitespace after it, so the tokens are exactly
    those of the whole text (other tokenizers: a token or so may differ per piece).
    Pieces are encoded about `batch_chars` at a time and only their start offsets kept,
    so memory stays proportional to the text: a tokenizer's encodings cost ~100 bytes
    per token, and a 20 MB single line encoded at once took gigabytes."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer: chunking needs token offsets; "
                        "use a tokenizer with a tokenizer.json (AutoTokenizer.from_pretrained(..., use_fast=True))")
    cuts = _piece_cuts(text, piece_chars)
    spans = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    dtype = np.int64  # int32 would halve this, but searchsorted with a Python int then copies the array per call
    arrays = []
    index = 0
    while index < len(spans):
        batch: list[tuple[int, int]] = []
        size = 0
        while index < len(spans) and (not batch or size < batch_chars):
            batch.append(spans[index])
            size += spans[index][1] - spans[index][0]
            index += 1
        encodings = backend.encode_batch([text[a:b] for a, b in batch], add_special_tokens=False)
        for (base, _), encoding in zip(batch, encodings, strict=True):
            offsets = encoding.offsets
            if offsets:
                arrays.append(np.fromiter((start for start, _ in offsets), dtype=dtype, count=len(offsets))
                              + dtype(base))
        del encodings
    if not arrays:
        return np.zeros(0, dtype=dtype)
    starts = np.concatenate(arrays)
    del arrays
    # Several byte-level tokens of one multi-byte character share a start: keep order.
    return np.maximum.accumulate(starts, out=starts)


def _validate(max_tokens: int, overlap_tokens: int, min_tokens: int) -> None:
    if max_tokens < 16:
        raise ValueError(f"max_tokens={max_tokens} is too small; use at least 16 (typical: 256–1024)")
    if not 0 <= overlap_tokens <= max_tokens // 2:
        raise ValueError(f"overlap_tokens={overlap_tokens} must be between 0 and max_tokens/2 ({max_tokens // 2})")
    if not 0 <= min_tokens < max_tokens:
        raise ValueError(f"min_tokens={min_tokens} must be between 0 and max_tokens-1 ({max_tokens - 1})")


def chunk_markdown(markdown: str, tokenizer: Any, *, source: str = "document", max_tokens: int = 512,
                   overlap_tokens: int = 64, min_tokens: int = 128, chunk_prefix: str | None = None,
                   page_offsets: list[int] | None = None) -> ChunkingResult:
    """Split `markdown` into token-bounded chunks (see the module doc)."""
    _validate(max_tokens, overlap_tokens, min_tokens)
    prefix = chunk_prefix or re.sub(r"\.[A-Za-z0-9]+$", "", source)
    warnings: list[str] = []
    blocks = parse_blocks(markdown)
    starts = token_starts(markdown, tokenizer)
    total = len(starts)
    if not markdown or markdown.isspace() or total == 0:
        return ChunkingResult([], [f"{source}: no text to chunk"], 0)

    # Candidate breaks: block starts (except the first), with their token index and weight.
    cand_chars = np.asarray([b.start for b in blocks[1:]], dtype=np.int64)
    cand_weights = np.asarray([_break_weight(a, b) for a, b in zip(blocks, blocks[1:], strict=False)])
    cand_tokens = np.searchsorted(starts, cand_chars, side="left")
    block_starts = [b.start for b in blocks]

    headings = [(b.start, b.level, b.title) for b in blocks if b.kind == "heading"]
    heading_positions = [h[0] for h in headings]
    paths: list[list[str]] = []
    stack: list[tuple[int, str]] = []
    for _, level, title in headings:
        stack = [(lv, t) for lv, t in stack if lv < level] + [(level, title)]
        paths.append([t for _, t in stack])

    def heading_path(at: int) -> list[str]:
        index = bisect.bisect_right(heading_positions, at) - 1
        return list(paths[index]) if index >= 0 else []

    def char_of_token(index: int) -> int:
        return len(markdown) if index >= total else int(starts[index])

    if total < min_tokens:
        warnings.append(f"{source}: only {total} tokens (< min_tokens={min_tokens}); kept as one chunk")

    spans: list[tuple[int, int, int, int]] = []  # (start_char, end_char, start_tok, end_tok)
    start_tok, start_char = 0, 0
    while True:
        if total - start_tok <= max_tokens:
            spans.append((start_char, len(markdown), start_tok, total))
            break
        limit = start_tok + max_tokens
        lo = int(np.searchsorted(cand_tokens, start_tok, side="right"))
        hi = int(np.searchsorted(cand_tokens, limit, side="right"))
        end_tok = end_char = None
        # The block that crosses the limit: only if it alone exceeds max_tokens may we cut inside it.
        crossing = blocks[bisect.bisect_right(block_starts, char_of_token(limit)) - 1]
        crossing_index = bisect.bisect_right(block_starts, crossing.start) - 1
        crossing_end = blocks[crossing_index].end
        oversized = count_tokens(starts, crossing.start, crossing_end) > max_tokens
        if hi > lo:
            toks = cand_tokens[lo:hi]
            chars = cand_chars[lo:hi]
            fill = (toks - start_tok) / max_tokens
            progress = chars > start_char
            ok = progress & (fill >= MIN_FILL) & ((total - toks) >= min_tokens)
            if not ok.any():
                ok = progress & (fill >= MIN_FILL)
            if not ok.any() and not oversized:
                ok = progress  # a short chunk rather than splitting a block that fits
            if ok.any():
                score = np.where(ok, cand_weights[lo:hi] + fill, -np.inf)
                best = int(np.argmax(score[::-1]))  # ties: the later break
                best = len(score) - 1 - best
                end_tok, end_char = int(toks[best]), int(chars[best])
        if end_tok is None:
            # One block is longer than max_tokens: cut inside it at a word start.
            end_tok = _word_start(markdown, starts, limit, start_tok + max_tokens // 2)
            end_char = char_of_token(end_tok)
            message = (f"{source} line {crossing.line}: a {crossing.kind.replace('_', ' ')} longer than "
                       f"max_tokens={max_tokens}; split inside it at a token boundary")
            if message not in warnings:
                warnings.append(message)
        spans.append((start_char, end_char, start_tok, end_tok))
        next_tok = end_tok - overlap_tokens
        if end_tok - start_tok <= 2 * overlap_tokens:
            next_tok = end_tok  # a short chunk (before a huge block) is not repeated as overlap
        elif overlap_tokens:
            next_tok = _word_start(markdown, starts, next_tok, max(start_tok + 1, next_tok - 8))
        next_tok = max(next_tok, start_tok + 1)
        start_tok, start_char = next_tok, (end_char if next_tok == end_tok else char_of_token(next_tok))

    chunks = []
    previous_end = 0
    for index, (a, b, ta, tb) in enumerate(spans):
        # The heading path of the chunk's own text (after the overlap with the previous chunk).
        own_start = min(max(a, previous_end), b - 1) if b > a else a
        previous_end = b
        pages = None
        if page_offsets:
            pages = sorted({bisect.bisect_right(page_offsets, a), bisect.bisect_right(page_offsets, max(a, b - 1))})
        chunks.append(Chunk(document=markdown[a:b], source=source, chunk_id=f"{prefix}-{index:04d}", start=a,
                            end=b, n_tokens=tb - ta, heading_path=heading_path(own_start), pages=pages))
    for message in warnings:
        log.warning(message)
    return ChunkingResult(chunks, warnings, total)


def _word_start(text: str, starts: np.ndarray, index: int, floor: int) -> int:
    """The token index at or before `index` (not below `floor`) whose token begins a word."""
    for candidate in range(index, max(floor, 1) - 1, -1):
        pos = int(starts[candidate]) if candidate < len(starts) else len(text)
        if pos == 0 or text[pos - 1].isspace() or text[pos].isspace():
            return candidate
    return index


def count_tokens(starts: np.ndarray, start: int, end: int) -> int:
    """Tokens whose start offset lies in [start, end)."""
    return int(np.searchsorted(starts, end, side="left") - np.searchsorted(starts, start, side="left"))
