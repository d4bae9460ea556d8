"""`ktools serve-teacher`: the embedded teacher in the foreground, background, or its status/stop."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys

from ktools.config import LOCAL_TEACHER_HOST, LOCAL_TEACHER_PORT, setting
from ktools.llm.local import lifecycle
from ktools.llm.local import teacher as local_teacher

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=LOCAL_TEACHER_HOST, help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=LOCAL_TEACHER_PORT, help="port (default %(default)s)")
    parser.add_argument("--max-batch", type=int, default=32,
                        help="most sequences decoded together; a request with n counts n (default %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: half the cores, at least 1)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="weights dtype; auto = bfloat16 on CPUs with native bf16, else float32")
    parser.add_argument("--backend", choices=("transformers", "llama"), default=None,
                        help="model engine: transformers, or llama.cpp on the GGUF (needs `make llama`; honours "
                             "response_format); default: LOCAL_TEACHER_BACKEND (transformers)")
    parser.add_argument("--idle-timeout", type=float, default=None,
                        help="exit after this many seconds without requests (0: never); default: never in the "
                             "foreground, LOCAL_TEACHER_IDLE_TIMEOUT with --background")
    parser.add_argument("--static-batching", action="store_true",
                        help="admit new requests only when the batch is empty (for benchmarks)")
    parser.add_argument("--forward", choices=("lean", "generic"), default="lean",
                        help="transformers backend: lean = the engine's own Llama forward (default, faster), "
                             "generic = model(...) as before (for benchmarks)")
    parser.add_argument("--draft-tokens", type=int, default=0,
                        help="transformers backend: prompt-lookup speculative decoding with up to N draft tokens "
                             "per row and step (default 0 = off; see llm/local/speculative.py)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--background", action="store_true",
                      help="start detached (pid file + log in the cache dir) and wait until it is healthy")
    mode.add_argument("--status", action="store_true", help="show whether the teacher runs on this port")
    mode.add_argument("--stop", action="store_true", help="stop the teacher running on this port")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for health (--background)")
    parser.add_argument("--api-key", default=None,
                        help="require this key on /v1 requests (default: LOCAL_TEACHER_API_KEY; prefer the "
                             "variable: a command-line argument is visible to other users in `ps`)")
    parser.add_argument("--max-connections", type=int, default=None,
                        help="open connections served at once; more get 503 (default 256)")


def run(args: argparse.Namespace) -> int:
    if args.status:
        return _status(args)
    if args.stop:
        pid = local_teacher.stop(args.host, args.port)
        if pid:
            print(f"stopped the embedded teacher (pid {pid})")
            return 0
        if local_teacher.probe(f"http://{args.host}:{args.port}/v1").reachable:
            # Whatever its /health says, ktools only stops a process it started (pid file + command line).
            print(f"error: something answers on {args.host}:{args.port}, but no teacher that ktools started "
                  f"on this machine (no pid file naming a `ktools serve-teacher --port {args.port}` process); "
                  "nothing was stopped: stop it where it was started", file=sys.stderr)
            return 1
        print(f"no embedded teacher runs on port {args.port}")
        return 0
    if args.background:
        extra = ["--threads", str(args.threads)] if args.threads else []
        extra += ["--dtype", args.dtype]
        if args.backend:
            extra += ["--backend", args.backend]
        if args.idle_timeout is not None:
            extra += ["--idle-timeout", str(args.idle_timeout)]
        if args.max_connections:
            extra += ["--max-connections", str(args.max_connections)]
        if args.api_key:  # to the child through its environment, never its command line
            os.environ["LOCAL_TEACHER_API_KEY"] = args.api_key
        if args.static_batching:
            extra.append("--static-batching")
        if args.forward != "lean":
            extra += ["--forward", args.forward]
        if args.draft_tokens:
            extra += ["--draft-tokens", str(args.draft_tokens)]
        try:
            health = local_teacher.start_background(args.host, args.port, max_batch=args.max_batch,
                                                    timeout=args.timeout, extra_args=extra)
        except local_teacher.LocalTeacherError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        payload = health.payload or {}
        print(f"embedded teacher ready on http://{args.host}:{args.port}/v1 (pid {payload.get('pid')}); "
              f"log: {lifecycle.log_file(args.port)}; stop with: ktools serve-teacher --stop --port {args.port}")
        return 0
    return _foreground(args)


def _foreground(args: argparse.Namespace) -> int:
    health = local_teacher.probe(f"http://{args.host}:{args.port}/v1")
    if health.reachable:
        who = f"an embedded teacher (pid {(health.payload or {}).get('pid')})" if health.ours else "another service"
        print(f"error: {who} already answers on {args.host}:{args.port}; stop it or pick another --port",
              file=sys.stderr)
        return 1
    pid_path = lifecycle.pid_file(args.port)

    def on_ready(server) -> None:
        pid_path.write_text(f"{os.getpid()}\n")
        log.info("serving %s on http://%s:%d/v1 (Ctrl+C to stop)", server.model_id, server.host, server.port)

    from ktools.config import load_settings
    from ktools.llm.local.server import MAX_CONNECTIONS

    api_key = args.api_key or load_settings().local_teacher_api_key.reveal() or None
    try:
        local_teacher.serve(args.host, args.port, max_batch=args.max_batch, continuous=not args.static_batching,
                            forward=args.forward, draft_tokens=args.draft_tokens,
                            threads=args.threads, dtype=args.dtype, on_ready=on_ready, api_key=api_key,
                            max_connections=args.max_connections or MAX_CONNECTIONS,
                            backend=args.backend or setting("teacher_backend"), idle_timeout=args.idle_timeout or 0.0)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"error: port {args.port} on {args.host} is in use; pick another --port", file=sys.stderr)
            return 1
        raise
    finally:
        if lifecycle.read_pid(args.port) in (None, os.getpid()):
            pid_path.unlink(missing_ok=True)
    return 0


def _status(args: argparse.Namespace) -> int:
    info = local_teacher.status(args.host, args.port)
    print(f"embedded teacher at {info['url']}: {info['status']}" + (f" (pid {info['pid']})" if info["pid"] else ""))
    if info["health"]:
        shown = {k: v for k, v in info["health"].items() if k not in {"service"}}
        print(json.dumps(shown, indent=2))
    elif info["detail"]:
        print(f"  {info['detail']}")
    print(f"  log: {info['log_file']}")
    return 0 if info["ours"] else 3
