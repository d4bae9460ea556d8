"""The Kubeflow pipeline, executed for real by KFP's local SubprocessRunner: every component
runs as a subprocess of this environment (no cluster, no container) on the sample document
with the embedded teacher and the `smoke` sizes, and leaves the files the notebooks leave.
The teacher is a private one on a free port (through the pipeline's teacher parameters),
stopped afterwards."""

from __future__ import annotations

import json
import socket

import pytest

pytest.importorskip("kfp", reason="needs the kubeflow extra: pip install 'ktools[kubeflow]' (make test does)")

from ktools.io import read_json, read_jsonl  # noqa: E402
from ktools.kubeflow.local import run_local  # noqa: E402
from ktools.llm.local import lifecycle  # noqa: E402
from ktools.notebook_runner.execute import STEPS  # noqa: E402
from ktools.notebook_runner.profiles import profile_parameters  # noqa: E402
from ktools.paths import GENERATORS, OutputPaths  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def private_teacher():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        yield port
    finally:
        lifecycle.stop("127.0.0.1", port)


def test_local_run_on_the_sample_leaves_the_notebooks_files(tmp_output, private_teacher, tmp_path):
    teacher = {"teacher_provider": "local", "teacher_base_url": f"http://127.0.0.1:{private_teacher}/v1"}
    volume = tmp_path / "volume"  # stands in for a mounted PVC (`--store-pvc`)
    run = run_local({**profile_parameters("smoke"), **teacher, "response_store_dir": str(volume)})

    paths = OutputPaths(tmp_output)
    assert set(run.collected) == {"step_02", "step_03", "step_04", "step_05", "model"}
    # What the notebook runner itself checks for steps 02-04 ...
    for step in STEPS[2:5]:
        missing = [p for p in step.outputs(paths) if not p.is_file()]
        assert not missing, f"step {step.number:02d} left no {missing}"
    # ... and their content.
    seed = read_jsonl(paths.seed_data)
    assert seed and {"document", "icl_query_1", "document_outline", "chunk_id"} <= set(seed[0])
    assert len(read_jsonl(paths.chunks)) == len(seed) == run.metadata["step_02"]["chunks"]
    report = read_json(paths.generation_report)
    # The smoke profile allows a partial run (ALLOW_PARTIAL: the 135M teacher may leave a generator
    # without rows over 3 chunks); no chunk may have failed or been left undone.
    assert report["rows"] > 0 and report["status"] in {"complete", "partial"}, report["status_reason"]
    assert not any(g["chunks"].get("failed") or g["chunks"].get("pending") for g in report["generators"].values())
    assert lifecycle.status("127.0.0.1", private_teacher)["ours"]  # the teacher the parameters named
    assert sum(len(read_jsonl(paths.generated(g))) for g in GENERATORS) == report["rows"]
    assert paths.response_cache.is_file()  # the teacher's answers travel with the artifact
    assert (volume / "responses.sqlite").is_file()  # ... and stay on the volume for a later run
    mix = read_jsonl(paths.training_mix(1))
    assert mix and {"messages", "unmask", "token_length"} <= set(mix[0])
    train_report = json.loads((paths.step(5) / "train_report.json").read_text())
    # No report names the pods' scratch folders (gone after each step); paths are relative to output/.
    for report_file in (paths.generation_report, paths.mix_stats, paths.step(5) / "train_report.json"):
        assert "ktools-kfp-" not in report_file.read_text(), report_file
    assert read_json(paths.generation_report)["out_dir"] == "step_03"
    assert train_report["steps"] == 2
    assert not (paths.step(5) / "checkpoints").exists()

    model_dir = paths.fine_tuned_model("SmolLM2-135M-Instruct")
    assert run.collected["model"] == model_dir
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert model.num_parameters() > 100_000_000
    # Each step reported through its artifact's metadata (shown in the KFP UI).
    assert all(run.metadata[name]["seconds"] > 0 for name in ("step_02", "step_03", "step_04", "step_05"))


def test_a_failing_step_stops_the_pipeline_and_touches_no_output(tmp_output, capsys):
    with pytest.raises(RuntimeError, match="data-processing"):
        run_local({"sources": ["assets/sample/no_such_document.md"]})
    assert not (tmp_output / "step_02").exists()
    log = capsys.readouterr().out  # the component's own log, streamed by the runner
    assert "no_such_document.md: no such file or folder" in log
    assert "every source failed to convert" in log


def test_results_never_silently_replace_earlier_ones(tmp_output):
    (tmp_output / "step_03").mkdir(parents=True)
    (tmp_output / "step_03" / "responses.sqlite").write_text("hours of teacher answers")
    with pytest.raises(FileExistsError, match="step_03"):
        run_local(profile_parameters("smoke"))
