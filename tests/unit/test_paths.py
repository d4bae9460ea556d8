"""ktools.paths: the output/step_NN layout of the data contract."""

from __future__ import annotations

from pathlib import Path

from ktools.config import load_settings
from ktools.paths import GENERATORS, STEP_FOLDERS, OutputPaths, assets_dir, step_folder


def test_output_dir_from_settings(tmp_output, tmp_path):
    settings = load_settings(repo_root=tmp_path)  # KTOOLS_OUTPUT_DIR from the fixture
    paths = OutputPaths.from_settings(settings)
    assert paths.root == tmp_output.resolve()


def test_default_output_dir_is_repo_output(tmp_path):
    settings = load_settings(environ={}, repo_root=tmp_path)
    assert OutputPaths.from_settings(settings, repo_root=tmp_path).root == tmp_path / "output"


def test_layout_matches_the_data_contract():
    p = OutputPaths(Path("/o"))
    assert p.step(2) == Path("/o/step_02")
    assert p.chunks == Path("/o/step_02/chunks.jsonl")
    assert p.seed_data == Path("/o/step_02/seed_data.jsonl")
    assert p.converted_dir == Path("/o/step_02/converted")
    assert p.generated("key_facts_to_qa") == Path("/o/step_03/key_facts_to_qa/gen.jsonl")
    assert p.rejected("detailed_summary") == Path("/o/step_03/detailed_summary/rejected.jsonl")
    assert p.training_mix(5) == Path("/o/step_04/training_mix/combined_cut_5x.jsonl")
    assert p.eval_set == Path("/o/step_04/eval_set.jsonl")
    assert p.eval_report_json == Path("/o/step_06/eval_report.json")
    assert p.fine_tuned_model("HuggingFaceTB/SmolLM2-135M-Instruct/") == Path(
        "/o/fine_tuned_model/SmolLM2-135M-Instruct")
    assert len({p.generator_dir(g) for g in GENERATORS}) == len(GENERATORS) == 4


def test_step_folders(tmp_path):
    assert step_folder(0, tmp_path) == tmp_path / "00_Setup"
    assert step_folder(6, tmp_path) == tmp_path / "06_Evaluation"
    assert sorted(STEP_FOLDERS) == list(range(7))
    assert assets_dir(tmp_path) == tmp_path / "assets"


def test_repo_step_folders_exist(repo_root):
    for name in STEP_FOLDERS.values():
        assert (repo_root / name).is_dir(), f"missing step folder {name}"
