"""The embedded teacher's public face (see `ktools.llm.local` for the parts).

    ensure_local_teacher(base_url)   # start it in the background if local and absent
    serve(host, port, max_batch=32)  # foreground server (what `ktools serve-teacher` runs)

API served on http://127.0.0.1:8765/v1 (port from `ktools.config.LOCAL_TEACHER_PORT`):
`GET /health`, `GET /v1/models`, `POST /v1/chat/completions` with `n`, `temperature`
(0 = greedy), `top_p`, `max_tokens`/`max_completion_tokens`, `stop`, `seed`. The model
id is "SmolLM2-135M-Instruct"; any requested model name is accepted and answered by it.
Importing this module does not import torch.
"""

from __future__ import annotations

from typing import Any

from ktools.config import LOCAL_TEACHER_BASE_URL
from ktools.llm.local.lifecycle import (
    Health,
    LocalTeacherError,
    ensure_local_teacher,
    is_loopback,
    probe,
    split_base_url,
    start_background,
    status,
    stop,
)

# The embedded teacher honours `n` itself (samples share one prompt prefill), so the
# client need not fan out to single requests.
SUPPORTS_N = True


def serve(host: str = "127.0.0.1", port: int = 8765, **options: Any) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (imports torch)."""
    from ktools.llm.local.server import serve as _serve

    _serve(host, port, **options)


__all__ = ["LOCAL_TEACHER_BASE_URL", "SUPPORTS_N", "Health", "LocalTeacherError", "ensure_local_teacher",
           "is_loopback", "probe", "serve", "split_base_url", "start_background", "status", "stop"]
