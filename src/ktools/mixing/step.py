"""Step 04 in one call: what notebook 04, `ktools mix` and the Kubeflow component all run.

    options = MixOptions.from_settings(settings, eval_share=0.1, seed=42, corpus_exam=True)
    report = mixing_step(settings, options)        # output/step_03 (+ step_02's chunks) -> output/step_04

As `generate.step` is for step 03: the callers differ in where the parameters come from (a
notebook cell, flags, pipeline parameters) and in what they show around the run, never in
how the mixes and the corpus exam are made. The one thing beyond `build_mixes` is the
teacher: a real (non-embedded) one rewrites the exam's rule-built questions
(`knowledge.rephrase`), so a caller that left it out would build a different exam from the
same inputs. Owning its client here (made from the settings, closed afterwards) keeps
every caller on the same exam.
"""

from __future__ import annotations

from typing import Any

from ktools.knowledge.rephrase import teacher_rephraser
from ktools.mixing.build import MixOptions, build_mixes
from ktools.mixing.stats import MixReport
from ktools.paths import OutputPaths


def mixing_step(settings: Any, options: MixOptions, paths: OutputPaths | None = None, *, progress: bool = True,
                tokenizer: Any = None) -> MixReport:
    """Build step 04's outputs (`build_mixes`) with the settings' teacher rephrasing the corpus
    exam's questions when there is an exam to build and the teacher is not the embedded one.

    `paths`: default from the settings; `tokenizer`: default the options' (see `build_mixes`).
    """
    paths = paths or OutputPaths.from_settings(settings)
    rephrase = teacher_rephraser(settings) if options.corpus_exam else None
    try:
        return build_mixes(options, paths, tokenizer=tokenizer, progress=progress, rephrase=rephrase)
    finally:
        if rephrase is not None:
            rephrase.close()
