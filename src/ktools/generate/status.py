"""Chunk status: done / rejected_all / failed (with the reason) / pending, per (generator, chunk).

Stored in the response store's `chunk_status` table with a fingerprint of everything
that determines the chunk's requests (model, prompts, options). A resumed run skips
chunks recorded as failed under the same fingerprint unless `retry_failed` is set; a
changed fingerprint (new model, prompt, params) makes old failures irrelevant.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ktools.generate.store import ResponseStore, canonical_json

DONE = "done"
REJECTED_ALL = "rejected_all"
FAILED = "failed"
PENDING = "pending"
STATUSES = (DONE, REJECTED_ALL, FAILED, PENDING)


def fingerprint(parts: Any) -> str:
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()[:24]


def failed_chunks(store: ResponseStore, generator: str | None = None) -> list[dict[str, Any]]:
    """Chunks recorded as failed (all generators, or one), with their reasons."""
    return [{"generator": s.generator, "chunk_id": s.chunk_id, "reason": s.reason}
            for s in store.statuses().values()
            if s.status == FAILED and (generator is None or s.generator == generator)]


def status_counts(store: ResponseStore) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for s in store.statuses().values():
        per = counts.setdefault(s.generator, dict.fromkeys(STATUSES, 0))
        per[s.status] = per.get(s.status, 0) + 1
    return counts
