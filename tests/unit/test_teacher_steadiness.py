"""The embedded teacher's run-time behaviour without the real model: the thread count that
follows the machine, the idle timeout, `response_format` validation, and a run stopping
the teachers it started."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from test_local_teacher_protocol import MSG, FakeBackend  # tests/unit is on sys.path (rootdir conftest)

from ktools.cpuload import CpuUse, ThreadGovernor
from ktools.llm.local import lifecycle
from ktools.llm.local.protocol import RequestError, parse_chat_request
from ktools.llm.local.server import TeacherServer


class FakeMachine:
    """/proc/stat and os.times as counters the test advances: `others` and `own` in cores."""

    def __init__(self, cores: int = 2):
        self.cores, self.now, self.busy, self.total, self.own_seconds = cores, 0.0, 0.0, 0.0, 0.0

    def run(self, seconds: float, *, others: float, own: float) -> None:
        self.now += seconds
        self.busy += min(self.cores, others + own) * seconds
        self.total += self.cores * seconds
        self.own_seconds += own * seconds

    def governor(self, initial: int, **kw) -> ThreadGovernor:
        return ThreadGovernor(initial, cores=self.cores, interval=5.0, system=lambda: (self.busy, self.total),
                              own=lambda: self.own_seconds, clock=lambda: self.now, **kw)


def test_thread_rule_matches_the_start_up_rule():
    assert [CpuUse(2, b).threads for b in (0.0, 0.9, 1.0, 2.0)] == [2, 2, 1, 1]
    assert CpuUse(8, 5.0).threads == 4


def test_threads_follow_the_machine_but_not_one_burst():
    machine = FakeMachine()
    governor = machine.governor(1)  # started while the machine was busy
    machine.run(5, others=0.0, own=1.0)
    assert governor.poll() is None  # one idle sample is not enough
    machine.run(5, others=0.0, own=1.0)
    assert governor.poll() == 2 and governor.threads == 2
    machine.run(5, others=1.0, own=1.0)  # a busy loop on one of the two cores
    assert governor.poll() is None
    machine.run(5, others=0.0, own=2.0)  # ...gone again: no flip
    assert governor.poll() is None and governor.threads == 2
    machine.run(5, others=1.0, own=1.0)
    governor.poll()
    machine.run(5, others=1.2, own=0.8)
    assert governor.poll() == 1 and governor.others_busy == pytest.approx(1.2)
    machine.run(2, others=0.0, own=1.0)
    assert governor.poll() is None  # not yet `interval` seconds since the last sample
    assert governor.changes == 2


def test_own_work_does_not_count_as_other_work():
    machine = FakeMachine()
    governor = machine.governor(2)
    for _ in range(3):
        machine.run(5, others=0.1, own=1.9)  # the teacher itself keeps both cores busy
        assert governor.poll() is None
    assert governor.threads == 2 and governor.others_busy == pytest.approx(0.1)


def test_fixed_thread_count_never_changes():
    machine = FakeMachine()
    governor = machine.governor(2, fixed=True)
    for _ in range(3):
        machine.run(5, others=2.0, own=0.0)
        assert governor.poll() is None
    assert governor.threads == 2


# --- response_format ----------------------------------------------------------------------

SCHEMA = {"type": "json_schema", "json_schema": {"name": "person", "schema": {
    "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}


def test_response_format_shapes():
    assert parse_chat_request({"messages": MSG}).response_format is None
    assert parse_chat_request({"messages": MSG, "response_format": {"type": "text"}}).response_format is None
    assert parse_chat_request({"messages": MSG, "response_format": SCHEMA}).response_format == SCHEMA
    assert parse_chat_request({"messages": MSG, "response_format": {"type": "json_object"}}).response_format


@pytest.mark.parametrize("value", ["json", {"type": "xml"}, {"type": "json_schema"},
                                   {"type": "json_schema", "json_schema": {"schema": "x"}}])
def test_bad_response_format_is_a_400(value):
    with pytest.raises(RequestError) as info:
        parse_chat_request({"messages": MSG, "response_format": value})
    assert info.value.status == 400 and info.value.param.startswith("response_format")


# --- the HTTP server: idle timeout, response_format on a backend that cannot constrain ------

def _serve(backend, **kw):
    loop = asyncio.new_event_loop()
    server = TeacherServer("127.0.0.1", 0, backend_factory=lambda: backend, **kw)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    serving = asyncio.run_coroutine_threadsafe(server.serve_until_stopped(), loop)
    deadline = time.monotonic() + 10
    while not server.ready and time.monotonic() < deadline:
        time.sleep(0.01)
    return server, serving, loop, thread


def _shutdown(server, serving, loop, thread):
    loop.call_soon_threadsafe(server.request_stop)
    serving.result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_idle_teacher_stops_itself_but_not_during_a_request():
    backend = FakeBackend(delay=1.5)  # one request outlasts the idle timeout
    server, serving, loop, thread = _serve(backend, idle_timeout=0.8)
    try:
        url = f"http://127.0.0.1:{server.port}"
        health = httpx.get(url + "/health").json()
        assert health["idle_timeout"] == 0.8 and health["in_flight"] == 0
        reply = httpx.post(url + "/v1/chat/completions", json={"messages": MSG}, timeout=10)
        assert reply.status_code == 200  # the watchdog waited for it
        assert not serving.done()
        serving.result(5)  # ...and then the server stopped by itself
    finally:
        if not serving.done():
            _shutdown(server, serving, loop, thread)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_response_format_on_the_transformers_side_says_what_to_do():
    server, serving, loop, thread = _serve(FakeBackend())
    try:
        reply = httpx.post(f"http://127.0.0.1:{server.port}/v1/chat/completions",
                           json={"messages": MSG, "response_format": SCHEMA})
        assert reply.status_code == 400
        assert "llama.cpp backend" in reply.json()["error"]["message"]
    finally:
        _shutdown(server, serving, loop, thread)


# --- a run stops what it started ----------------------------------------------------------

def test_run_stops_only_the_teachers_it_started(monkeypatch):
    running = [{"port": 8765, "pid": 10}]
    stopped: list[int] = []
    monkeypatch.setattr(lifecycle, "running_teachers", lambda: list(running))

    def stop(host, port):
        stopped.append(port)
        running[:] = [t for t in running if t["port"] != port]

    monkeypatch.setattr(lifecycle, "stop", stop)
    with lifecycle.stop_teachers_started_during():
        running.append({"port": 8766, "pid": 11})  # a notebook started one
    assert stopped == [8766] and running == [{"port": 8765, "pid": 10}]  # the user's own one stays
    with pytest.raises(KeyboardInterrupt), lifecycle.stop_teachers_started_during():
        running.append({"port": 8767, "pid": 12})
        raise KeyboardInterrupt  # Ctrl+C mid-run stops it too
    assert stopped == [8766, 8767]


def test_status_lists_running_teachers(monkeypatch, capsys):
    from ktools.cli import status

    monkeypatch.setattr(status, "running_teachers", lambda: [
        {"port": 8799, "pid": 4242, "status": "ok", "backend": "llama.cpp", "threads": 2, "rss_mb": 180.5,
         "idle_seconds": 12.0, "idle_timeout": 600.0, "log_file": "/tmp/teacher-8799.log"}])
    args = type("Args", (), {"step_dir": None, "no_teacher": True})()
    assert status.run(args) == 0
    out = capsys.readouterr().out
    assert "Embedded teachers running" in out and "4242" in out and "600 s" in out and "llama.cpp" in out


def test_spawned_teacher_gets_the_idle_timeout_setting(monkeypatch, tmp_path):
    launched = {}

    class Popen:
        pid = 99999

        def __init__(self, command, **kw):
            launched["command"] = command

    monkeypatch.setenv("KTOOLS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("LOCAL_TEACHER_IDLE_TIMEOUT", "45")
    monkeypatch.setattr(lifecycle.subprocess, "Popen", Popen)
    lifecycle.spawn("127.0.0.1", 8799)
    command = launched["command"]
    assert command[command.index("--idle-timeout") + 1] == "45.0"
