"""Typed config: YAML overrides over dataclass defaults, errors that name the key and the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ocrloc.config import (PRESET_NAMES, Config, ConfigError, apply_overrides, config_from_dict, config_path,
                           config_to_dict, list_config_names, load_config, save_config)

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


def test_config_names_resolve_to_the_configs_folder_the_package_carries(tmp_path, monkeypatch):
    """The configs live in the repository's configs/ (the design card's layout) and the package
    carries them as ocrloc/configs (a link in a clone): by name, by file, and by their repository
    path from any folder."""
    assert (REPO / "ocrloc" / "configs").resolve() == (REPO / "configs").resolve()
    assert load_config("quickstart") == load_config(REPO / "configs" / "quickstart.yaml")
    assert config_path("compare/argmax").resolve() == (REPO / "configs" / "compare" / "argmax.yaml").resolve()
    names = list_config_names()
    assert names == sorted(names) and {"quickstart", "compare/argmax", "research/head_study/07_hard_argmax"} <= set(names)
    assert "rules/drawn" not in names  # a rule table for data.rule, not a run config
    monkeypatch.chdir(tmp_path)  # no configs/ here: the README's spelling still finds the shipped one
    assert load_config("configs/quickstart.yaml") == load_config("quickstart")
    with pytest.raises(FileNotFoundError, match="'configs/quickstrat.yaml' is neither a file nor .*names: quickstart"):
        load_config("configs/quickstrat.yaml")


@pytest.mark.slow  # pip builds and installs a wheel
def test_a_built_wheel_carries_the_configs_and_loads_them_by_name(tmp_path):
    """configs/ is the source; the wheel must hold a copy (not the clone's link) that an installed
    ocrloc finds from any folder (mmdetection and detectron2 ship theirs the same way)."""
    import shutil
    import zipfile

    source = tmp_path / "src"
    # The clone's own folders are left out at its root only: ocrloc/data is the package's data layer, not a data folder.
    at_root = shutil.ignore_patterns("data", "runs", "out", ".git", ".ci-venv", ".venv", "build", "dist",
                                     "tutorial_output")
    anywhere = shutil.ignore_patterns("*.egg-info", "__pycache__", ".pytest_cache")

    def ignore(folder, names):
        return anywhere(folder, names) | (at_root(folder, names) if Path(folder) == REPO else set())

    shutil.copytree(REPO, source, symlinks=True, ignore=ignore)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "wheel"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheel").glob("ocrloc-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("ocrloc/configs/")}
    assert {f"ocrloc/configs/{p.relative_to(REPO / 'configs').as_posix()}" for p in (REPO / "configs").rglob("*.yaml")} == shipped
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                                str(tmp_path / "site"), str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    probe = ("import ocrloc.config as c; from pathlib import Path; "
             "assert Path(c.__file__).is_relative_to(Path.cwd().parent / 'site'), c.__file__; "
             "assert c.load_config('configs/quickstart.yaml') == c.load_config('quickstart'); "
             "print(len(c.list_config_names()))")
    (tmp_path / "elsewhere").mkdir()
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path / "elsewhere", capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site")}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) == len(list_config_names())


@pytest.mark.parametrize("name", list_config_names())
def test_shipped_configs_load(name):
    load_config(name)


@pytest.mark.parametrize("text, message", [
    ("model:\n  type: centernt\n",
     "model.type = 'centernt' is not one of centernet, argmax, study, retinanet, ssd, fcos, keypointrcnn"),
    ("data:\n  preset: canvas64\n", "data.preset = 'canvas64' is not one of canvas128, single, glyphs128"),
    ("model:\n  type: study\n  study:\n    inputs: [canvas, stage3]\n",
     "model.study.inputs[1] = 'stage3' is not one of canvas, stage1, stage2"),
    ("model:\n  type: argmax\n  argmax:\n    point_init: zero\n",
     "model.argmax.point_init = 'zero' is not one of learned, rule ('zero' is now 'learned')"),
    ("model:\n  crop_size: 32\n", "unknown key 'model.crop_size'; it moved to model.argmax.crop_size"),
    ("model:\n  point_mode: offset\n", "unknown key 'model.point_mode'; it moved to model.centernet.point_mode"),
    ("model:\n  argmax:\n    crop_size: 32\n", "model.argmax.crop_size applies to model.type argmax, not centernet"),
    ("model:\n  type: fcos\n  centernet:\n    point_mode: offset\n",
     "model.centernet.point_mode applies to model.type centernet, not fcos"),
    ("model:\n  type: argmax\n  baseline:\n    aspect_ratios: [1]\n",
     "model.baseline.aspect_ratios applies to model.type retinanet, ssd, fcos, keypointrcnn, not argmax"),
    ("model:\n  type: retinanet\nloss:\n  heatmap: 2\n", "loss.heatmap applies to model.type centernet, argmax, not retinanet"),
    ("model:\n  type: study\nloss:\n  crop_class: 0\n", "loss.crop_class applies to model.type argmax, not study"),
    ("model:\n  type: study\npostprocess:\n  nms_kernel: 5\n",
     "postprocess.nms_kernel applies to model.type centernet, argmax, not study"),
    ("train:\n  val_every: 0\n", "train.val_every = 0 must be > 0"),
])
def test_choices_and_keys_of_other_families_fail_at_load_time(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"


def test_set_errors_name_the_set_item():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["model.argmax.crop_size=32"])
    assert str(info.value) == ("--set model.argmax.crop_size=32: model.argmax.crop_size applies to model.type "
                               "argmax, not centernet")
    with pytest.raises(ConfigError, match=r"^--set model\.study\.head=mlp: model\.study\.head = 'mlp' is not one of "):
        load_config(None, ["model.type=study", "model.study.head=mlp"])
    with pytest.raises(ConfigError, match="^--set model.box_margin=2: unknown key 'model.box_margin'; it moved to "
                                          "model.argmax.box_margin$"):
        apply_overrides(Config(), ["model.box_margin=2"])
    # The key is set in the file, for the file's type; a --set changed the type: both are named.
    with pytest.raises(ConfigError) as info:
        load_config("research/argmax_rule_told", ["model.type=centernet"])
    assert str(info.value) == (f"{config_path('research/argmax_rule_told')}: model.argmax.point_fit applies to "
                               "model.type argmax, not centernet (model.type from --set model.type=centernet)")


@pytest.mark.parametrize("item, message", [
    ("optim.lr=-1", "optim.lr = -1.0 must be > 0"),
    ("optim.lr=0", "optim.lr = 0.0 must be > 0"),
    ("optim.lr=nan", "optim.lr = nan must be a finite number"),
    ("optim.lr=.inf", "optim.lr = inf must be a finite number"),
    ("optim.weight_decay=-1e-4", "optim.weight_decay = -0.0001 must be >= 0"),
    ("optim.grad_clip=nan", "optim.grad_clip = nan must be a finite number"),
    ("optim.min_lr_ratio=-0.5", "optim.min_lr_ratio = -0.5 must be >= 0"),
    ("optim.warmup_steps=-1", "optim.warmup_steps = -1 must be >= 0"),
    ("loss.size=-0.1", "loss.size = -0.1 must be >= 0"),
    ("postprocess.score_threshold=nan", "postprocess.score_threshold = nan must be a finite number"),
    ("postprocess.iou_threshold=1.5", "postprocess.iou_threshold = 1.5 must be in [0, 1]"),
    ("data.canvas_augment.noise_p=2", "data.canvas_augment.noise_p = 2.0 must be in [0, 1]"),
    ("data.canvas_augment.noise_std=[0, .nan]", "data.canvas_augment.noise_std[1] = nan must be a finite number"),
    ("data.digit_augment.rotate_deg=-10", "data.digit_augment.rotate_deg = -10.0 must be >= 0"),
    ("model.argmax.classifier_width=0", "model.argmax.classifier_width = 0 must be > 0"),
])
def test_a_float_out_of_its_range_or_not_finite_is_refused_naming_it(item, message):
    """Issue 26: optim.lr=-1 or nan passed the check (AdamW took the NaN and trained nothing)."""
    with pytest.raises(ConfigError) as info:
        load_config(None, [item] if not item.startswith(("loss.", "model.argmax.")) else ["model.type=argmax", item])
    assert str(info.value).endswith(message) and item in str(info.value)


@pytest.mark.parametrize("item, message", [
    ("train.steps=[1", "the value '[1' is not valid YAML (while parsing a flow sequence: expected ',' or ']', "
                       "but got '<stream end>' at column 3)"),
    ("train.steps=!!python/tuple [1]", "the value '!!python/tuple [1]' is not valid YAML (could not determine a "
                                       "constructor for the tag 'tag:yaml.org,2002:python/tuple'; only YAML's "
                                       "standard tags"),
    ("data.rule=!foo x", "could not determine a constructor for the tag '!foo'"),
])
def test_a_set_value_that_is_not_yaml_is_one_line_naming_the_item(item, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(Config(), [item])
    assert str(info.value).startswith(f"--set {item}: ") and message in str(info.value)
    assert "\n" not in str(info.value)
    assert apply_overrides(Config(), ["data.rule=!!str 37"]).data.rule == "37"  # a standard tag is read


def test_defaults_of_other_families_are_allowed():
    config = load_config(None, ["model.type=fcos", "model.argmax.crop_size=48", "loss.heatmap=1.0"])
    assert config.model.type == "fcos"


def test_old_flat_saved_config_migrates():
    # A centernet run saved before the family sections: every field flat under model, the argmax
    # ones at the defaults of their day, whatever the type.
    old = {
        "data": {"preset": "canvas128", "rule": "seed37"},
        "model": {"type": "centernet", "backbone": "resnet18", "pretrained_path": None, "fpn_channels": 64,
                  "head_stride": 4, "head_channels": 64, "point_mode": "offset", "anchor_sizes": None,
                  "aspect_ratios": None, "crop_size": 48, "box_margin": 1.0, "ink_reach": 6.0,
                  "argmax_channels": 8, "box_jitter": 1.0, "point_fit": "gradient", "crop_classifier": True,
                  "point_init": "zero",
                  "study": {"head": "pool", "inputs": ["stage2"], "hidden_layers": 1, "hidden": 256,
                            "stem_pool": "max", "argmax_channels": 8, "dummy": "none", "width": 32,
                            "point_init": "default"}},
        "loss": {"heatmap": 1.0, "argmax_point": 1.0},
    }
    config = config_from_dict(old)
    assert config == load_config(None, ["data.rule=seed37", "model.centernet.point_mode=offset"])

    old["model"].update(type="argmax", point_init="rule", box_margin=2.0)
    config = config_from_dict(old)
    assert config.model.argmax.point_init == "rule" and config.model.argmax.box_margin == 2.0
    assert config.model.argmax.point_fit == "gradient" and config.model.centernet.point_mode == "heatmap"
    assert config.model.study.point_init == "learned"

    old["model"].update(type="argmax", point_init="zero")
    assert config_from_dict(old).model.argmax.point_init == "learned"

    # Today's layout is checked as strictly as a file.
    today = config_to_dict(Config())
    today["model"]["argmax"]["crop_size"] = 32
    with pytest.raises(ConfigError, match="^run/config.yaml: model.argmax.crop_size applies to model.type argmax"):
        config_from_dict(today, "run/config.yaml")


def test_preset_names_match_the_canvas_presets():
    from ocrloc.data.canvas import PRESETS
    from ocrloc.data.glyphs import GLYPH_PRESETS

    assert set(PRESET_NAMES) == set(PRESETS) | set(GLYPH_PRESETS)


def test_which_family_reads_each_key_is_what_it_was_before_the_registry():
    """APPLIES_TO is derived from ocrloc/families.py; the strict check refuses the same keys."""
    from ocrloc.config import APPLIES_TO, MODEL_TYPES

    dense, baselines = ("centernet", "argmax"), ("retinanet", "ssd", "fcos", "keypointrcnn")
    assert MODEL_TYPES == ("centernet", "argmax", "study") + baselines
    assert APPLIES_TO == {
        "model.centernet": ("centernet",), "model.argmax": ("argmax",), "model.baseline": baselines,
        "model.study": ("study",), "model.shared_head_stem": dense, "model.max_stride": dense,
        "loss.heatmap": dense, "loss.size": dense, "loss.offset": dense, "loss.point": dense + ("study",),
        "loss.point_heatmap": dense, "loss.giou": dense,
        "loss.argmax_point": ("argmax",), "loss.crop_class": ("argmax",), "loss.point_map": ("argmax",),
        "postprocess.nms_kernel": dense}


def test_every_family_section_is_a_model_config_section_and_back():
    import dataclasses

    from ocrloc.config import ModelConfig
    from ocrloc.families import FAMILIES

    sections = {f.name for f in dataclasses.fields(ModelConfig) if dataclasses.is_dataclass(f.default_factory)}
    assert {family.section for family in FAMILIES if family.section} == sections


def test_the_moved_research_configs_load_by_their_old_names():
    assert config_path("experiments/head_study/06_extremes") == config_path("research/head_study/06_extremes")
    assert config_path("configs/ablations/argmax_rule_told.yaml") == config_path("research/argmax_rule_told")
    assert config_path("research/argmax_rule_told").parent.name == "research"


def test_reading_a_config_imports_neither_torch_nor_albumentations():
    code = "import sys, ocrloc.config; print(sorted({'torch', 'albumentations', 'cv2'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
