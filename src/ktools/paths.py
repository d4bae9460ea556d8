"""The `output/step_NN/...` layout of the data contract (DESIGN.md): nothing else builds these paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ktools.config import Settings, find_repo_root

GENERATORS = ("extractive_summary", "detailed_summary", "key_facts_to_qa", "document_based_qa")

STEP_FOLDERS = {
    0: "00_Setup",
    1: "01_Base_Model_Evaluation",
    2: "02_Data_Processing",
    3: "03_Knowledge_Generation",
    4: "04_Knowledge_Mixing",
    5: "05_Model_Training",
    6: "06_Evaluation",
}


@dataclass(frozen=True)
class OutputPaths:
    root: Path  # the output/ directory

    @classmethod
    def from_settings(cls, settings: Settings | None = None, repo_root: Path | None = None) -> OutputPaths:
        if settings is not None and settings.output_dir:
            return cls(Path(settings.output_dir).expanduser().resolve())
        return cls((repo_root or find_repo_root()) / "output")

    def step(self, n: int) -> Path:
        return self.root / f"step_{n:02d}"

    # step 01
    @property
    def base_eval_json(self) -> Path:
        return self.step(1) / "base_eval.json"

    # step 02
    @property
    def converted_dir(self) -> Path:
        return self.step(2) / "converted"

    @property
    def conversion_manifest(self) -> Path:
        return self.step(2) / "converted" / "manifest.json"

    @property
    def chunks(self) -> Path:
        return self.step(2) / "chunks.jsonl"

    @property
    def seed_data(self) -> Path:
        return self.step(2) / "seed_data.jsonl"

    # step 03
    def generator_dir(self, generator: str) -> Path:
        return self.step(3) / generator

    def generated(self, generator: str) -> Path:
        return self.generator_dir(generator) / "gen.jsonl"

    def rejected(self, generator: str) -> Path:
        return self.generator_dir(generator) / "rejected.jsonl"

    @property
    def response_cache(self) -> Path:
        return self.step(3) / "responses.sqlite"

    @property
    def generation_report(self) -> Path:
        return self.step(3) / "report.json"

    # step 04
    @property
    def training_mix_dir(self) -> Path:
        return self.step(4) / "training_mix"

    def training_mix(self, cut: int) -> Path:
        return self.training_mix_dir / f"combined_cut_{cut}x.jsonl"

    @property
    def eval_set(self) -> Path:
        return self.step(4) / "eval_set.jsonl"

    @property
    def corpus_exam(self) -> Path:
        """The exam step 04 builds from the user's documents (ktools.knowledge.exam)."""
        return self.step(4) / "exam.jsonl"

    @property
    def mix_stats(self) -> Path:
        return self.step(4) / "mix_stats.json"

    # step 05
    @property
    def checkpoints_dir(self) -> Path:
        return self.step(5) / "checkpoints"

    def fine_tuned_model(self, model_name: str) -> Path:
        safe = model_name.rstrip("/").split("/")[-1] or "model"
        return self.root / "fine_tuned_model" / safe

    # step 06
    @property
    def eval_report_json(self) -> Path:
        return self.step(6) / "eval_report.json"

    @property
    def eval_report_md(self) -> Path:
        return self.step(6) / "eval_report.md"

    # runner
    @property
    def executed_dir(self) -> Path:
        return self.root / "executed"


def step_folder(n: int, repo_root: Path | None = None) -> Path:
    return (repo_root or find_repo_root()) / STEP_FOLDERS[n]


def assets_dir(repo_root: Path | None = None) -> Path:
    return (repo_root or find_repo_root()) / "assets"
