"""ktools: knowledge tuning — turn your own documents into a small LLM that knows them.

Layers (imports point downward only): notebooks/cli → pipeline steps (documents,
generate, mixing, train, evaluate) → services (llm, prompts, models) → io/config/paths.

The rooms:

- `config`, `paths`, `io`, `models`, `training_rows`, `cpuload`, `setup_checks`: settings,
  the `output/step_NN` layout, JSONL and atomic files, model loading, the chat/Alpaca row
  shapes, CPU load, the checks of 00_Setup.
- `llm/` the teacher client (providers, transport, endpoints); `llm/local/` the embedded teacher.
- `prompts/` the prompt templates.
- Steps, each with one entry call that its notebook, its CLI command and its Kubeflow
  component make: 02 `documents/` (`documents.step`), 03 `generate/` (`generate.step`),
  04 `mixing/` with `knowledge/` (`mixing.step`), 05 `train/` (`train.launch.run_training`),
  01 and 06 `evaluate/` (`evaluate.steps`).
- `export/` Q&A in trainer and reviewer formats (`ktools convert`).
- `compat/training_data_generator/` the Training Data Generator's settings, flags and files
  (`ktools generate`, `ktools combine`).
- `notebook_runner/` runs the step notebooks with papermill (`ktools run`).
- `kubeflow/` steps 02-05 as a Kubeflow pipeline (`ktools pipeline`).
- `cli/` the `ktools` command; `testing/` fakes for tests (scripted teacher, fake OpenAI server).
- `tdg` the old import path of `compat.training_data_generator.QAGenerator`, kept for scripts.
"""

__version__ = "0.1.0"
