"""Exact chat-template token counts, fast.

The count of a conversation is, by definition,
``len(tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"])``
(`reference_count`). Doing that row by row spends most of its time in Python
overhead and in the tokenizer's pre-tokenization regex, while the rows of a training
mix repeat the same documents many times. `TokenCounter` returns the same numbers
(the tests and `bench/mixing.py` check every row) with much less work:

1. **Render** all conversations with the tokenizer's own chat-template renderer in
   batches (the function `apply_chat_template` calls; no per-row tokenizer overhead).
2. **Split at special tokens.** Added tokens (``<|im_start|>`` …) are cut out before
   pre-tokenization by the tokenizer itself, so each counts 1 and the text between
   them is counted independently.
3. **Count pieces by pre-token** (the "bytelevel" strategy, for byte-level BPE
   tokenizers with the GPT-2 split regex and no normalizer, e.g. SmolLM2, GPT-2,
   StarCoder): BPE never merges across pre-tokens, so a piece's count is the sum
   of its pre-tokens' counts. We split with the same regex in Python's `regex`
   module (several times faster than the Rust pre-tokenizer round-trip) and look
   each pre-token's BPE length up in a dictionary (filled by encoding the
   pre-token alone with the real tokenizer). Two engines agree when every
   character falls in the same class (letter / number / whitespace / other) in
   both: ASCII is checked when the counter is built, every other character the
   first time it is seen, by probing the real pre-tokenizer. A character that
   disagrees, or a pre-token that does not split to itself, sends the text to the
   real tokenizer instead.
4. **Cache repeated segments.** A caller can name, per conversation, a segment that
   repeats across rows (the document in context). Its count is computed once; the
   rest of the text is counted around it. That is exact only if no pre-token spans
   the cut, which for the GPT-2 regex holds when (a) the left side ends with a
   non-space character and the right side starts with ASCII whitespace, or (b) the
   left side ends with a single newline/tab/CR after a non-space and the right
   side starts with a non-space (see `_boundary_is_safe`). Otherwise the row is
   counted whole.

Other fast tokenizers use the "rust" strategy (`encode_batch` of the rendered texts,
parallel in Rust); slow (Python) tokenizers the "python" strategy (one call per row).
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

Message = dict[str, Any]
Conversation = list[Message]

# The split regex of GPT-2-style byte-level BPE (the `ByteLevel(use_regex=True)` pre-tokenizer).
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

_L, _N, _WS, _OTHER = "L", "N", "WS", "O"
_ASCII_BREAK_WS = "\n\t\r"  # whitespace that never joins the following word (unlike " ")
_UNSAFE = -(10**12)  # a word count that marks "do not trust the fast path for this text"


class TokenCountMismatch(AssertionError):
    """The fast count differs from apply_chat_template for a row (should never happen)."""


def reference_count(tokenizer: Any, messages: Conversation) -> int:
    """The definition: length of `apply_chat_template(messages, tokenize=True)` input ids."""
    out = tokenizer.apply_chat_template(messages, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "keys"):  # transformers 5: BatchEncoding
        out = out["input_ids"]
    return len(out)


def _drop_none(conversation: Conversation) -> Conversation:
    # apply_chat_template drops None-valued keys before rendering; so must we.
    return [{k: v for k, v in m.items() if v is not None} for m in conversation]


class TokenCounter:
    """Exact chat-template token counts for many conversations; see the module docstring."""

    def __init__(self, tokenizer: Any, *, batch_size: int = 1024):
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._renderer = self._make_renderer()
        self._backend = self._clone_backend()
        self.strategy = "python"
        self.cache_stats = {"segment_hits": 0, "segment_misses": 0, "unsafe_boundaries": 0,
                            "fallback_texts": 0}
        self._segment_cache: dict[str, int] = {}
        if self._backend is not None:
            self.strategy = "rust"
            self._setup_bytelevel()

    @classmethod
    def from_name(cls, name: str | None = None, **kwargs: Any) -> TokenCounter:
        from ktools.models import load_tokenizer

        return cls(load_tokenizer(name), **kwargs)

    # ----------------------------------------------------------------- rendering
    def _make_renderer(self) -> Callable[[list[Conversation]], list[str]]:
        tok = self.tokenizer
        try:
            from transformers.utils.chat_template_utils import render_jinja_template

            template = tok.get_chat_template()
            special = dict(tok.special_tokens_map)
        except Exception:  # older/newer transformers or no template: the public, slower way
            log.debug("rendering chat templates through apply_chat_template (no batch renderer)")
            return lambda convs: [tok.apply_chat_template(c, tokenize=False) for c in convs]

        def render(convs: list[Conversation]) -> list[str]:
            rendered, _ = render_jinja_template(conversations=convs, chat_template=template,
                                                add_generation_prompt=False, **special)
            return rendered

        return render

    def render(self, conversations: Sequence[Conversation]) -> list[str]:
        """The text `apply_chat_template(tokenize=False)` gives, for each conversation."""
        convs = [_drop_none(c) for c in conversations]
        out: list[str] = []
        for start in range(0, len(convs), self.batch_size):
            out.extend(self._renderer(convs[start:start + self.batch_size]))
        return out

    # ------------------------------------------------------------ backend set-up
    def _clone_backend(self) -> Any:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        from tokenizers import Tokenizer

        clone = Tokenizer.from_str(backend.to_str())  # our own copy: no truncation/padding state
        clone.no_truncation()
        clone.no_padding()
        clone.encode_special_tokens = bool(getattr(self.tokenizer, "split_special_tokens", False))
        return clone

    def _setup_bytelevel(self) -> None:
        spec = json.loads(self._backend.to_str())
        pre = spec.get("pre_tokenizer") or {}
        model = spec.get("model") or {}
        added = self._backend.get_added_tokens_decoder().values()
        eligible = (
            model.get("type") == "BPE"
            and spec.get("normalizer") is None
            and pre.get("type") == "ByteLevel"
            and pre.get("use_regex", True)
            and not pre.get("add_prefix_space", False)
            and not self._backend.encode_special_tokens
            and all(not (t.lstrip or t.rstrip or t.single_word) for t in added)
        )
        if not eligible:
            log.info("token counting: %s pre-tokenizer; using batched Rust encoding", pre.get("type"))
            return
        import regex

        self._split = regex.compile(GPT2_SPLIT_PATTERN).findall
        contents = sorted({t.content for t in added if t.content}, key=len, reverse=True)
        self._special_split = re.compile("|".join(map(re.escape, contents))).split if contents else None
        # A special token containing whitespace could straddle a segment cut.
        self._specials_have_space = any(any(ch.isspace() for ch in c) for c in contents)
        self._char_class: dict[str, str] = {}
        self._bad_chars: set[str] = set()
        self._word_counts = _WordCounts(self._backend)
        ascii_ok = all(self._check_char(chr(i)) for i in range(1, 128))
        if not ascii_ok:
            log.info("token counting: regex engines disagree on ASCII; using batched Rust encoding")
            return
        self.strategy = "bytelevel"

    def _probe_class(self, ch: str) -> str:
        """The class the real pre-tokenizer gives `ch`: joined with a letter, digit or symbol?"""
        pre = self._backend.pre_tokenizer
        for cls, lead in ((_L, "x"), (_N, "1"), (_OTHER, "!")):
            if len(pre.pre_tokenize_str(lead + ch)) == 1:
                return cls
        return _WS

    @staticmethod
    def _regex_class(ch: str) -> str:
        import regex

        if regex.match(r"\p{L}", ch):
            return _L
        if regex.match(r"\p{N}", ch):
            return _N
        if regex.match(r"\s", ch):
            return _WS
        return _OTHER

    def _check_char(self, ch: str) -> bool:
        mine = self._regex_class(ch)
        if self._probe_class(ch) != mine:
            self._bad_chars.add(ch)
            return False
        self._char_class[ch] = mine
        return True

    def _chars_ok(self, text: str) -> bool:
        if text.isascii():
            return True
        new = set(text).difference(self._char_class)
        if not new:
            return True
        return all([self._check_char(ch) for ch in new if ch not in self._bad_chars]) and not (
            new & self._bad_chars)

    # ------------------------------------------------------------------ counting
    def _count_piece_fast(self, text: str) -> int:
        """Count of `text` via special-token split + pre-token lookup; < 0 means: not trustworthy."""
        words = self._word_counts
        split = self._split
        if self._special_split is None:
            return sum(map(words.__getitem__, split(text)))
        parts = self._special_split(text)
        total = len(parts) - 1
        for part in parts:
            if part:
                total += sum(map(words.__getitem__, split(part)))
        return total

    def _count_segment(self, segment: str) -> int:
        cached = self._segment_cache.get(segment)
        if cached is not None:
            self.cache_stats["segment_hits"] += 1
            return cached
        self.cache_stats["segment_misses"] += 1
        count = self._count_piece_fast(segment) if self._chars_ok(segment) else _UNSAFE
        self._segment_cache[segment] = count
        return count

    def count_texts(self, texts: Sequence[str], repeated: Sequence[str | None] | None = None) -> list[int]:
        """Exact `len(encode(text, add_special_tokens=False))` for each text.

        `repeated[i]`, if given, is a substring of `texts[i]` that recurs across texts
        (e.g. a document); its count is cached.
        """
        if self.strategy == "python":
            return [len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        if self.strategy == "rust":
            return [len(e.ids) for e in self._backend.encode_batch(list(texts), add_special_tokens=False)]
        counts: list[int] = []
        fallback: list[int] = []
        for i, text in enumerate(texts):
            segment = repeated[i] if repeated is not None else None
            count = self._count_with_segment(text, segment) if segment else self._count_whole(text)
            if count < 0:
                fallback.append(i)
            counts.append(count)
        if fallback:
            self.cache_stats["fallback_texts"] += len(fallback)
            encoded = self._backend.encode_batch([texts[i] for i in fallback], add_special_tokens=False)
            for i, enc in zip(fallback, encoded, strict=True):
                counts[i] = len(enc.ids)
        return counts

    def _count_whole(self, text: str) -> int:
        return self._count_piece_fast(text) if self._chars_ok(text) else _UNSAFE

    def _count_with_segment(self, text: str, segment: str) -> int:
        pos = text.find(segment)
        end = pos + len(segment)
        if pos < 0 or self._specials_have_space or not (
            _boundary_is_safe(text, pos) and _boundary_is_safe(text, end)
        ):
            self.cache_stats["unsafe_boundaries"] += 1
            return self._count_whole(text)
        rest_left, rest_right = text[:pos], text[end:]
        if not (self._chars_ok(rest_left) and self._chars_ok(rest_right)):
            return _UNSAFE
        # What precedes the document (system prompt, role header) is the same in most rows: cache it too.
        return self._count_segment(segment) + self._count_segment(rest_left) + self._count_piece_fast(rest_right)

    def count_conversations(
        self,
        conversations: Sequence[Conversation],
        repeated: Sequence[str | None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Exact `apply_chat_template(..., tokenize=True)` lengths; `repeated` as in `count_texts`."""
        counts: list[int] = []
        for start in range(0, len(conversations), self.batch_size):
            stop = start + self.batch_size
            texts = self.render(conversations[start:stop])
            counts.extend(self.count_texts(texts, None if repeated is None else repeated[start:stop]))
            if progress is not None:
                progress(len(texts))
        return counts

    def verify(self, conversations: Sequence[Conversation], counts: Sequence[int], sample: int = 16,
               seed: int = 0) -> int:
        """Check `sample` random rows against `reference_count`; raise TokenCountMismatch on a difference."""
        if not conversations or sample <= 0:
            return 0
        indices = random.Random(seed).sample(range(len(conversations)), min(sample, len(conversations)))
        for i in indices:
            expected = reference_count(self.tokenizer, conversations[i])
            if counts[i] != expected:
                raise TokenCountMismatch(
                    f"row {i}: fast count {counts[i]} != apply_chat_template count {expected} "
                    f"(strategy {self.strategy}); please report this with the row")
        return len(indices)


class _WordCounts(dict):
    """Pre-token -> BPE length, filled on first sight by encoding the pre-token alone."""

    def __init__(self, backend: Any):
        super().__init__()
        self._backend = backend

    def __missing__(self, word: str) -> int:
        # Encoding a pre-token alone gives its in-context tokens only if it pre-tokenizes to itself.
        if len(self._backend.pre_tokenizer.pre_tokenize_str(word)) != 1:
            count = _UNSAFE
        else:
            count = len(self._backend.encode(word, add_special_tokens=False).ids)
        self[word] = count
        return count


def _is_plain_nonspace(ch: str) -> bool:
    return ch.isascii() and not ch.isspace()


def _boundary_is_safe(text: str, cut: int) -> bool:
    """True if no GPT-2-regex pre-token of `text` spans position `cut` (conservative)."""
    if cut <= 0 or cut >= len(text):
        return True
    left, right = text[cut - 1], text[cut]
    # (a) "word|<ws>": no pattern continues from a non-space into whitespace.
    if _is_plain_nonspace(left) and right in " \t\n\r":
        return True
    # (b) "x\n|word": a single non-space-char whitespace stands alone either way.
    return (left in _ASCII_BREAK_WS and right.isascii() and not right.isspace()
            and cut >= 2 and _is_plain_nonspace(text[cut - 2]))
