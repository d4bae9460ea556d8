"""The pipeline's setting parameters come from the settings' declarations (no kfp needed): their
types and "unset" defaults, the overrides a component hands to load_settings, and no secret."""

from __future__ import annotations

import dataclasses

import pytest

from ktools.config import Declaration, declared_settings
from ktools.kubeflow.parameters import _from_declaration, pipeline_settings, setting_overrides


def test_types_and_unset_defaults_follow_the_declarations():
    by_name = {s.name: s for s in pipeline_settings()}
    assert (by_name["cut_sizes"].type, by_name["cut_sizes"].unset) == (str, "")  # a list travels as "5,50"
    assert (by_name["mix_max_seq_len"].attr, by_name["mix_max_seq_len"].type) == ("max_seq_len", int)
    assert (by_name["max_cost"].type, by_name["max_cost"].unset) == (float, 0.0)  # 0 = no limit anyway
    assert by_name["temperature"].unset == -1.0  # 0.0 is a real temperature
    assert by_name["enable_reasoning"].unset is False
    assert {s.name for s in pipeline_settings(5)} == {"student_model_name", "cut_sizes"}


def test_no_secret_is_a_pipeline_parameter():
    secrets = [d for d in declared_settings() if d.secret]
    assert {d.env for d in secrets} >= {"TEACHER_MODEL_API_KEY", "PDF_PASSWORD", "LOCAL_TEACHER_API_KEY"}
    assert not [d.env for d in secrets if d.kubeflow]
    assert not {d.attr for d in secrets} & {s.attr for s in pipeline_settings()}
    from ktools import config

    with pytest.raises(ValueError, match="is a secret and cannot be a pipeline parameter"):
        config._setting("SOME_KEY", config._parse_secret, config.Secret(""), "a key", secret=True, kubeflow=(3,))


def test_a_switch_that_defaults_to_on_cannot_be_a_parameter():
    switch = Declaration("x", "X", lambda raw: raw == "1", True, "on by default", type=bool, kubeflow=(4,))
    with pytest.raises(ValueError, match="defaults to on"):
        _from_declaration(switch)
    assert _from_declaration(dataclasses.replace(switch, default=False)).unset is False


def test_overrides_turn_unset_values_into_none_and_keep_the_rest():
    assert setting_overrides(3, {"temperature": -1.0, "max_tokens": 0, "customisation_prompt": "",
                                 "enable_reasoning": False, "teacher_base_url": ""}) == dict.fromkeys(
        ("temperature", "max_tokens", "customisation_prompt", "enable_reasoning", "teacher_base_url"))
    assert setting_overrides(3, {"temperature": 0.0, "max_tokens": 64, "enable_reasoning": True,
                                 "teacher_base_url": "http://h:8000/v1", "max_cost": None}) == {
        "temperature": 0.0, "max_tokens": 64, "enable_reasoning": True, "teacher_base_url": "http://h:8000/v1",
        "max_cost": None}
    assert setting_overrides(3, {"temperature": -0.5}) == {"temperature": None}
    with pytest.raises(TypeError, match="step 05 takes no setting parameter max_tokens"):
        setting_overrides(5, {"max_tokens": 3})
