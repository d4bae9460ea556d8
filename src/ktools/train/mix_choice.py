"""Which step-04 mix step 05 trains on when it is not told a file.

Step 05 asks for `combined_cut_<CUT_SIZE>x.jsonl`. Step 04 may not have built that cut: when
no chunk has enough summaries for any requested cut (the fidelity filter can drop most of a
weak teacher's summaries), it builds one mix at the largest cut the summaries allow and
records that as a `fallback` in `mix_stats.json`. Step 05 then follows step 04's own
decision, loudly, instead of stopping a run whose mix exists under another name (a fresh
`--profile learn` run stopped so: CUT_SIZES "2", one summary per chunk left). A cut that
was never requested, or a mix step 04 did not record, is not guessed at: the caller's
error names the file to make.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ktools.io import read_json
from ktools.paths import OutputPaths

log = logging.getLogger(__name__)


def training_mix_for(paths: OutputPaths, cut: int) -> Path:
    """The mix of `cut`, or the mix step 04 built instead of it (its recorded fallback)."""
    wanted = paths.training_mix(cut)
    if wanted.is_file() or not paths.mix_stats.is_file():
        return wanted
    try:
        stats = read_json(paths.mix_stats)
        feasibility = {int(f["cut"]): f for f in stats.get("feasibility", []) if isinstance(f, dict)}
    except (OSError, ValueError, KeyError, TypeError):
        return wanted
    if feasibility.get(cut, {}).get("status") != "dropped":
        return wanted
    for other, entry in sorted(feasibility.items()):
        if entry.get("status") == "fallback" and paths.training_mix(other).is_file():
            log.warning("no mix of cut %d: step 04 dropped it (%s) and built cut %d instead; training on %s",
                        cut, feasibility[cut].get("reason", ""), other, paths.training_mix(other))
            return paths.training_mix(other)
    return wanted
