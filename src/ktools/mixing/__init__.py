"""Step 04, knowledge mixing: training mixes at several cut sizes, exact token counts, eval split.

Public API::

    from ktools.mixing import MixOptions, build_mixes, mixing_step
    report = build_mixes(MixOptions(cut_sizes=[5, 50], eval_share=0.1))   # or build_mixes(settings)
    report = mixing_step(settings, MixOptions.from_settings(settings))    # step 04 as every caller runs it
    report.cut_table(); report.dataset_table(); plot_token_histograms(report)

Modules: `load` (step-03 input), `split` (leak-free eval set), `cuts` (cut sizes and
sampling), `formats` (chat / GPT-OSS / Alpaca / eval rows), `tokens` (fast exact
chat-template token counts), `stats` (report, tables, plots), `build` (the pipeline),
`step` (the entry the notebook, `ktools mix` and the Kubeflow component call: `build_mixes`
with the teacher rephrasing the corpus exam).
"""

from ktools.mixing.build import MixOptions, build_mixes, check_feasibility
from ktools.mixing.cuts import CutPlan, plan_cuts, select_cut
from ktools.mixing.load import MixingInputError, load_generated
from ktools.mixing.split import split_eval
from ktools.mixing.stats import MixReport, plot_token_histograms
from ktools.mixing.step import mixing_step
from ktools.mixing.tokens import TokenCounter, TokenCountMismatch, reference_count

__all__ = [
    "CutPlan",
    "MixOptions",
    "MixReport",
    "MixingInputError",
    "TokenCountMismatch",
    "TokenCounter",
    "build_mixes",
    "check_feasibility",
    "load_generated",
    "mixing_step",
    "plan_cuts",
    "plot_token_histograms",
    "reference_count",
    "select_cut",
    "split_eval",
]
