"""The "Training Data Generator" (TDG) compatibility layer: its settings, inputs and outputs on
the ktools engine. ("TDG" in names here is that tool's abbreviation.)

- `generator`: `QAGenerator`, its programmatic entry point (`ktools generate` runs it); the
  generation itself is step 03's (`ktools.generate.step`), so the same seed, settings and teacher
  give the same rows as notebook 03; this layer adds the per-document files around them.
- `settings`: GENERATOR_* / OLLAMA_* variables and flags mapped onto ktools settings.
- `chunk_files`: a folder of chunk files (`--chunks-dir`) read into seed rows.
- `qa_files`: the per-document `{document}_qa.json` and combined `training_data.json` layouts.
- `qa_documents`: step-03 rows (`gen.jsonl`) grouped into those per-document files.
- `qa_inputs`: any of the above (file or folder) read back for `ktools combine` / `convert`.

    from ktools.compat.training_data_generator import QAGenerator
"""

from ktools.compat.training_data_generator.generator import QAGenerator, TDGError

__all__ = ["QAGenerator", "TDGError"]
