"""ktools: knowledge tuning — turn your own documents into a small LLM that knows them.

Layers (imports point downward only): notebooks/cli → pipeline steps (documents,
generate, mixing, train, evaluate) → services (llm, prompts, models) → io/config/paths.
"""

__version__ = "0.1.0"
