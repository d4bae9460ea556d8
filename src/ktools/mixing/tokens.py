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
   module (several times faster than the Rust pre-tokenizer round-trip; ASCII-only
   text with an equivalent stdlib `re` pattern, twice as fast again) and look
   each pre-token's BPE length up in a dictionary (filled by encoding the
   pre-tokens never seen before with the real tokenizer, one `encode_batch` per
   batch of rows: natural text has a small vocabulary of pre-tokens, so after the
   first rows almost every lookup hits). Two engines agree when every
   character falls in the same class (letter / number / whitespace / other) in
   both: ASCII is checked when the counter is built, every other character the
   first time it is seen, by probing the real pre-tokenizer. A character that
   disagrees sends the text to the real tokenizer instead.
4. **Cache repeated segments.** A caller can name, per conversation, a segment that
   repeats across rows (the document in context). Its count is computed once; the
   rest of the text is counted around it. That is exact only if no pre-token spans
   the cut, which for the GPT-2 regex holds when (a) the left side ends with a
   non-space character and the right side starts with ASCII whitespace, or (b) the
   left side ends with a single newline/tab/CR after a non-space and the right
   side starts with a non-space (see `_boundary_is_safe`; `test_mixing_tokens`
   checks it on thousands of random cuts). Otherwise the row is counted whole. The
   text before the segment (system prompt, role header) is cached the same way.

`build_mixes` also re-counts a random sample of rows with `reference_count` on every
run and raises `TokenCountMismatch` on any difference.

Other fast tokenizers use the "rust" strategy (`encode_batch` of the rendered texts,
parallel in Rust); slow (Python) tokenizers the "python" strategy (one call per row).
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Any

log = logging.getLogger(__name__)

Message = dict[str, Any]
Conversation = list[Message]

# The split regex of GPT-2-style byte-level BPE (the `ByteLevel(use_regex=True)` pre-tokenizer).
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

_L, _N, _WS, _OTHER = "L", "N", "WS", "O"
_ASCII_BREAK_WS = "\n\t\r"  # whitespace that never joins the following word (unlike " ")
_UNSAFE = -(10**12)  # a word count that marks "do not trust the fast path for this text"
_UNKNOWN = -(10**15)  # the length looked up for a pre-token not encoded yet


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
    return [m if None not in m.values() else {k: v for k, v in m.items() if v is not None}
            for m in conversation]


class TokenCounter:
    """Exact chat-template token counts for many conversations; see the module docstring."""

    def __init__(self, tokenizer: Any, *, batch_size: int = 1024):
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._renderer = self._make_renderer()
        self._backend = self._usable_backend()
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
        except Exception:  # other transformers versions or no template: the public, slower way
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
    def _usable_backend(self) -> Any:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        split_special = bool(getattr(self.tokenizer, "split_special_tokens", False))
        if backend.truncation is None and backend.padding is None and backend.encode_special_tokens == split_special:
            return backend  # nothing to undo: no need to pay for a copy
        from tokenizers import Tokenizer

        clone = Tokenizer.from_str(backend.to_str())  # our own copy without truncation/padding state
        clone.no_truncation()
        clone.no_padding()
        clone.encode_special_tokens = split_special
        return clone

    def _setup_bytelevel(self) -> None:
        backend = self._backend
        pre = backend.pre_tokenizer
        pre_spec = json.loads(pre.__getstate__()) if pre is not None else {}
        added = backend.get_added_tokens_decoder().values()
        eligible = (
            type(backend.model).__name__ == "BPE"
            and backend.normalizer is None
            and pre_spec.get("type") == "ByteLevel"
            and pre_spec.get("use_regex", True)
            and not pre_spec.get("add_prefix_space", False)
            and not backend.encode_special_tokens
            and all(not (t.lstrip or t.rstrip or t.single_word) for t in added)
        )
        if not eligible:
            log.info("token counting: %s pre-tokenizer; using batched Rust encoding", pre_spec.get("type"))
            return
        import regex

        self._unicode_split = regex.compile(GPT2_SPLIT_PATTERN).findall
        self._non_ascii = regex.compile(r"[^\x00-\x7f]").findall
        contents = sorted({t.content for t in added if t.content}, key=len, reverse=True)
        self._special_split = re.compile("|".join(map(re.escape, contents))).split if contents else None
        # A special token containing whitespace could straddle a segment cut.
        self._specials_have_space = any(any(ch.isspace() for ch in c) for c in contents)
        self._char_class: dict[str, str] = {}
        self._bad_chars: set[str] = set()
        self._word_counts: dict[str, int] = {}
        if not all([self._check_char(chr(i)) for i in range(128)]):
            log.info("token counting: regex engines disagree on ASCII; using batched Rust encoding")
            return
        self._ascii_split = _ascii_split_pattern(self._char_class).findall
        self.strategy = "bytelevel"

    def _split(self, text: str) -> list[str]:
        """Pre-tokens of `text` (no special tokens in it): stdlib `re` for ASCII, `regex` otherwise."""
        return self._ascii_split(text) if text.isascii() else self._unicode_split(text)

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
        """Do both regex engines class every character of `text` alike?"""
        if text.isascii():
            return True
        new = set(self._non_ascii(text)).difference(self._char_class)
        if not new:
            return True
        return all([self._check_char(ch) for ch in new if ch not in self._bad_chars]) and not (
            new & self._bad_chars)

    # ------------------------------------------------------------------ counting
    # Per batch: split every text into pre-tokens and sum their known lengths; texts
    # with pre-tokens never seen before wait until all of those are encoded in one
    # `encode_batch` call.
    def _pieces(self, text: str) -> tuple[int, list[list[str]]]:
        """(number of special tokens, pre-token lists of the text between them)."""
        if self._special_split is None:
            return 0, [self._split(text)]
        parts = self._special_split(text)
        return len(parts) - 1, [self._split(p) for p in parts if p]

    def _try_sum(self, pieces: tuple[int, list[list[str]]]) -> int:
        """Token count of pre-tokenized text; negative if a pre-token is unknown (or unsafe)."""
        get = self._word_counts.get
        n_special, word_lists = pieces
        return n_special + sum([sum(map(get, words, repeat(_UNKNOWN))) for words in word_lists])

    def _learn_words(self, word_lists: Iterable[list[str]]) -> None:
        r"""Encode the pre-tokens not seen before (one parallel `encode_batch`) and remember their lengths.

        A pre-token of the GPT-2 regex pre-tokenizes to itself when alone (a match
        never depends on the text after it except through `\s+(?!\S)`, which also
        matches at the end of the string), so encoding it alone gives its tokens in context.
        """
        counts = self._word_counts
        new = list({w for words in word_lists for w in words if w not in counts})
        if new:
            encoded = self._backend.encode_batch(new, add_special_tokens=False)
            counts.update(zip(new, [len(e.ids) for e in encoded], strict=True))

    def _segment_parts(self, text: str, segment: str) -> tuple[list[str], str] | None:
        """(repeating parts to count via the cache, rest of the text) if `segment` can be cut out safely."""
        pos = text.find(segment)
        end = pos + len(segment)
        if pos < 0 or self._specials_have_space or not (
            _boundary_is_safe(text, pos) and _boundary_is_safe(text, end)
        ):
            self.cache_stats["unsafe_boundaries"] += 1
            return None
        # What precedes the document (system prompt, role header) repeats too: cache it as well.
        return [segment, text[:pos]], text[end:]

    def count_texts(self, texts: Sequence[str], repeated: Sequence[str | None] | None = None) -> list[int]:
        """Exact `len(encode(text, add_special_tokens=False))` for each text.

        `repeated[i]`, if given, is a substring of `texts[i]` that recurs across texts
        (e.g. a document); its count is cached.
        """
        if self.strategy == "python":
            return [len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        if self.strategy == "rust":
            return [len(e.ids) for e in self._backend.encode_batch(list(texts), add_special_tokens=False)]
        cache = self._segment_cache
        waiting_segments: dict[str, tuple[int, list[list[str]]]] = {}
        rows: list[tuple[list[str], int, tuple[int, list[list[str]]] | None]] = []
        for i, text in enumerate(texts):
            segment = repeated[i] if repeated is not None else None
            cut = self._segment_parts(text, segment) if segment else None
            cached_parts, rest = cut if cut is not None else ([], text)
            for part in cached_parts:
                if part in cache or part in waiting_segments:
                    self.cache_stats["segment_hits"] += 1
                    continue
                self.cache_stats["segment_misses"] += 1
                if not self._chars_ok(part):
                    cache[part] = _UNSAFE
                    continue
                pieces = self._pieces(part)
                count = self._try_sum(pieces)
                if count >= 0:
                    cache[part] = count
                else:
                    waiting_segments[part] = pieces
            if not self._chars_ok(rest):
                rows.append((cached_parts, _UNSAFE, None))
                continue
            pieces = self._pieces(rest)
            count = self._try_sum(pieces)
            rows.append((cached_parts, count, None if count >= 0 else pieces))
        # Texts with unseen pre-tokens: learn those in one batch, then count again.
        waiting = [p for p in waiting_segments.values()] + [r[2] for r in rows if r[2] is not None]
        if waiting:
            self._learn_words(words for p in waiting for words in p[1])
            for part, pieces in waiting_segments.items():
                cache[part] = self._try_sum(pieces)
        counts = [sum([cache[p] for p in parts]) + (count if pieces is None else self._try_sum(pieces))
                  for parts, count, pieces in rows]
        fallback = [i for i, c in enumerate(counts) if c < 0]
        if fallback:
            self.cache_stats["fallback_texts"] += len(fallback)
            encoded = self._backend.encode_batch([texts[i] for i in fallback], add_special_tokens=False)
            for i, enc in zip(fallback, encoded, strict=True):
                counts[i] = len(enc.ids)
        return counts

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


def _ascii_split_pattern(char_class: dict[str, str]) -> re.Pattern[str]:
    """The GPT-2 split regex for ASCII-only text, with the classes spelled out.

    Same matches as `GPT2_SPLIT_PATTERN` on ASCII input (the classes come from the
    verified per-character table), about twice as fast with the stdlib `re` engine.
    """
    def members(cls: str) -> str:
        return "".join(re.escape(chr(i)) for i in range(128) if char_class.get(chr(i)) == cls)

    letters, numbers, spaces = members(_L), members(_N), members(_WS)
    return re.compile(
        rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{letters}]+| ?[{numbers}]+| ?[^{spaces}{letters}{numbers}]+"
        rf"|[{spaces}]+(?![^{spaces}])|[{spaces}]+"
    )


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
