"""The embedded teacher on llama.cpp: the GGUF as shipped, decoded with batching across requests.

Why it exists: it honours `response_format` (grammar-constrained sampling) and serves the
GGUF as shipped, in a fraction of the transformers engine's memory. Why it is not the
default: on this machine (Xeon with AVX512-BF16/AMX, which torch uses for bf16 matmuls)
`bench/teacher_serving.py` measured it at a fraction of the transformers engine's
tokens/s at concurrency 16 with ~460-token prompts (prefill of Q4_1 weights without
ggml's AMX kernels, which crash here: see `use_extra_bufts` below).

Bindings: the low-level ctypes API of `llama-cpp-python` (the `model` extra). The
prebuilt alternatives on the package index do not load on this Debian 12 machine
(`llama-cpp-py-sync`'s libllama.so needs GLIBC 2.38, the system has 2.36; the
`llama-cpp-cffi` wheel needs a newer libstdc++), so `make install` builds
llama-cpp-python from source with the system gcc (00_Setup/README.md gives the measured
time): `make llama`.

How: one worker thread runs a continuous-batching loop over llama.cpp's C API. Every
sequence (one per sample of a request) has its own llama.cpp sequence id in one
unified KV cache; each step decodes one token for every running sequence plus, in the
same `llama_decode` call, prompt tokens of newly admitted requests (chunked to fit
`n_batch`). A request with `n` samples is prefilled once, then its cache cells are
shared with the other n-1 sequences (`llama_memory_seq_cp`, which in a unified cache
adds sequence ids to cells instead of copying them). Every sequence has its own sampler
chain (temperature, top_p, seed, and a GBNF grammar for `response_format`). Admission
reserves prompt + n * max_tokens cache cells per request, so a running sequence never
finds the cache full.

The thread count follows the machine (`threads.ThreadGovernor`, applied with
`llama_set_n_threads` between steps).
"""

from __future__ import annotations

import ctypes
import json
import logging
import secrets
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktools.cpuload import ThreadGovernor
from ktools.llm.local.requests import Completion, EngineStopped, GenerationRequest, GenerationResult, settle

log = logging.getLogger(__name__)

_GGML_LOG_WARN = 3  # ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
_GGML_LOG_ERROR = 4
_LOG_CALLBACK: Any = None


def available() -> bool:
    """True when llama-cpp-python is installed and its libllama loads on this machine."""
    try:
        import llama_cpp.llama_cpp  # noqa: F401 - loads libllama.so
    except Exception:  # ImportError, or OSError/RuntimeError from a library that does not load here
        return False
    return True


@dataclass
class _Seq:
    request: GenerationRequest
    sample: int
    seq_id: int
    sampler: Any
    position: int  # position of the next token fed
    tokens: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    next_token: int | None = None  # sampled, not yet fed to the model
    reserved: float = 0.0  # this sample's share of its request's cache reservation


@dataclass
class _Admitted:
    """A request whose prompt is being fed (possibly over several steps)."""

    request: GenerationRequest
    seq_ids: list[int]
    reserved: int
    fed: int = 0


class LlamaEngine:
    def __init__(self, model_path: str | Path, *, max_batch: int = 32, threads: int = 2, fixed_threads: bool = False,
                 kv_tokens: int = 32768, n_batch: int = 2048, flash_attention: bool = True,
                 unified: bool = True, seq_window: int = 2048):
        import llama_cpp.llama_cpp as lib

        self.lib = lib
        self._quiet_native_logs()
        lib.llama_backend_init()
        model_params = lib.llama_model_default_params()
        model_params.n_gpu_layers = 0
        # No extra weight buffer types: on this Sapphire Rapids VM ggml chose its AMX kernels from the
        # CPU flags and the first tileloadd killed the process (SIGILL), also after this process had
        # been granted the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM succeeds here).
        model_params.use_extra_bufts = False
        self.model = lib.llama_model_load_from_file(str(model_path).encode(), model_params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {model_path}")
        self.max_batch = max_batch
        self.n_batch = n_batch
        self.unified = unified
        # Unified: one cache of kv_tokens cells for all sequences (flexible sizes, but every row
        # attends over all used cells). Split: one stream of seq_window cells per sequence.
        self.kv_tokens = kv_tokens if unified else seq_window * max_batch
        params = self.lib.llama_context_default_params()
        params.n_ctx = self.kv_tokens
        params.n_batch = n_batch
        params.n_ubatch = min(512, n_batch)
        # Sequence ids: a full batch plus one request of the largest n the API allows.
        self.n_seq_max = max_batch + 64 if unified else max_batch
        params.n_seq_max = self.n_seq_max
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = unified
        params.flash_attn_type = 1 if flash_attention else 0
        params.no_perf = True
        params.embeddings = False
        self.ctx = self.lib.llama_init_from_model(self.model, params)
        if not self.ctx:
            self.lib.llama_model_free(self.model)
            raise RuntimeError(f"llama.cpp could not create a context of {self.kv_tokens} tokens")
        self.vocab = self.lib.llama_model_get_vocab(self.model)
        self.memory = self.lib.llama_get_memory(self.ctx)
        self.context_window = min(int(self.lib.llama_model_n_ctx_train(self.model)),
                                  self.kv_tokens if unified else seq_window)
        self.governor = ThreadGovernor(threads, fixed=fixed_threads)
        self._batch = self.lib.llama_batch_init(n_batch, 0, 1)
        self._pieces: dict[int, bytes] = {}
        self._piece_buffer = ctypes.create_string_buffer(256)
        self.stats = {"requests": 0, "sequences": 0, "prompt_tokens": 0, "completion_tokens": 0,
                      "steps": 0, "busy_seconds": 0.0, "errors": 0, "thread_changes": 0}
        self._waiting: deque[GenerationRequest] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._free_ids = list(range(self.n_seq_max))
        self._admitted: list[_Admitted] = []
        self._seqs: list[_Seq] = []
        self._reserved = 0
        self._thread: threading.Thread | None = None

    # --- public ---
    @property
    def threads(self) -> int:
        return self.governor.threads

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def active_rows(self) -> int:
        return len(self._seqs)

    def start(self) -> LlamaEngine:
        self._thread = threading.Thread(target=self._run, name="teacher-llama-engine", daemon=True)
        self._thread.start()
        return self

    def submit(self, request: GenerationRequest) -> Future:
        with self._cond:
            if self._stopping:
                raise EngineStopped("the teacher is shutting down")
            self._waiting.append(request)
            self._cond.notify()
        return request.future

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return  # never free native memory under a running decode
        self.lib.llama_batch_free(self._batch)
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 16
        buffer = (self.lib.llama_token * capacity)()
        # add_special=False: the chat template already wrote the special tokens, as transformers does.
        count = self.lib.llama_tokenize(self.vocab, data, len(data), buffer, capacity, False, True)
        if count < 0:
            raise RuntimeError(f"llama_tokenize needed {-count} tokens, more than {capacity}")
        return list(buffer[:count])

    def chat_template(self) -> str | None:
        template = self.lib.llama_model_chat_template(self.model, None)
        return template.decode("utf-8") if template else None

    def check_grammar(self, grammar: str) -> None:
        """Raise ValueError if llama.cpp rejects the grammar (before it reaches the worker)."""
        sampler = self.lib.llama_sampler_init_grammar(self.vocab, grammar.encode("utf-8"), b"root")
        if not sampler:
            raise ValueError("llama.cpp could not parse the grammar derived from response_format")
        self.lib.llama_sampler_free(sampler)

    # --- the worker thread ---
    def _quiet_native_logs(self) -> None:
        """Route llama.cpp's own logging (very chatty at load) to ours, warnings and errors only."""

        @self.lib.llama_log_callback
        def forward(level: int, text: bytes | None, _data: Any) -> None:
            if level in (_GGML_LOG_WARN, _GGML_LOG_ERROR) and text:
                message = text.decode("utf-8", "replace").rstrip()
                if message:
                    log.log(logging.WARNING if level == _GGML_LOG_WARN else logging.ERROR, "llama.cpp: %s", message)

        global _LOG_CALLBACK
        _LOG_CALLBACK = forward  # keep it alive as long as the library may call it
        self.lib.llama_log_set(forward, ctypes.c_void_p(0))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._seqs and not self._admitted and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    break
            started = time.perf_counter()
            try:
                threads = self.governor.poll()
                if threads is not None:
                    self.lib.llama_set_n_threads(self.ctx, threads, threads)
                    self.stats["thread_changes"] += 1
                self._drop_cancelled()
                self._admit()
                self._step()
            except Exception as exc:  # keep serving: fail only the requests in flight
                log.exception("llama.cpp generation step failed; failing %d requests", len(self._in_flight()))
                self.stats["errors"] += 1
                for request in self._in_flight():
                    settle(request.future, exception=exc)
                self._reset()
            self.stats["busy_seconds"] += time.perf_counter() - started
        for request in [*self._waiting, *self._in_flight()]:
            settle(request.future, exception=EngineStopped("the teacher shut down"))
        self._reset()

    def _in_flight(self) -> list[GenerationRequest]:
        requests = {id(a.request): a.request for a in self._admitted}
        requests.update({id(s.request): s.request for s in self._seqs})
        return list(requests.values())

    def _reset(self) -> None:
        for seq in self._seqs:
            self.lib.llama_sampler_free(seq.sampler)
        self._seqs, self._admitted, self._reserved = [], [], 0
        self._free_ids = list(range(self.n_seq_max))
        self.lib.llama_memory_clear(self.memory, True)

    def _reservation(self, request: GenerationRequest) -> int:
        return len(request.prompt_ids) + request.n * request.max_tokens

    def _admit(self) -> None:
        with self._cond:
            while self._waiting:
                request = self._waiting[0]
                if request.cancelled:
                    self._waiting.popleft()
                    continue
                rows = len(self._seqs) + sum(len(a.seq_ids) for a in self._admitted)
                need = min(self._reservation(request), self.kv_tokens)
                empty = rows == 0
                fits = rows + request.n <= self.max_batch and (not self.unified
                                                               or self._reserved + need <= self.kv_tokens)
                if not (fits or empty) or request.n > len(self._free_ids):
                    break  # the first request always enters an empty batch
                self._waiting.popleft()
                ids = [self._free_ids.pop() for _ in range(request.n)]
                self._admitted.append(_Admitted(request, ids, need))
                self._reserved += need
                self.stats["requests"] += 1
                self.stats["sequences"] += request.n
                self.stats["prompt_tokens"] += len(request.prompt_ids)

    def _drop_cancelled(self) -> None:
        for admitted in [a for a in self._admitted if a.request.cancelled]:
            self._admitted.remove(admitted)
            for seq_id in admitted.seq_ids:
                self.lib.llama_memory_seq_rm(self.memory, seq_id, -1, -1)
                self._free_ids.append(seq_id)
            self._reserved -= admitted.reserved
            admitted.request.future.cancel()
        for seq in [s for s in self._seqs if s.request.cancelled]:
            self._release(seq)
            seq.request.future.cancel()

    def _step(self) -> None:
        batch, count = self._batch, 0
        decoding = [s for s in self._seqs if s.next_token is not None]
        for seq in decoding:
            self._put(count, seq.next_token, seq.position, seq.seq_id, True)
            count += 1
        finishing: list[tuple[_Admitted, int]] = []  # prompts whose last token is in this batch
        for admitted in self._admitted:
            prompt = admitted.request.prompt_ids
            take = min(len(prompt) - admitted.fed, self.n_batch - count)
            if take <= 0:
                break
            for offset in range(admitted.fed, admitted.fed + take):
                last = offset == len(prompt) - 1
                self._put(count, prompt[offset], offset, admitted.seq_ids[0], last)
                if last:
                    finishing.append((admitted, count))
                count += 1
            admitted.fed += take
        if count == 0:
            return
        batch.n_tokens = count
        status = self.lib.llama_decode(self.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status} for a batch of {count} tokens "
                               f"({len(decoding)} sequences decoding)")
        self.stats["steps"] += 1
        for index, seq in enumerate(decoding):
            seq.position += 1
            self._sample(seq, index)
        for admitted, index in finishing:
            self._admitted.remove(admitted)
            request = admitted.request
            for sample, seq_id in enumerate(admitted.seq_ids):
                if sample:
                    self.lib.llama_memory_seq_cp(self.memory, admitted.seq_ids[0], seq_id, -1, -1)
                seq = _Seq(request, sample, seq_id, self._sampler(request, sample), len(request.prompt_ids),
                           reserved=admitted.reserved / request.n)
                self._seqs.append(seq)
                self._sample(seq, index)

    def _put(self, i: int, token: int, position: int, seq_id: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = position
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq_id
        batch.logits[i] = 1 if logits else 0

    def _sample(self, seq: _Seq, index: int) -> None:
        token = int(self.lib.llama_sampler_sample(seq.sampler, self.ctx, index))
        self.stats["completion_tokens"] += 1
        request = seq.request
        finished: Completion | None = None
        if self.lib.llama_vocab_is_eog(self.vocab, token):
            finished = Completion(_text(seq.text), "stop", len(seq.tokens) + 1)
        else:
            seq.tokens.append(token)
            seq.text += self._piece(token)
            if request.stop:
                text = _text(seq.text)
                cut = min((i for i in (text.find(s) for s in request.stop) if i >= 0), default=-1)
                if cut >= 0:
                    finished = Completion(text[:cut], "stop", len(seq.tokens))
            if finished is None and (len(seq.tokens) >= request.max_tokens
                                     or seq.position + 1 >= self.context_window):
                finished = Completion(_text(seq.text), "length", len(seq.tokens))
        if finished is None:
            seq.next_token = token
            return
        request.results[seq.sample] = finished
        self._release(seq)
        if len(request.results) == request.n:
            completions = [request.results[i] for i in range(request.n)]
            settle(request.future, result=GenerationResult(completions, len(request.prompt_ids)))

    def _release(self, seq: _Seq) -> None:
        if seq in self._seqs:
            self._seqs.remove(seq)
        seq.next_token = None
        self.lib.llama_memory_seq_rm(self.memory, seq.seq_id, -1, -1)
        self.lib.llama_sampler_free(seq.sampler)
        self._free_ids.append(seq.seq_id)
        self._reserved -= seq.reserved
        if not self._seqs and not self._admitted:
            self._reserved = 0  # no drift from the per-sample split of a reservation

    def _sampler(self, request: GenerationRequest, sample: int) -> Any:
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if request.grammar:
            grammar = lib.llama_sampler_init_grammar(self.vocab, request.grammar.encode("utf-8"), b"root")
            if not grammar:
                lib.llama_sampler_free(chain)
                raise ValueError("llama.cpp rejected the response_format grammar")
            lib.llama_sampler_chain_add(chain, grammar)
        if request.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        # Temperature before top_p, as OpenAI and the transformers engine apply them.
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(request.temperature))
        if request.top_p < 1.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(request.top_p, 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(_seed(request.seed, sample)))
        return chain

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            size = self.lib.llama_token_to_piece(self.vocab, token, self._piece_buffer, 256, 0, False)
            piece = self._piece_buffer.raw[:max(0, size)]
            self._pieces[token] = piece
        return piece


def _text(data: bytearray) -> str:
    # A multi-byte character can be split across tokens; an unfinished one at the end is dropped.
    return bytes(data).decode("utf-8", "ignore")


def _seed(seed: int | None, sample: int) -> int:
    base = seed if seed is not None else secrets.randbits(31)
    # Distinct, reproducible streams for the n samples of one seeded request; never
    # LLAMA_DEFAULT_SEED (0xFFFFFFFF), which asks llama.cpp for a random seed.
    return (base * 1_000_003 + sample) % 0xFFFFFFFF


class LlamaBackend:
    """The server's model side on llama.cpp (see `server.Backend`)."""

    name = "llama.cpp"

    def __init__(self, *, max_batch: int = 32, threads: int | None = None, kv_tokens: int = 32768,
                 model_path: str | Path | None = None):
        from ktools.llm.local.server import default_threads
        from ktools.models import embedded_gguf_path

        chosen = threads or default_threads()
        self.engine = LlamaEngine(model_path or embedded_gguf_path(), max_batch=max_batch, threads=chosen,
                                  fixed_threads=threads is not None, kv_tokens=kv_tokens).start()
        self.context_window = self.engine.context_window
        template = self.engine.chat_template()
        if not template:
            raise RuntimeError("the GGUF carries no chat template")
        self._template = _compile_template(template)

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        text = self._template.render(messages=messages, add_generation_prompt=True)
        return self.engine.tokenize(text)

    def grammar(self, response_format: dict[str, Any]) -> str | None:
        from ktools.llm.local.structured import grammar_for

        grammar = grammar_for(response_format)
        if grammar is not None:
            self.engine.check_grammar(grammar)
        return grammar

    def submit(self, request: Any) -> Any:
        return self.engine.submit(request)

    def info(self) -> dict[str, Any]:
        engine = self.engine
        return {"backend": self.name, "queue": engine.queue_depth, "active_sequences": engine.active_rows,
                "max_batch": engine.max_batch, "batching": "continuous", "dtype": "gguf",
                "threads": engine.threads, "threads_adaptive": not engine.governor.fixed,
                "kv_tokens": engine.kv_tokens, "stats": dict(engine.stats)}

    def close(self) -> None:
        self.engine.shutdown()


def _compile_template(source: str) -> Any:
    """The GGUF's Jinja chat template, rendered as transformers renders it (same prompt tokens)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(f"chat template: {message}")

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=["jinja2.ext.loopcontrols"])
    environment.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
    environment.globals["raise_exception"] = raise_exception
    return environment.from_string(source)
