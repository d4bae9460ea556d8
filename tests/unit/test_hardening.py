"""Issue 15: ktools used carelessly and attacked (all on 127.0.0.1). One case per finding:
each asserts a clear one-line error naming the file/field, or a capped resource, and that
nothing already written is lost.

1 templates sandboxed · 2 serve-teacher --stop · 3 credentials in URLs · 4 size and time
limits · 5 the embedded teacher's server · 6 one-line errors, exit 2 · 7 file modes and
atomic model saves · 8 Western single-byte text.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import random
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from hardening_servers import (
    drip,
    endless,
    free_port,
    http_server,
    impostor_health,
    page,
    raw_server,
    send_body,
)

import ktools
from ktools.cli import main
from ktools.config import load_settings
from ktools.documents.convert import convert_sources
from ktools.documents.errors import DocumentError
from ktools.documents.limits import ConversionLimits
from ktools.documents.step import chunk_step, given_from_parameters, seed_step
from ktools.documents.urls import fetch_url, redact_url
from ktools.io import JsonlError, iter_jsonl, replace_dir_atomic, write_atomic, write_json, write_jsonl
from ktools.llm.local import lifecycle
from ktools.llm.local.server import TeacherServer, exposure_warning
from ktools.prompts import PromptError, load_prompt, load_prompt_file

SRC = Path(ktools.__file__).resolve().parents[1]
MARKER = "pwned-by-template"


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    for needle in needles:
        assert needle in last, (needle, last)
    return last


# --- 1. templates ----------------------------------------------------------------------

def test_template_file_reaching_for_internals_is_refused_naming_the_file(tmp_path):
    marker = tmp_path / MARKER
    evil = tmp_path / "qa_template.txt"
    evil.write_text(f'{{{{ document }}}} {{{{ namespace.__init__.__globals__.os.system("touch {marker}") }}}}')
    with pytest.raises(PromptError) as info:
        load_prompt_file(evil, "document_qa")
    assert str(evil) in str(info.value) and "line 1" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_generate_cli_refuses_the_template_naming_the_users_file(tmp_path, capsys):
    marker = tmp_path / MARKER
    evil = tmp_path / "my_template.txt"
    evil.write_text(f'Q about {{{{ document }}}} {{{{ namespace.__init__.__globals__.os.system("touch {marker}") }}}}\n')
    seed = tmp_path / "seed.jsonl"
    seed.write_text(json.dumps({"document": "Leave accrues monthly.", "chunk_id": "c1", "source": "s.md",
                                "document_outline": "o", "domain": "d", "icl_document": "x", "icl_query_1": "a?",
                                "icl_query_2": "b?", "icl_query_3": "c?"}) + "\n")
    argv = ["generate", "--seed", str(seed), "--qa-dir", str(tmp_path / "qa"), "--provider", "vllm",
            "--base-url", f"http://127.0.0.1:{free_port()}/v1", "--model", "m", "--no-progress",
            "--qa-prompt-template-file", str(evil)]
    assert main(argv) == 2
    _one_line_error(capsys, str(evil), "__globals__", "not allowed")
    assert not marker.exists()


def test_prompts_dir_template_is_sandboxed_at_render_time_too(tmp_path):
    """A name built at run time escapes the load-time check; the sandbox still refuses it."""
    marker = tmp_path / MARKER
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "document_qa.yaml").write_text(
        "name: document_qa\nuser: |\n"
        "  {% set dunder = '__in' ~ 'it__' %}{{ (namespace|attr(dunder)) }} "
        f"{{{{ cycler.__init__.__globals__.os.popen('touch {marker}') }}}}\n")
    with pytest.raises(PromptError) as info:
        load_prompt("document_qa", folder).render(document="x")
    assert str(folder / "document_qa.yaml") in str(info.value)
    (folder / "document_qa.yaml").write_text(
        "name: document_qa\nuser: |\n  {% set d = '__cla' ~ 'ss__' %}{{ (document|attr(d)) }}{{ document[d] }}\n")
    with pytest.raises(PromptError) as info:
        load_prompt("document_qa", folder).render(document="x")
    assert "not allowed" in str(info.value) and str(folder) in str(info.value)
    assert not marker.exists()
    # an honest template still renders
    (folder / "document_qa.yaml").write_text("name: document_qa\nuser: |\n  Q about {{ document | upper }}\n")
    assert load_prompt("document_qa", folder).render(document="x")[-1]["content"] == "Q about X"


# --- 2. serve-teacher --stop ------------------------------------------------------------

@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KTOOLS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _sleeper(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])


def test_stop_never_kills_a_pid_named_by_the_network(cache_dir, capsys):
    victim = _sleeper()
    try:
        with http_server(impostor_health(victim.pid)) as (url, _):
            port = int(url.rsplit(":", 1)[1])
            assert lifecycle.probe(url + "/v1").ours  # it does pass for our teacher
            assert main(["serve-teacher", "--stop", "--port", str(port)]) == 1
            _one_line_error(capsys, f"127.0.0.1:{port}", "nothing was stopped")
            # a pid file naming it is not enough either: its command line is not our teacher's
            lifecycle.pid_file(port).write_text(f"{victim.pid}\n")
            assert lifecycle.stop("127.0.0.1", port, timeout=1) is None
        time.sleep(0.2)
        assert victim.poll() is None, "an unrelated process was killed"
    finally:
        victim.kill()
        victim.wait()


def test_stop_stops_the_teacher_ktools_started(cache_dir):
    port = free_port()
    teacher = _sleeper("ktools", "serve-teacher", "--port", str(port))  # what spawn() runs, as far as /proc shows
    other_port = _sleeper("ktools", "serve-teacher", "--port", str(port + 1))
    try:
        lifecycle.pid_file(port + 1).write_text(f"{other_port.pid}\n")
        lifecycle.pid_file(port).write_text(f"{other_port.pid}\n")  # a teacher, but of another port
        assert lifecycle.stop("127.0.0.1", port, timeout=1) is None and other_port.poll() is None
        lifecycle.pid_file(port).write_text(f"{teacher.pid}\n")
        assert lifecycle.stop("127.0.0.1", port, timeout=5) == teacher.pid
        assert teacher.wait(5) is not None and not lifecycle.pid_file(port).exists()
    finally:
        for process in (teacher, other_port):
            process.kill()
            process.wait()


# --- 3. credentials in URLs -------------------------------------------------------------

SECRETS = ("s3cretpw", "abc123tok", "sig-9f8e7d")
PAGE = (b"<html><head><title>Handbook</title></head><body><h1>Leave policy</h1>"
        + b"".join(b"<p>Employees accrue two days of leave per month of service, section %d.</p>" % i
                   for i in range(40)) + b"</body></html>")


def test_redact_url():
    assert redact_url("http://user:pw@host:8080/a/b.html?token=t&lang=en&X-Amz-Signature=s&api_key=k#frag") == \
        "http://host:8080/a/b.html?token=REDACTED&lang=en&X-Amz-Signature=REDACTED&api_key=REDACTED"
    assert redact_url("https://example.org/page?q=leave") == "https://example.org/page?q=leave"


def test_url_credentials_never_reach_names_manifest_chunks_seed_or_log(tmp_output, caplog):
    from ktools.models import load_offsets_tokenizer

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="httpx")  # `ktools generate` quiets it for the whole process
    with http_server(page(PAGE)) as (url, seen):
        host = url.split("://", 1)[1]
        source = f"http://user:{SECRETS[0]}@{host}/handbook.html?token={SECRETS[1]}&sig={SECRETS[2]}&lang=en"
        settings = load_settings()
        result = convert_sources([source], tmp_output / "step_02" / "converted", progress=False)
        assert result.ok and seen[0]["authorization"].startswith("Basic ")  # the request itself had them
        chunk_step(settings, max_tokens=128, overlap_tokens=16, min_tokens=16,
                   tokenizer=load_offsets_tokenizer(settings.effective_tokenizer))
        given = given_from_parameters(domain="HR", outline="Leave policy", document="Staff get leave.",
                                      queries=["How much leave?", "Who accrues it?", "When?"])
        seed_step(settings, given=given, progress=False)
    entry = result.documents[0]
    assert entry.source == f"http://{host}/handbook.html?token=REDACTED&sig=REDACTED&lang=en"
    written = {p: p.read_bytes() for p in tmp_output.rglob("*") if p.is_file()}
    assert {p.name for p in written} >= {"manifest.json", "chunks.jsonl", "seed_data.jsonl"}
    for path, data in written.items():
        for secret in (*SECRETS, "user"):
            assert secret not in path.name
        for secret in SECRETS:
            assert secret.encode() not in data, (path, secret)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "handbook.html?token=REDACTED" in logged  # httpx's request line, redacted
    for secret in SECRETS:
        assert secret not in logged


def test_unreachable_url_error_is_redacted():
    port = free_port()  # nothing listens there
    with pytest.raises(DocumentError) as info:
        fetch_url(f"http://u:{SECRETS[0]}@127.0.0.1:{port}/x?access_token={SECRETS[1]}", timeout=2)
    assert all(secret not in str(info.value) for secret in SECRETS)


# --- 4. limits --------------------------------------------------------------------------

def test_download_size_cap_with_and_without_content_length():
    with http_server(lambda h: send_body(h, b"x" * (3 * 2**20), "text/plain")) as (url, _):
        with pytest.raises(DocumentError, match=r"larger than the 1 MB limit \(Content-Length"):
            fetch_url(url + "/big.txt", max_bytes=2**20)
    with http_server(endless(b"y" * 65536, 64 * 2**20)) as (url, _):
        started = time.monotonic()
        with pytest.raises(DocumentError, match="larger than the 1 MB limit"):
            fetch_url(url + "/stream.txt", max_bytes=2**20)
        assert time.monotonic() - started < 10


def test_download_deadline_stops_a_drip_feed():
    with http_server(drip(0.2, 8.0)) as (url, _):
        started = time.monotonic()
        with pytest.raises(DocumentError, match="longer than the 1 s limit"):
            fetch_url(url + "/slow.txt", timeout=5, deadline=1.0)
        assert time.monotonic() - started < 3  # each read came within the per-read timeout


def _docx_with(member: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", member)
    return buffer.getvalue()


def test_docx_expansion_caps(tmp_path):
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(_docx_with(b"\0" * (30 * 2**20)))  # 30 MB of zeros: ~30 KB packed
    big = tmp_path / "big.docx"
    big.write_bytes(_docx_with(random.Random(0).randbytes(3 * 2**20)))  # incompressible, 3 MB
    limits = ConversionLimits(archive_max_bytes=2 * 2**20)
    result = convert_sources([bomb, big], tmp_path / "out", progress=False, limits=limits)
    problems = {Path(e.source).name: e.problem for e in result.errors}
    assert "ZIP bomb" in problems["bomb.docx"] and "over the 2 MB limit" in problems["big.docx"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["errors"]


def test_per_file_time_limit_and_manifest_of_what_converted(tmp_path, tmp_output, monkeypatch, capsys):
    import ktools.documents.convert.docx as docx_module

    def endless_conversion(data, source, warnings):
        while True:  # a pathological document: Python-level work that never ends
            sum(range(1000))

    monkeypatch.setattr(docx_module, "docx_to_markdown", endless_conversion)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Leave\n\n" + "Employees accrue two days of leave per month. " * 30)
    (folder / "b.docx").write_bytes(_docx_with(b"<w:document/>"))
    started = time.monotonic()
    rc = main(["convert-docs", str(folder), "--file-time-limit", "1"])
    assert rc == 1 and time.monotonic() - started < 20
    assert "b.docx" in capsys.readouterr().err
    manifest = json.loads((tmp_output / "step_02" / "converted" / "manifest.json").read_text())
    assert [d["output"] for d in manifest["documents"]] == ["a.md"]
    assert "longer than the 1 s limit" in manifest["errors"][0]["problem"]
    # Interrupted mid-folder: what converted is still in a manifest that `chunk` reads.
    monkeypatch.setattr(docx_module, "docx_to_markdown", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        convert_sources([folder], tmp_path / "interrupted", progress=False)
    manifest = json.loads((tmp_path / "interrupted" / "manifest.json").read_text())
    assert [d["output"] for d in manifest["documents"]] == ["a.md"]


def test_time_limit_keeps_an_outer_alarm(monkeypatch):
    """pytest-timeout or a scheduler may have armed SIGALRM: the per-file limit must not eat it."""
    import signal

    from ktools.documents.limits import time_limit

    fired: list[float] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(time.monotonic()))
    previous_timer = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(DocumentError, match="longer than the 0.3 s limit"), time_limit(0.3, "slow.docx"):
            while True:
                sum(range(1000))
        time.sleep(1.0)
        assert len(fired) == 1 and 0.9 <= fired[0] - started < 1.5  # re-armed, fired once, on time
    finally:
        signal.setitimer(signal.ITIMER_REAL, *previous_timer)
        signal.signal(signal.SIGALRM, previous)


CHUNK_MB = 20


def test_chunk_memory_stays_proportional_to_a_single_line_text(tmp_path):
    """`ktools chunk` on a 20 MB single-line text: peak RSS <= 10x the file (was 7.8 GB)."""
    out = tmp_path / "output"
    words = "the employee shall record leave accrued per month under section policy manual".split()
    rng = random.Random(0)
    line = " ".join(rng.choice(words) for _ in range(CHUNK_MB * 2**20 // 6))[: CHUNK_MB * 2**20]
    source = tmp_path / "one_line.txt"
    source.write_text(line + ".")
    size = source.stat().st_size
    del line
    result = convert_sources([source], out / "step_02" / "converted", progress=False)
    assert result.ok
    # Peak RSS of the child's own memory: VmHWM. getrusage's ru_maxrss is read too, but on
    # Linux it starts from the parent's RSS at fork (kept across exec), so after a test that
    # imported torch into pytest it reports pytest's size, not the child's.
    child = ("import re, resource\nfrom pathlib import Path\nfrom ktools.cli import main\nrc = main(['chunk'])\n"
             "hwm = re.search(r'VmHWM:\\s*(\\d+)', Path('/proc/self/status').read_text()).group(1)\n"
             "print('PEAK_KB', hwm, 'RUSAGE_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'RC', rc)")
    env = {**os.environ, "KTOOLS_OUTPUT_DIR": str(out), "PYTHONPATH": str(SRC)}
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-2000:]
    fields = run.stdout.split("PEAK_KB")[1].split()
    peak_kb, rusage_kb, rc = int(fields[0]), int(fields[2]), int(fields[4])
    assert rc == 0
    peak = peak_kb * 1024
    print(f"chunk of a {size / 2**20:.0f} MB single line: peak RSS {peak / 2**20:.0f} MB "
          f"({peak / size:.1f}x the file; getrusage {rusage_kb / 1024:.0f} MB), {seconds:.1f} s")
    assert peak <= 10 * size
    rows = list(iter_jsonl(out / "step_02" / "chunks.jsonl"))
    # the whole text is covered (conversion ends it with a newline), each chunk within max_tokens
    assert rows[0]["start"] == 0 and rows[-1]["end"] == size + 1 and all(r["n_tokens"] <= 768 for r in rows)


def test_chunking_tokenizer_without_transformers_counts_the_same(repo_root):
    """`chunk` loads tokenizer.json with `tokenizers` alone (AutoTokenizer imports torch,
    ~280 MB); its token offsets must be those of the student's AutoTokenizer."""
    import numpy as np

    from ktools.documents.chunking import token_starts
    from ktools.models import OffsetsTokenizer, load_offsets_tokenizer, load_tokenizer

    light = load_offsets_tokenizer(None)
    assert isinstance(light, OffsetsTokenizer)
    text = (repo_root / "assets" / "sample" / "sample_document.md").read_text() + " café 日本語 🙂  x\n\n" * 20
    assert np.array_equal(token_starts(text, light), token_starts(text, load_tokenizer(None)))


def test_teacher_reply_over_the_cap_is_rejected_and_stored_once(tmp_path):
    from ktools.generate import GenerationOptions, run_generation
    from ktools.testing.scripted import ScriptedClient, reply_for

    huge = "Q: what? A: " + "blah " * 400_000  # 2 MB: max_tokens 1024 cannot produce that
    big_unparsable = "no tags here " * 2000  # 26 KB: under the cap, just useless

    def reply(user: str, index: int):
        if "Chunk 0" in user:
            return huge
        if "Chunk 1" in user:
            return big_unparsable
        return reply_for(user, index)

    seeds = [{"document": f"Chunk {i}: the Orvane harbour levy is {i + 3} euros per berth.", "chunk_id": f"d#{i}",
              "source": "d.md", "document_outline": "Harbour", "domain": "law", "icl_document": "Ships dock.",
              "icl_query_1": "Where?"} for i in range(3)]
    options = GenerationOptions(generators=["document_based_qa"], show_progress=False, judge_question=False,
                                judge_faithfulness=False, judge_relevancy=False)
    run_generation(seeds, options, ScriptedClient(reply=reply), tmp_path)
    rejected = list(iter_jsonl(tmp_path / "document_based_qa" / "rejected.jsonl"))
    too_large = [r for r in rejected if r["chunk_id"] == "d#0"]
    assert too_large and too_large[0]["reason"] == "reply over the size cap" and too_large[0]["raw"] == ""
    unparsable = [r for r in rejected if r["chunk_id"] == "d#1"]
    assert len(unparsable[0]["raw"]) <= 2000 and unparsable[0]["raw_chars"] == len(big_unparsable)
    stored = sum(p.stat().st_size for p in tmp_path.glob("responses.sqlite*"))
    assert stored < len(huge) // 4  # the 2 MB reply is not in the store either
    assert (tmp_path / "document_based_qa" / "rejected.jsonl").stat().st_size < 20_000


def test_transport_refuses_an_oversized_body_before_reading_it():
    from ktools.llm.client import TeacherClient
    from ktools.llm.types import TeacherError

    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"
             + b'{"choices": [' + b" " * 1000)
    with raw_server(reply) as port:
        client = TeacherClient(f"http://127.0.0.1:{port}/v1", "m", "key", provider="vllm", max_retries=0, timeout=20)
        started = time.monotonic()
        with pytest.raises(TeacherError, match="16 MB cap"):
            client.chat([{"role": "user", "content": "hi"}])
        assert time.monotonic() - started < 5
        client.close()


def test_timeouts_are_retried_once_and_the_default_is_bounded(tmp_path):
    from ktools.llm.client import MAX_TIMEOUT_RETRIES, TeacherClient
    from ktools.llm.types import TeacherError

    settings = load_settings(environ={}, repo_root=tmp_path)
    worst = settings.request_timeout * (1 + MAX_TIMEOUT_RETRIES)
    assert worst <= 15 * 60, "a call may hang this long with the defaults"
    with raw_server(b"") as port:  # accepts, never answers
        client = TeacherClient(f"http://127.0.0.1:{port}/v1", "m", "key", provider="vllm", max_retries=6,
                               timeout=0.3)
        with pytest.raises(TeacherError, match="retried once"):
            client.chat([{"role": "user", "content": "hi"}])
        assert client.stats["requests"] == 2
        client.close()


# --- 5. the embedded teacher's server ---------------------------------------------------

class _EchoBackend:
    context_window = 100

    def __init__(self):
        self.requests = []

    def encode(self, messages):
        return [1, 2, 3]

    def submit(self, request):
        from ktools.llm.local.engine import Completion, GenerationResult

        self.requests.append(request)
        request.future.set_result(GenerationResult([Completion("ok", "stop", 1)] * request.n, 3))
        return request.future

    def info(self):
        return {"queue": 0}


@pytest.fixture
def teacher_server():
    servers = []

    def start(**kwargs):
        backend = _EchoBackend()
        loop = asyncio.new_event_loop()
        server = TeacherServer("127.0.0.1", 0, backend_factory=lambda: backend, **kwargs)
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        serving = asyncio.run_coroutine_threadsafe(server.serve_until_stopped(), loop)
        while not server.ready:
            time.sleep(0.01)
        server.fake = backend
        servers.append((server, loop, serving, thread))
        return server

    yield start
    for server, loop, serving, thread in servers:
        loop.call_soon_threadsafe(server.request_stop)
        serving.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    return reply


def test_server_refuses_non_json_posts_and_oversized_chunks(teacher_server):
    server = teacher_server()
    url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
    as_text = httpx.post(url, content=json.dumps(CHAT), headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 415 and "application/json" in as_text.json()["error"]["message"]
    assert httpx.post(url, content=json.dumps(CHAT)).status_code == 415  # no Content-Type at all
    assert server.fake.requests == []  # nothing reached the model
    # A chunk announcing 1 GB is refused from its size line; its bytes are never sent.
    reply = _exchange(server.port, b"POST /v1/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n40000000\r\n")
    assert reply.startswith(b"HTTP/1.1 413")
    assert httpx.post(url, json=CHAT).status_code == 200


def test_server_caps_connections(teacher_server):
    server = teacher_server(max_connections=3)
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        time.sleep(0.2)
        # The 503 comes as soon as the connection is accepted, before any request is read.
        assert _exchange(server.port, b"").startswith(b"HTTP/1.1 503")
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"http://127.0.0.1:{server.port}/health").status_code == 200


def test_server_warns_off_loopback():
    assert exposure_warning("127.0.0.1", False) is None and exposure_warning("::1", False) is None
    assert "LOCAL_TEACHER_API_KEY" in exposure_warning("0.0.0.0", False)
    assert "reachable from other machines" in exposure_warning("192.0.2.7", True)


def test_server_api_key_and_the_client_sends_it(teacher_server, tmp_path, monkeypatch):
    from ktools.llm.client import TeacherClient

    key = "k3y-for-the-teacher"
    server = teacher_server(api_key=key)
    base = f"http://127.0.0.1:{server.port}"
    assert httpx.get(base + "/health").status_code == 200  # liveness stays open
    assert httpx.post(base + "/v1/chat/completions", json=CHAT).status_code == 401
    assert httpx.post(base + "/v1/chat/completions", json=CHAT,
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(base + "/v1/chat/completions", json=CHAT,
                      headers={"Authorization": f"Bearer {key}"}).status_code == 200
    settings = load_settings(environ={"TEACHER_PROVIDER": "local", "TEACHER_MODEL_BASE_URL": base + "/v1",
                                      "LOCAL_TEACHER_API_KEY": key}, repo_root=tmp_path)
    assert key not in repr(settings)
    client = TeacherClient.from_settings(settings, max_retries=0)
    assert client.chat(CHAT["messages"]).choices[0].text == "ok"
    client.close()


# --- 6. one-line errors, exit 2 ---------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["mix", "--tokenizer", "/missing"], "/missing"),
    (["chunk", "--tokenizer", "/missing"], "/missing"),
    (["train", "--mix", "/missing"], "/missing"),
    (["evaluate", "--exam", "/missing"], "/missing"),
])
def test_missing_paths_are_one_line_exit_2(argv, needle, tmp_output, capsys):
    assert main(argv) == 2
    _one_line_error(capsys, needle)


def test_output_dir_and_qa_dir_pointing_at_files(tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    monkeypatch.setenv("KTOOLS_OUTPUT_DIR", str(a_file))
    assert main(["mix"]) == 2
    _one_line_error(capsys, "KTOOLS_OUTPUT_DIR", str(a_file), "is a file")
    monkeypatch.delenv("KTOOLS_OUTPUT_DIR")
    qa = tmp_path / "doc_qa.json"
    qa.write_text("{}")
    assert main(["combine", "--qa-dir", str(qa)]) == 2
    _one_line_error(capsys, "--qa-dir", str(qa), "is a file")
    assert qa.read_text() == "{}"


def test_seed_lines(tmp_path):
    good = json.dumps({"document": "d", "chunk_id": "c1", "source": "s"})
    complete_bad = tmp_path / "bad_last_line.jsonl"
    complete_bad.write_text(good + "\n" + '{"document": "d", "chunk_id": \n')
    with pytest.raises(JsonlError, match=rf"{complete_bad}, line 2: not valid JSON"):
        list(iter_jsonl(complete_bad))
    torn = tmp_path / "torn.jsonl"
    torn.write_text(good + "\n" + '{"document": "d", "chu')  # no newline: an interrupted append
    assert [r["chunk_id"] for r in iter_jsonl(torn)] == ["c1"]
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(good.encode() + b"\n" + '{"document": "café"}\n'.encode("latin-1"))
    with pytest.raises(JsonlError, match=r"line 2: not UTF-8 text .*Re-save the file as UTF-8"):
        list(iter_jsonl(latin))


def test_seed_errors_through_generate_cli(tmp_path, capsys):
    seed = tmp_path / "seed.jsonl"
    seed.write_text(json.dumps({"document": "d", "chunk_id": "c1", "source": "s"}) + "\n{oops}\n")
    argv = ["generate", "--seed", str(seed), "--qa-dir", str(tmp_path / "qa"), "--provider", "vllm",
            "--base-url", f"http://127.0.0.1:{free_port()}/v1", "--model", "m", "--no-progress"]
    assert main(argv) == 2
    _one_line_error(capsys, str(seed), "line 2")
    seed.write_bytes(b'{"document": "caf\xe9"}\n')
    assert main(argv) == 2
    _one_line_error(capsys, str(seed), "not UTF-8")


# --- 7. files ---------------------------------------------------------------------------

def test_outputs_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        for path in (write_atomic(tmp_path / "a.txt", "x"), write_json(tmp_path / "b.json", {}),
                     write_jsonl(tmp_path / "c.jsonl", [{}])):
            assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
        os.umask(0o022)
        assert stat.S_IMODE(write_json(tmp_path / "report.json", {}).stat().st_mode) == 0o644
        folder = replace_dir_atomic(tmp_path / "model", lambda d: (d / "w").write_text("1"))
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    finally:
        os.umask(previous)


class _FakeModel:
    """Duck-types what save_final_model calls; `fail` makes the save break halfway."""

    def __init__(self, weights: str, fail: bool = False):
        self.weights, self.fail = weights, fail
        self.config = type("C", (), {"use_cache": False})()
        self.generation_config = type("G", (), {"pad_token_id": None})()

    def save_pretrained(self, folder, **kwargs):
        (Path(folder) / "model.safetensors").write_text(self.weights)
        if self.fail:
            raise OSError("disk full")


class _FakeTokenizer:
    pad_token_id = 0

    def save_pretrained(self, folder):
        (Path(folder) / "tokenizer.json").write_text("{}")


def test_model_save_is_atomic_as_a_whole(tmp_path):
    from ktools.train.trainer import save_final_model

    target = tmp_path / "fine_tuned_model" / "m"
    save_final_model(_FakeModel("v1"), _FakeTokenizer(), target)
    assert (target / "model.safetensors").read_text() == "v1"
    with pytest.raises(OSError, match="disk full"):
        save_final_model(_FakeModel("v2-half", fail=True), _FakeTokenizer(), target)
    assert (target / "model.safetensors").read_text() == "v1"  # the previous model, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]  # no temp folder left
    save_final_model(_FakeModel("v2"), _FakeTokenizer(), target)
    assert (target / "model.safetensors").read_text() == "v2" and (target / "tokenizer.json").is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]


# --- 8. encoding ------------------------------------------------------------------------

def test_western_single_byte_text_decodes_as_cp1252(tmp_path):
    note = tmp_path / "menu.txt"
    note.write_bytes("café crème".encode("cp1252"))
    result = convert_sources([note], tmp_path / "out", progress=False)
    markdown = (tmp_path / "out" / result.documents[0].output).read_text()
    assert markdown.strip() == "café crème" and result.documents[0].encoding in ("cp1252", "latin_1")
    czech = tmp_path / "czech.txt"
    czech.write_bytes("Příliš žluťoučký kůň úpěl ďábelské ódy.".encode("cp1250"))
    result = convert_sources([czech], tmp_path / "out2", progress=False)
    assert (tmp_path / "out2" / result.documents[0].output).read_text().strip().startswith("Příliš")
