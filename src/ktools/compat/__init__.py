"""Compatibility layers: ktools speaking the file layouts, settings and command-line flags of
tools people used before it, so their scripts, `.env` files and outputs keep working.

- `training_data_generator`: the standalone "Training Data Generator" (`ktools generate`'s
  GENERATOR_* / OLLAMA_* settings and flags, chunk-file folders, per-document `{document}_qa.json`
  and `training_data.json`; `ktools combine` and the inputs of `ktools convert`).

Nothing outside `cli/` and `export/` depends on this package; the pipeline steps never do.
"""
