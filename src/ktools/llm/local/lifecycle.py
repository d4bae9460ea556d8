"""Starting, finding and stopping the embedded teacher as a background process.

Files live in `<cache>/teacher/` (cache = `ktools.models.cache_root()`), one set per
port so several teachers (tests on free ports, the default 8765) never collide:
`teacher-<port>.pid`, `teacher-<port>.log`, `teacher-<port>.lock`.

`ensure_local_teacher(base_url)` is what the client calls for provider "local":
- loopback URL (127.0.0.1 / localhost / ::1), any port: if our teacher answers,
  nothing to do; if nothing answers, start one on that port in the background and
  wait for `/health`; if something else answers there, raise `LocalTeacherError`
  saying what to change. A file lock makes two processes calling at once start one
  server, not two.
- any other host: we cannot start a server there; it must already answer.

A teacher started here in the background exits by itself after
`LOCAL_TEACHER_IDLE_TIMEOUT` seconds without requests (default 600), and `ktools run`
stops the teachers that appeared during the run (`stop_teachers_started_during`), so a
finished demo does not leave gigabytes of model memory behind. `running_teachers()`
lists what runs now (for `ktools status`).

This module imports neither torch nor transformers: checking/starting stays cheap.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ktools.config import LOCAL_TEACHER_BASE_URL, LOCAL_TEACHER_HOST, LOCAL_TEACHER_PORT

log = logging.getLogger(__name__)

SERVICE_NAME = "ktools-local-teacher"  # what /health calls itself (see server.py)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LocalTeacherError(RuntimeError):
    """The embedded teacher could not be reached or started; the message says what to do."""


@dataclass(frozen=True)
class Health:
    """What answered at a teacher URL: `ours` is True only for a ktools teacher."""

    reachable: bool
    ours: bool = False
    status: str = ""  # "ok", "loading", "error" for ours
    payload: dict[str, Any] | None = None
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.ours and self.status == "ok"


def split_base_url(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url or LOCAL_TEACHER_BASE_URL)
    host = parts.hostname or LOCAL_TEACHER_HOST
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host, port


def is_loopback(base_url: str) -> bool:
    return split_base_url(base_url)[0] in LOOPBACK_HOSTS


def server_root(base_url: str) -> str:
    """'http://127.0.0.1:8765/v1' -> 'http://127.0.0.1:8765'."""
    parts = urlsplit(base_url or LOCAL_TEACHER_BASE_URL)
    return f"{parts.scheme or 'http'}://{parts.netloc}"


def probe(base_url: str, timeout: float = 2.0) -> Health:
    """Ask `/health` (no proxy: it is a local check)."""
    url = server_root(base_url) + "/health"
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            raw = response.read()
            code = response.status
    except urllib.error.HTTPError as exc:  # 503 while loading is still an answer
        raw, code = exc.read(), exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        return Health(False, detail=str(getattr(exc, "reason", exc)))
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Health(True, detail=f"HTTP {code} with a non-JSON body at {url}")
    if isinstance(payload, dict) and payload.get("service") == SERVICE_NAME:
        return Health(True, True, str(payload.get("status", "")), payload)
    return Health(True, detail=f"HTTP {code} from {url}, not a ktools teacher")


# --- files ---
def teacher_dir() -> Path:
    from ktools.models import cache_root

    path = cache_root() / "teacher"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_file(port: int) -> Path:
    return teacher_dir() / f"teacher-{port}.pid"


def log_file(port: int) -> Path:
    return teacher_dir() / f"teacher-{port}.log"


def read_pid(port: int) -> int | None:
    """The pid in our pid file, if that process is alive and is ktools' teacher on this port.
    This is the only pid ktools ever signals: never one read from a network reply."""
    try:
        pid = int(pid_file(port).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 1 and _alive(pid) and is_teacher_process(pid, port) else None


def is_teacher_process(pid: int, port: int) -> bool:
    """Whether `pid` runs `ktools serve-teacher ... --port <port>`: guards against a stale pid
    file whose pid the OS has since given to another program."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs (macOS): trust our own pid file
    except OSError:
        return False
    launcher = any(arg in (b"ktools", b"ktools.cli", b"ktools.__main__") or arg.endswith(b"/ktools")
                   for arg in argv)
    if not (launcher and b"serve-teacher" in argv):
        return False
    ports = [b for a, b in zip(argv, argv[1:], strict=False) if a == b"--port"]
    ports += [a.split(b"=", 1)[1] for a in argv if a.startswith(b"--port=")]
    return ports[-1:] == [str(port).encode()] if ports else port == LOCAL_TEACHER_PORT


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (started by us, not yet reaped) is not alive for our purposes.
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


@contextlib.contextmanager
def _port_lock(port: int):
    with open(teacher_dir() / f"teacher-{port}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- start / wait / stop ---
def spawn(host: str = LOCAL_TEACHER_HOST, port: int = LOCAL_TEACHER_PORT, *, max_batch: int | None = None,
          extra_args: list[str] | None = None) -> subprocess.Popen:
    """Start `ktools serve-teacher` detached (own session), output to the log file, pid recorded."""
    command = [sys.executable, "-m", "ktools", "serve-teacher", "--host", host, "--port", str(port)]
    if max_batch:
        command += ["--max-batch", str(max_batch)]
    command += extra_args or []
    if "--idle-timeout" not in command:
        from ktools.config import setting

        command += ["--idle-timeout", str(setting("teacher_idle_timeout"))]
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    log_path = log_file(port)
    with open(log_path, "ab") as log_handle:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_handle, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True, close_fds=True)
    pid_file(port).write_text(f"{process.pid}\n")
    log.info("started the embedded teacher (pid %d) on http://%s:%d/v1; log: %s", process.pid, host, port, log_path)
    return process


def wait_until_ready(base_url: str, timeout: float, pid: int | None = None) -> Health:
    deadline = time.monotonic() + timeout
    health = probe(base_url)
    while not health.ready:
        if health.ours and health.status == "error":
            raise LocalTeacherError(f"the embedded teacher at {base_url} failed to load its model: "
                                    f"{(health.payload or {}).get('error')}")
        if pid is not None and not _alive(pid):
            port = split_base_url(base_url)[1]
            raise LocalTeacherError(f"the embedded teacher process {pid} exited during start-up; "
                                    f"see its log: {log_file(port)}\n{_log_tail(port)}")
        if time.monotonic() > deadline:
            raise LocalTeacherError(f"the embedded teacher at {base_url} was not ready after {timeout:.0f} s "
                                    f"(last: {health.status or health.detail}); see {log_file(split_base_url(base_url)[1])}")
        time.sleep(0.25)
        health = probe(base_url)
    return health


def _log_tail(port: int, lines: int = 15) -> str:
    try:
        return "\n".join(log_file(port).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _not_ours_error(base_url: str, health: Health) -> LocalTeacherError:
    host, port = split_base_url(base_url)
    return LocalTeacherError(
        f"Something else is answering on {host}:{port} ({health.detail}). The embedded teacher cannot "
        f"start there. Either stop that service, or point ktools at it as a teacher "
        f"(TEACHER_PROVIDER=vllm/openai/ollama with TEACHER_MODEL_BASE_URL), or use another port for the "
        f"embedded teacher (TEACHER_PROVIDER=local, TEACHER_MODEL_BASE_URL=http://127.0.0.1:<free port>/v1).")


def ensure_local_teacher(base_url: str = LOCAL_TEACHER_BASE_URL, timeout: float = 180.0) -> str:
    """Make sure our teacher answers at `base_url` (starting it if local and absent); returns the URL."""
    base_url = (base_url or LOCAL_TEACHER_BASE_URL).rstrip("/")
    health = probe(base_url)
    if health.ready:
        return base_url
    if health.reachable and not health.ours:
        raise _not_ours_error(base_url, health)
    if not is_loopback(base_url):
        if health.ours:
            wait_until_ready(base_url, timeout)
            return base_url
        raise LocalTeacherError(f"the teacher at {base_url} does not answer ({health.detail}) and is not on "
                                f"this machine, so ktools cannot start it; start it there or fix TEACHER_MODEL_BASE_URL")
    host, port = split_base_url(base_url)
    with _port_lock(port):
        # Another process may have started it while we waited for the lock.
        health = probe(base_url)
        if health.reachable and not health.ours:
            raise _not_ours_error(base_url, health)
        if not health.reachable:
            pid = read_pid(port)
            if pid is None:
                pid = spawn("127.0.0.1" if host in LOOPBACK_HOSTS else host, port).pid
            else:
                log.info("the embedded teacher (pid %d) is starting; waiting for it", pid)
        else:
            pid = (health.payload or {}).get("pid")
        wait_until_ready(base_url, timeout, pid=pid)
    return base_url


def start_background(host: str, port: int, *, max_batch: int | None = None, timeout: float = 180.0,
                     extra_args: list[str] | None = None) -> Health:
    """`ktools serve-teacher --background`: start unless already running, then wait for health."""
    base_url = f"http://{host}:{port}/v1"
    with _port_lock(port):
        health = probe(base_url)
        if health.reachable and not health.ours:
            raise _not_ours_error(base_url, health)
        if health.ours:
            return wait_until_ready(base_url, timeout)
        pid = read_pid(port) or spawn(host, port, max_batch=max_batch, extra_args=extra_args).pid
        return wait_until_ready(base_url, timeout, pid=pid)


def stop(host: str = LOCAL_TEACHER_HOST, port: int = LOCAL_TEACHER_PORT, timeout: float = 20.0) -> int | None:
    """Stop our teacher on this port (SIGTERM, then SIGKILL after `timeout`); returns the pid stopped.

    The pid comes from our pid file and must be a `ktools serve-teacher --port <port>`
    process (`read_pid`); the pid a `/health` reply names is never trusted: anything can
    listen on the port and answer with any pid."""
    pid = read_pid(port)
    if pid is None:
        pid_file(port).unlink(missing_ok=True)
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        log.warning("the embedded teacher (pid %d) ignored SIGTERM for %.0f s; killing it", pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pid_file(port).unlink(missing_ok=True)
    return pid


def status(host: str = LOCAL_TEACHER_HOST, port: int = LOCAL_TEACHER_PORT) -> dict[str, Any]:
    health = probe(f"http://{host}:{port}/v1")
    return {"url": f"http://{host}:{port}/v1", "reachable": health.reachable, "ours": health.ours,
            "status": health.status or ("not running" if not health.reachable else "foreign service"),
            "pid": (health.payload or {}).get("pid") or read_pid(port), "detail": health.detail,
            "health": health.payload, "pid_file": str(pid_file(port)), "log_file": str(log_file(port))}


def running_teachers() -> list[dict[str, Any]]:
    """Our teachers alive now, one per pid file: port, pid, status, memory, idle timeout."""
    found = []
    for path in sorted(teacher_dir().glob("teacher-*.pid")):
        try:
            port = int(path.stem.removeprefix("teacher-"))
        except ValueError:
            continue
        pid = read_pid(port)
        if pid is None:
            continue
        health = probe(f"http://{LOCAL_TEACHER_HOST}:{port}/v1")
        payload = health.payload or {}
        found.append({"port": port, "pid": pid, "status": health.status or "not answering",
                      "backend": payload.get("backend", ""), "threads": payload.get("threads"),
                      "idle_timeout": payload.get("idle_timeout"), "idle_seconds": payload.get("idle_seconds"),
                      "rss_mb": _rss_mb(pid), "log_file": str(log_file(port))})
    return found


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


@contextlib.contextmanager
def stop_teachers_started_during():
    """Stop, on the way out, every embedded teacher that was not running when the block began.

    What a run starts, the run stops: the notebooks of `ktools run` start the teacher on
    first use (in their own kernels), so the run itself cannot hold a handle to it; it
    compares the running teachers before and after instead. A teacher that was already
    running (the user's own) is left alone; teachers started outside a run (a notebook
    in JupyterLab) exit through their idle timeout.
    """
    before = {(t["port"], t["pid"]) for t in running_teachers()}
    try:
        yield
    finally:
        for teacher in running_teachers():
            if (teacher["port"], teacher["pid"]) in before:
                continue
            try:
                stop(LOCAL_TEACHER_HOST, teacher["port"])
                log.info("stopped the embedded teacher this run started (pid %d, port %d)",
                         teacher["pid"], teacher["port"])
            except LocalTeacherError as exc:
                log.warning("could not stop the embedded teacher on port %d: %s", teacher["port"], exc)
