"""Step 02: documents → markdown → token chunks → seed dataset.

- `ktools.documents.convert`: `convert_source`, `convert_sources` (files, folders, URLs → markdown + manifest)
- `ktools.documents.chunking`: `chunk_markdown` (structure-aware, by tokens, with overlap and offsets)
- `ktools.documents.seed`: ICL fields given or drafted by the teacher, `validate_seed`
- `ktools.documents.step`: `convert_step`, `chunk_step`, `seed_step` + display helpers (notebook, CLI)
- `ktools.documents.errors`: `DocumentError` (source, page/line/field, hint), `SeedValidationError`
"""
