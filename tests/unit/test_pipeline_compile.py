"""The Kubeflow pipeline compiles to the structure a cluster needs: four components in
the order 02 → 03 → 04 → 05 passing step directories as artifacts, the notebooks'
parameters and defaults, the teacher's key from a Kubernetes secret and never a parameter."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("kfp", reason="needs the kubeflow extra: pip install 'ktools[kubeflow]' (make test does)")

from ktools.cli import main  # noqa: E402
from ktools.kubeflow import steps  # noqa: E402
from ktools.kubeflow.definition import (  # noqa: E402
    NOTEBOOK_ONLY,
    UNSET,
    build_pipeline,
    compile_pipeline,
    parameter_types,
    pipeline_arguments,
)
from ktools.kubeflow.names import API_KEY_ENV, STORE_MOUNT  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = {2: "02_Data_Processing/Data_Processing.ipynb", 3: "03_Knowledge_Generation/Knowledge_Generation.ipynb",
             4: "04_Knowledge_Mixing/Knowledge_Mixing.ipynb", 5: "05_Model_Training/Model_Training.ipynb"}
# Notebook names the pipeline spells differently.
PER_NOTEBOOK_NAMES = {(4, "COMPONENTS"): "mix_components"}
TASKS = ["data-processing", "knowledge-generation", "knowledge-mixing", "model-training"]


def _compile(tmp_path, **options):
    package = compile_pipeline(tmp_path / "pipeline.yaml", **options)
    spec, *platform = list(yaml.safe_load_all(package.read_text()))
    return spec, (platform[0] if platform else {})


def _notebook_parameters(number: int) -> dict[str, object]:
    notebook = json.loads((REPO / NOTEBOOKS[number]).read_text())
    cell = next(c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    values = {}
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_four_components_in_step_order_passing_step_directories(tmp_path):
    spec, _ = _compile(tmp_path)
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(TASKS)
    assert sorted(spec["components"]) == sorted(f"comp-{t}" for t in TASKS)
    assert "dependentTasks" not in tasks["data-processing"]
    for (producer, consumer), step in zip(zip(TASKS, TASKS[1:], strict=False), ("step_02", "step_03", "step_04"),
                                          strict=True):
        assert producer in tasks[consumer]["dependentTasks"]
        assert tasks[consumer]["inputs"]["artifacts"][step]["taskOutputArtifact"] == {
            "producerTask": producer, "outputArtifactKey": step}
    # Mixing also reads step 02's chunks (the knowledge components and the corpus exam).
    assert sorted(tasks["knowledge-mixing"]["dependentTasks"]) == ["data-processing", "knowledge-generation"]
    assert tasks["knowledge-mixing"]["inputs"]["artifacts"]["step_02"]["taskOutputArtifact"] == {
        "producerTask": "data-processing", "outputArtifactKey": "step_02"}
    outputs = spec["root"]["outputDefinitions"]["artifacts"]
    assert set(outputs) == {"step_02", "step_03", "step_04", "step_05", "model"}
    assert outputs["model"]["artifactType"]["schemaTitle"] == "system.Model"
    assert [tasks[t]["taskInfo"]["name"] for t in TASKS] == [
        "02 Data processing", "03 Knowledge generation", "04 Knowledge mixing", "05 Model training"]


def test_every_component_runs_the_given_image_and_installs_nothing_at_start(tmp_path):
    spec, _ = _compile(tmp_path, image="registry.example/ktools:1.2")
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 4
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == "registry.example/ktools:1.2"
        command = " ".join(container["command"])
        assert "pip install" not in command
        assert "from ktools.kubeflow.steps import" in command  # thin wrapper over ktools


def test_teacher_key_comes_from_the_secret_of_the_teacher_steps(tmp_path):
    _, platform = _compile(tmp_path, secret_name="my-teacher", secret_key="token")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    # 04 too: a real teacher rephrases the corpus exam's questions there (ktools.mixing.step).
    assert set(executors) == {"exec-data-processing", "exec-knowledge-generation", "exec-knowledge-mixing"}
    for config in executors.values():
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == "my-teacher"
        assert secret["keyToEnv"] == [{"secretKey": "token", "envVar": API_KEY_ENV}]
        assert secret["optional"] is False


def test_training_pod_asks_for_gpus_only_when_told(tmp_path):
    spec, _ = _compile(tmp_path)
    assert all("accelerator" not in e["container"].get("resources", {})
               for e in spec["deploymentSpec"]["executors"].values())
    spec, _ = _compile(tmp_path, train_gpus=4)
    resources = spec["deploymentSpec"]["executors"]["exec-model-training"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "4"


def test_store_pvc_mounts_the_volume_in_the_generation_pod_and_points_the_store_there(tmp_path):
    spec, platform = _compile(tmp_path, secret_name="", store_pvc="ktools-store")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-knowledge-generation"}
    (mount,) = executors["exec-knowledge-generation"]["pvcMount"]
    assert mount["mountPath"] == STORE_MOUNT and "ktools-store" in json.dumps(mount)
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["response_store_dir"]["defaultValue"] == STORE_MOUNT
    spec, platform = _compile(tmp_path, secret_name="")
    assert platform == {} and spec["root"]["inputDefinitions"]["parameters"]["response_store_dir"].get(
        "defaultValue", "") == ""


def test_no_secret_wiring_when_the_secret_name_is_empty(tmp_path):
    _, platform = _compile(tmp_path, secret_name="")
    assert platform == {}


def test_no_parameter_can_carry_a_secret(tmp_path):
    spec, _ = _compile(tmp_path)
    names = set(spec["root"]["inputDefinitions"]["parameters"])
    assert not {n for n in names if any(word in n for word in ("key", "secret", "password", "credential"))}
    assert {"teacher_base_url", "teacher_model_name", "teacher_provider"} <= names


def test_pipeline_parameters_are_the_notebooks_with_their_defaults():
    pipeline = build_pipeline()
    types = parameter_types(pipeline)
    defaults = {name: spec.default for name, spec in pipeline.component_spec.inputs.items()}
    seen = set()
    for number in NOTEBOOKS:
        for name, value in _notebook_parameters(number).items():
            if name in NOTEBOOK_ONLY:
                continue
            target = PER_NOTEBOOK_NAMES.get((number, name), name.lower())
            assert target in types, f"notebook {number:02d} parameter {name} has no pipeline parameter"
            (expected,) = pipeline_arguments(pipeline, {target: value}).values()
            assert defaults[target] == expected, f"{target}: pipeline {defaults[target]!r}, notebook {value!r}"
            seen.add(target)
    teacher = {"teacher_provider", "teacher_base_url", "teacher_model_name"}
    # Nothing the notebooks do not have, but the endpoint and where the response store outlives a pod.
    assert set(types) - seen == teacher | {"response_store_dir"}


def test_arguments_accept_notebook_names_and_coerce_types():
    pipeline = build_pipeline()
    arguments = pipeline_arguments(pipeline, {"MAX_SEQ_LEN": 256, "CUT_SIZES": 2, "EPOCHS": 1, "DRY_RUN": False,
                                              "EXAM_LIMIT": 4, "TEMPERATURE": None, "sources": "a.md"})
    assert arguments == {"mix_max_seq_len": 256, "train_max_seq_len": 256, "cut_sizes": "2", "epochs": 1.0,
                         "temperature": -1.0, "sources": ["a.md"]}
    assert pipeline_arguments(pipeline, {"max_rows": None}) == {"max_rows": UNSET["Integer"]}
    with pytest.raises(ValueError, match="unknown pipeline parameter 'bogus'"):
        pipeline_arguments(pipeline, {"bogus": 1})
    with pytest.raises(ValueError, match="chunk_max_tokens expects integer"):
        pipeline_arguments(pipeline, {"chunk_max_tokens": "many"})


def test_compile_command_writes_the_yaml_with_new_defaults(tmp_path, capsys):
    target = tmp_path / "sub" / "p.yaml"
    assert main(["pipeline", "compile", "-o", str(target), "--image", "img:2", "--secret-name", "s",
                 "-p", "NUMBER_OF_SUMMARIES", "2", "-p", "cut_sizes", "2"]) == 0
    spec = next(yaml.safe_load_all(target.read_text()))
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["number_of_summaries"]["defaultValue"] == 2
    assert params["cut_sizes"]["defaultValue"] == "2"
    assert "img:2" in capsys.readouterr().out
    assert main(["pipeline", "compile", "-o", str(target), "-p", "bogus", "1"]) == 2
    assert "unknown pipeline parameter" in capsys.readouterr().err


def test_compile_command_without_kfp_names_the_extra(tmp_path, monkeypatch, capsys):
    import sys

    for name in [m for m in sys.modules if m == "kfp" or m.startswith(("kfp.", "ktools.kubeflow."))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "kfp", None)  # `import kfp` now fails as if it were not installed
    assert main(["pipeline", "compile", "-o", str(tmp_path / "p.yaml")]) == 2
    assert "pip install 'ktools[kubeflow]'" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()


def test_unset_sentinels_map_to_the_notebooks_none():
    assert [steps._unset(v) for v in (0, 0.0, "", False, None)] == [None] * 5
    assert [steps._unset(v) for v in (3, 0.5, "x", True)] == [3, 0.5, "x", True]


def test_publish_copies_a_step_directory_and_leaves_checkpoints_out(tmp_path):
    step = tmp_path / "step_05"
    (step / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (step / "checkpoints" / "checkpoint-2" / "optimizer.pt").write_text("big")
    (step / "train_report.json").write_text("{}")
    target = steps.publish(step, tmp_path / "artifact", ignore=steps.TRAINING_ARTIFACT_IGNORE)
    assert sorted(p.name for p in target.iterdir()) == ["train_report.json"]
    with pytest.raises(steps.PipelineStepError, match="was not written"):
        steps.publish(tmp_path / "missing", tmp_path / "artifact2")


def test_published_reports_name_paths_relative_to_the_output_root_not_the_pod_scratch(tmp_path):
    root = tmp_path / "ktools-kfp-x"
    step = root / "step_03"
    (step / "extractive_summary").mkdir(parents=True)
    report = {"out_dir": str(step), "files": {"gen": str(step / "extractive_summary" / "gen.jsonl")},
              "endpoints": [{"url": "http://vllm:8000/v1"}], "note": f"see {step}", "root": str(root),
              "elsewhere": str(tmp_path / "ktools-kfp-xy" / "a.json"), "rows": 3}
    (step / "report.json").write_text(json.dumps(report))
    (step / "extractive_summary" / "gen.jsonl").write_text(json.dumps({"path": str(step)}) + "\n")
    (step / "weights.json").write_text("not json {")
    target = steps.publish(step, tmp_path / "artifact", root=root)
    published = json.loads((target / "report.json").read_text())
    assert published == {**report, "out_dir": "step_03", "files": {"gen": "step_03/extractive_summary/gen.jsonl"},
                         "root": "."}  # a sibling folder sharing the prefix and prose stay as they were
    assert (target / "extractive_summary" / "gen.jsonl").read_text() == (
        step / "extractive_summary" / "gen.jsonl").read_text()  # datasets are data, never rewritten
    assert (target / "weights.json").read_text() == "not json {"
    assert json.loads((step / "report.json").read_text()) == report  # the scratch copy is left alone


def test_scratch_root_copies_inputs_as_step_folders_and_cleans_up(tmp_path):
    previous = tmp_path / "artifact"
    previous.mkdir()
    (previous / "seed_data.jsonl").write_text("{}\n")
    with steps.scratch_root({2: previous}) as root:
        assert (root / "step_02" / "seed_data.jsonl").read_text() == "{}\n"
    assert not root.exists()
    assert (previous / "seed_data.jsonl").exists()  # the input artifact is untouched
    with pytest.raises(FileNotFoundError, match="input artifact for step 03"), \
            steps.scratch_root({3: tmp_path / "nothing"}):
        pass


KFP_TYPES = {str: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", bool: "BOOLEAN"}
STEP_TASKS = {2: "data-processing", 3: "knowledge-generation", 4: "knowledge-mixing", 5: "model-training"}


def test_every_declared_pipeline_setting_is_a_parameter_passed_to_its_steps(tmp_path):
    """A setting declared with `kubeflow=(steps…)` in ktools.config is a pipeline parameter with its
    type and "unset" default, and reaches each of those steps' components under its field name.
    The components are written out by hand (KFP ships their source), so this is what keeps them in
    step with the declarations."""
    from ktools.kubeflow import components as component_functions
    from ktools.kubeflow.parameters import pipeline_settings

    spec, _ = _compile(tmp_path)
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    declared = pipeline_settings()
    assert {s.name for s in declared} >= {"teacher_base_url", "teacher_model_name", "number_of_summaries",
                                          "cut_sizes", "mix_max_seq_len", "student_model_name", "temperature"}
    for setting in declared:
        assert setting.name in parameters, f"declared setting {setting.env} is not a pipeline parameter"
        assert parameters[setting.name]["parameterType"] == KFP_TYPES[setting.type], setting.name
        assert parameters[setting.name].get("defaultValue", setting.type()) == setting.unset, setting.name
        for step in setting.steps:
            task = STEP_TASKS[step]
            component = spec["components"][f"comp-{task}"]["inputDefinitions"]["parameters"]
            assert setting.attr in component, f"{task} does not take {setting.env} ({setting.attr})"
            assert component[setting.attr]["parameterType"] == KFP_TYPES[setting.type]
            assert spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][setting.attr] == {
                "componentInputParameter": setting.name}
            function = getattr(component_functions, task.replace("-", "_"))
            parameter = inspect.signature(function).parameters[setting.attr]
            assert parameter.default == setting.unset and parameter.annotation is setting.type, (task, setting.attr)
    # A component takes no setting its declaration does not name for its step.
    by_attr = {s.attr: s for s in declared}
    for step, task in STEP_TASKS.items():
        component = spec["components"][f"comp-{task}"]["inputDefinitions"]["parameters"]
        stray = {name for name in component if name in by_attr and step not in by_attr[name].steps
                 and not (step == 5 and name == "max_seq_len")}  # step 05's own (training) max_seq_len
        assert not stray, f"{task} takes {stray}, which no declaration gives it"


def test_settings_variables_name_pipeline_parameters():
    pipeline = build_pipeline()
    assert pipeline_arguments(pipeline, {"TEACHER_MODEL_BASE_URL": "http://vllm:8000/v1", "STUDENT_MODEL": "m",
                                         "TEACHER_TEMPERATURE": 0, "MIX_MAX_SEQ_LEN": 300}) == {
        "teacher_base_url": "http://vllm:8000/v1", "student_model_name": "m", "temperature": 0.0,
        "mix_max_seq_len": 300}
    assert pipeline_arguments(pipeline, {"TEMPERATURE": None}) == {"temperature": -1.0}
