"""The embedded teacher: SmolLM2-135M-Instruct behind an OpenAI-compatible API on 127.0.0.1.

- `protocol`  — request validation and response bodies (the wire format)
- `sampling`  — per-row temperature / top_p / seed token choice
- `kv`        — a batch KV cache rows can join and leave between steps
- `engine`    — the continuous-batching generation worker
- `server`    — the asyncio HTTP front end
- `lifecycle` — pid/log files, background start, `ensure_local_teacher`, stop, status

The public entry points are re-exported by `ktools.llm.local.teacher`.
"""
