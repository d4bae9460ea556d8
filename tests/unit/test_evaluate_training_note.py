"""Step 06's report says how much the fine-tuned model trained, and loudly when a time budget
cut the epochs asked for (fresh2 on an AVX2 CPU: 1.12 of 4 epochs, no key fact learnt)."""

from __future__ import annotations

import json

from ktools.evaluate.report import training_notes
from ktools.evaluate.steps import tuned_training
from ktools.paths import OutputPaths


def write_report(paths: OutputPaths, model: str, **config) -> None:
    paths.step(5).mkdir(parents=True, exist_ok=True)
    (paths.step(5) / "train_report.json").write_text(json.dumps({
        "model_dir": model, "steps": 73, "steps_per_epoch": 65, "epochs_done": 73 / 65, "train_seconds": 1404.6,
        "tokens_per_second": 100.6, "stopped_by_time_limit": False,
        "config": {"epochs": 4.0, "max_steps": 0, "time_budget_minutes": 30.0, **config}}))


def test_a_budget_cut_run_is_flagged_with_what_to_change(tmp_path):
    paths, model = OutputPaths(tmp_path), str(tmp_path / "model")
    assert tuned_training(paths, model) is None  # no step-05 report
    write_report(paths, model)
    training = tuned_training(paths, model)
    assert training["epochs_asked"] == 4.0 and training["time_budget_minutes"] == 30.0
    (line,) = training_notes(training)
    assert "73 steps = 1.12 epochs in 23 min (100.6 tokens/s), of the 4 asked for" in line
    assert "cut training to 28% of the epochs asked for" in line and "TIME_BUDGET_MINUTES" in line
    assert tuned_training(paths, str(tmp_path / "other_model")) is None


def test_a_run_that_trained_what_was_asked_gets_a_plain_line(tmp_path):
    paths, model = OutputPaths(tmp_path), str(tmp_path / "model")
    write_report(paths, model, epochs=1.2)
    (line,) = training_notes(tuned_training(paths, model))
    assert line.endswith("of the 1.2 asked for.") and "cut" not in line
    # A fixed step count asked for no epochs: nothing to compare against.
    write_report(paths, model, max_steps=73)
    (line,) = training_notes(tuned_training(paths, model))
    assert "asked" not in line and "cut" not in line
    # No time budget: nothing cut the run short by design.
    write_report(paths, model, time_budget_minutes=None)
    assert "cut" not in training_notes(tuned_training(paths, model))[0]
    assert training_notes(None) == []


def test_the_run_ends_with_the_outcome_in_plain_lines(tmp_path):
    from ktools.evaluate.report import result_lines

    paths, model = OutputPaths(tmp_path), str(tmp_path / "model")
    write_report(paths, model)
    headline = {"exam": {"key_facts_ratio": {"mean": 1.0, "lo": 0.0, "hi": float("inf")},
                         "key_facts_diff": {"mean": 0.0, "lo": -0.02, "hi": 0.025},
                         "nll_change": {"mean": -0.27, "lo": -0.31, "hi": -0.23}},
                "general": {"retention": {"mean": 0.79, "lo": 0.71, "hi": 0.88}}}
    lines = result_lines({"headline": headline, "training": tuned_training(paths, model)})
    assert lines[0] == "exam: key facts ×1.0 [0.0, ∞], +0.000 [-0.020, +0.025]; reference NLL -27% [-31%, -23%]"
    assert lines[1] == "general: 79% [71%, 88%] of the base's key-fact score"
    assert lines[-1].startswith("training: 73 steps") and "**" not in lines[-1] and "`" not in lines[-1]
    assert "cut training to 28%" in lines[-1]
    assert result_lines({}) == []
