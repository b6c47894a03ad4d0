"""Typed config: YAML overrides over dataclass defaults, errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrloc.config import Config, ConfigError, apply_overrides, config_from_dict, config_to_dict, load_config, save_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_then_file_then_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  steps: 50\noptim:\n  lr: 1e-3\ndata:\n  canvas_augment:\n    noise_std: [0.0, 0.1]\n")
    config = load_config(path, ["train.steps=70", "model.backbone=mobilenetv3_small_100"])
    assert config.train.steps == 70  # --set wins over the file
    assert config.optim.lr == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string; we read the float
    assert config.data.canvas_augment.noise_std == (0.0, 0.1)
    assert config.model.backbone == "mobilenetv3_small_100"
    assert config.train.batch_size == Config().train.batch_size  # untouched defaults stay


@pytest.mark.parametrize("text, message", [
    ("train:\n  stepz: 5\n", "unknown key 'train.stepz'"),
    ("trian:\n  steps: 5\n", "unknown key 'trian'"),
    ("train:\n  steps: many\n", "train.steps = 'many' is a str, expected int"),
    ("optim:\n  lr: true\n", "optim.lr = True is a bool, expected float"),
    ("train: 5\n", "train must be a mapping"),
    ("data:\n  canvas_augment:\n    noise_std: [1]\n", "must be a list of 2 values"),
])
def test_file_errors_name_the_key_and_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_set_errors_name_the_item():
    with pytest.raises(ConfigError, match=r"--set train\.steps=x: train\.steps = 'x'"):
        apply_overrides(Config(), ["train.steps=x"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(Config(), ["train.steps"])


def test_missing_file_and_invalid_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("train: [\n")
    with pytest.raises(ConfigError, match="broken.yaml: invalid YAML"):
        load_config(bad)


def test_saved_config_round_trips(tmp_path):
    config = load_config(None, ["data.rule=seed37", "postprocess.iou_threshold=0.5"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_load(name):
    load_config(REPO / "configs" / name)
