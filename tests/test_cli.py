"""The ``ocrloc`` command (ocrloc/cli/): subcommands, fast help that imports nothing heavy, the tools/ wrappers,
the installed executable. Help timings are measured by benchmarks/cli_help.py, not asserted here."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocrloc.cli import COMMANDS, build_parser
from ocrloc.cli.train import next_steps

REPO = Path(__file__).resolve().parents[1]
CLI_DIR = REPO / "ocrloc" / "cli"
HEAVY = ("torch", "torchvision", "numpy", "albumentations", "timm", "pycocotools", "cv2")

# Options each subcommand must list in its --help (all of them, as in the tools/ scripts before the move).
OPTIONS = {
    "train": ["--config", "--set", "--out", "--resume", "--data-root", "--no-progress"],
    "predict": ["--checkpoint", "--exported", "--images", "--unlisted", "--out", "--viz", "--viz-count", "--viz-score",
                "--batch-size", "--polarity", "--threshold", "--device"],
    "evaluate": ["--gt", "--results", "--oracle", "--sigma", "--threshold", "--json"],
    "export": ["--checkpoint", "--out", "--format", "--input-dtype"],
    "make-dataset": ["--preset", "--rule", "--split", "--count", "--seed", "--out", "--data-root", "--preview",
                     "--preview-count", "--augment", "--no-images", "--overwrite"],
    "compare": ["--configs", "--rule", "--steps", "--test", "--out", "--table", "--set", "--device", "--no-progress"],
    "experiment": ["--configs", "--rules", "--seeds", "--out", "--table", "--fidelity", "--test-count", "--test-seed",
                   "--set", "--device", "--no-progress"],
    "report": ["--gt", "--results", "--out", "--run", "--sigma", "--threshold", "--worst"],
    "download-mnist": ["--root"],
}


def _env() -> dict:
    env = {**os.environ, "COLUMNS": "100"}  # argparse wraps to COLUMNS: the same width for every run
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def ocrloc_executable() -> str | None:
    """The installed console script: next to this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / ("ocrloc.exe" if os.name == "nt" else "ocrloc")
    return str(beside) if beside.is_file() else shutil.which("ocrloc")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


# --- help -------------------------------------------------------------------------------------------------------


def test_commands_are_the_nine_and_each_has_its_module_and_wrapper():
    assert list(COMMANDS) == ["train", "predict", "evaluate", "export", "make-dataset", "compare", "experiment",
                              "report", "download-mnist"]
    assert set(OPTIONS) == set(COMMANDS)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"ocrloc.cli.{module_name}")
        assert callable(module.add_arguments) and callable(module.run) and callable(module.main)
        wrapper = (REPO / "tools" / f"{module_name}.py").read_text()
        assert f"from ocrloc.cli.{module_name} import main" in wrapper and len(wrapper.splitlines()) <= 10


def test_top_level_help_lists_the_subcommands():
    proc = run(sys.executable, "-m", "ocrloc", "--help")
    assert proc.returncode == 0, proc.stderr
    for name in COMMANDS:
        assert name in proc.stdout
    assert "ocrloc train --config quickstart --out runs/quickstart" in proc.stdout
    assert "python tools/<command>.py" in proc.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_subcommand_help_lists_its_options_and_prints_examples_as_written(name: str):
    module = importlib.import_module(f"ocrloc.cli.{COMMANDS[name]}")
    proc = run(sys.executable, "-m", "ocrloc", name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m ocrloc {name} ")
    for option in OPTIONS[name]:
        assert option in proc.stdout
    for line in module.__doc__.strip().splitlines():  # RawDescriptionHelpFormatter: no rewrapping
        assert line in proc.stdout
    assert f"  ocrloc {name} --" in proc.stdout  # the examples use the installed command
    assert f"python tools/{COMMANDS[name]}.py" in proc.stdout

    # tools/<name>.py is the same code: the same options, help texts and defaults.
    tool = run(sys.executable, REPO / "tools" / f"{COMMANDS[name]}.py", "--help")
    assert tool.returncode == 0, tool.stderr
    assert tool.stdout.startswith(f"usage: {COMMANDS[name]}.py ")
    assert tool.stdout.split("\noptions:\n")[1] == proc.stdout.split("\noptions:\n")[1]


def test_every_option_has_a_help_string():
    for name, sub in subparsers().items():
        for action in sub._actions:
            assert action.help and action.help.strip(), f"ocrloc {name}: {action.option_strings} has no help"


def test_help_imports_nothing_heavy():
    code = "\n".join([
        "import runpy, sys",
        "from ocrloc.cli import COMMANDS, main",
        "for argv in [['--help'], ['--version']] + [[c, '--help'] for c in COMMANDS]:",
        "    try:",
        "        main(argv)",
        "    except SystemExit as e:",
        "        assert e.code == 0, (argv, e.code)",
        "for module in COMMANDS.values():",  # and the tools/ wrappers
        "    sys.argv = [f'tools/{module}.py', '--help']",
        "    try:",
        "        runpy.run_path(sys.argv[0], run_name='__main__')",
        "    except SystemExit as e:",
        "        assert e.code == 0, (module, e.code)",
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))",
        "print(sorted(m for m in sys.modules if m.startswith('ocrloc.') and not m.startswith('ocrloc.cli')))",
    ])
    proc = run(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    heavy, ocrloc_modules = proc.stdout.strip().splitlines()[-2:]
    assert heavy == "[]"
    # Not even ocrloc.config: it is imported in run(). ocrloc.constants holds the numbers that options share with
    # the library (the score threshold, the OKS sigma), ocrloc.data.catalog the built-in data's names (presets,
    # rules, splits), each defined there once; both are the standard library only (tests/test_import_graph.py).
    assert ocrloc_modules == "['ocrloc.constants', 'ocrloc.data', 'ocrloc.data.catalog']"


# --- exit codes -------------------------------------------------------------------------------------------------


def test_unknown_or_missing_subcommand_exits_2():
    proc = run(sys.executable, "-m", "ocrloc", "nonsense")
    assert proc.returncode == 2
    assert "invalid choice: 'nonsense'" in proc.stderr and proc.stdout == ""
    proc = run(sys.executable, "-m", "ocrloc")
    assert proc.returncode == 2 and "required: COMMAND" in proc.stderr


def test_bad_input_exits_2_with_one_error_line(tmp_path: Path):
    missing = tmp_path / "nope.json"
    proc = run(sys.executable, "-m", "ocrloc", "evaluate", "--gt", missing, "--oracle")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {missing}: no such file")


# --- the options' choices and defaults are the library's own, and the imports run() makes ------------------------


def test_option_choices_and_defaults_are_the_librarys_own():
    # Each is defined once, in a light module (ocrloc.constants, ocrloc.data.catalog), and read from there by the
    # library and the command line alike: nothing is copied, so there is nothing to keep equal.
    from ocrloc.data.canvas import PRESETS
    from ocrloc.data.glyphs import GLYPH_PRESETS
    from ocrloc.data.mnist import SPLITS
    from ocrloc.data.rules import RULES
    from ocrloc.evaluation import DEFAULT_SIGMA

    from ocrloc.api import DEFAULT_MAX_PIXELS

    subs = subparsers()
    defaults_of = {name: {a.dest: a for a in sub._actions} for name, sub in subs.items()}
    assert defaults_of["evaluate"]["sigma"].default is DEFAULT_SIGMA
    assert defaults_of["report"]["sigma"].default is DEFAULT_SIGMA
    assert defaults_of["predict"]["max_pixels"].default is DEFAULT_MAX_PIXELS
    assert all(name in defaults_of["make-dataset"]["rule"].help for name in RULES)
    # One score threshold, defined once (ocrloc.constants), for every command that thresholds scores.
    from ocrloc.constants import DEFAULT_SCORE_THRESHOLD
    from ocrloc.engine.tensorboard_images import MIN_DRAWN_SCORE
    from ocrloc.evaluation import evaluate

    assert defaults_of["evaluate"]["threshold"].default == DEFAULT_SCORE_THRESHOLD
    assert defaults_of["report"]["threshold"].default == DEFAULT_SCORE_THRESHOLD
    assert defaults_of["predict"]["viz_score"].default == DEFAULT_SCORE_THRESHOLD == MIN_DRAWN_SCORE
    assert inspect.signature(evaluate).parameters["threshold"].default == DEFAULT_SCORE_THRESHOLD
    # predict thresholds and reads polarity as ocrloc.Predictor does by default.
    from ocrloc.api import Predictor
    from ocrloc.preprocess import POLARITIES

    call = inspect.signature(Predictor.__call__).parameters
    assert defaults_of["predict"]["threshold"].default == call["score_threshold"].default == DEFAULT_SCORE_THRESHOLD
    assert list(defaults_of["predict"]["polarity"].choices) == list(POLARITIES)
    assert defaults_of["predict"]["polarity"].default == call["polarity"].default == "auto"
    assert list(defaults_of["make-dataset"]["preset"].choices) == sorted({**PRESETS, **GLYPH_PRESETS})
    assert list(defaults_of["make-dataset"]["split"].choices) == list(SPLITS)


def _lazy_imports() -> list[tuple[str, str, str]]:
    """``(cli file, module, name)`` of every ``from ocrloc... import name`` in ocrloc/cli/."""
    found = []
    for path in sorted(CLI_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ocrloc"):
                found += [(path.name, node.module, alias.name) for alias in node.names]
    return found


def test_every_import_inside_run_resolves():
    """The heavy imports wait until run(); a renamed module or function must still fail here, not for a user."""
    imports = _lazy_imports()
    assert ("export.py", "ocrloc.engine.checkpoint", "detector_from_checkpoint") in imports
    broken = []
    for file, module, name in imports:
        try:
            ok = hasattr(importlib.import_module(module), name)
        except ImportError:
            ok = False
        if not ok:
            broken.append(f"ocrloc/cli/{file}: from {module} import {name}")
    assert not broken, "imports that no longer resolve:\n" + "\n".join(broken)


def test_experiment_expands_folders_and_names_of_shipped_folders(tmp_path: Path, monkeypatch):
    from ocrloc.cli.experiment import expand_configs

    shipped = tmp_path / "shipped"
    (shipped / "study").mkdir(parents=True)
    for name in ("b.yaml", "a.yaml", "notes.txt"):
        (shipped / "study" / name).write_text("{}\n")
    local = tmp_path / "local"
    local.mkdir()
    (local / "c.yaml").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    assert expand_configs(["study", "local", "x.yaml", "quickstart"], packaged=shipped) == [
        shipped / "study" / "a.yaml", shipped / "study" / "b.yaml", Path("local/c.yaml"), Path("x.yaml"),
        Path("quickstart")]
    assert expand_configs(["local"], packaged=shipped) == [Path("local/c.yaml")]


# --- train's closing hint ---------------------------------------------------------------------------------------


def test_train_hint_names_the_installed_commands_and_the_run_s_own_rule_preset_and_checkpoint():
    text = next_steps("single", "seed37", Path("runs/x"))
    lines = text.splitlines()
    assert lines[0] == "next:"
    assert lines[1].startswith("  ocrloc make-dataset --preset single --rule seed37 --split test ")
    assert "--out data/test_seed37" in lines[1]
    assert lines[2].startswith("  ocrloc predict --checkpoint runs/x/checkpoints/best.pt --images data/test_seed37/images")
    assert lines[2].endswith(" --threshold 0")  # keypoint AP is scored over every detection
    assert lines[3].startswith("  ocrloc evaluate --gt data/test_seed37/annotations.json --results runs/x/")
    assert lines[4] == ("  ocrloc report --gt data/test_seed37/annotations.json --results runs/x/test_results.json "
                        "--run runs/x --out runs/x/report")
    assert lines[5] == "  ocrloc export --checkpoint runs/x/checkpoints/best.pt --out runs/x/model.pt"
    rule_file = next_steps("canvas128", "my rules/corners.yaml", Path("runs/y"))
    assert "--rule 'my rules/corners.yaml'" in rule_file and "--out data/test_corners" in rule_file
    glyphs = next_steps("glyphs128", None, Path("runs/g")).splitlines()
    assert glyphs[1].startswith("  ocrloc make-dataset --preset glyphs128 --split test ") and "--rule" not in glyphs[1]
    assert "--out data/test_glyphs128" in glyphs[1]
    coco = next_steps(None, None, Path("runs/c")).splitlines()  # a COCO folder: no preset to regenerate
    assert "make-dataset" not in coco[1] and "YOUR_TEST_FOLDER/images" in coco[2]


# --- the installed executable -----------------------------------------------------------------------------------


def tiny_gt() -> dict:
    """Two images, three digits: a valid keypoints ground truth (docs/task.md, "Ground-truth and results files")."""
    digits = [(1, 3, 20.0, 30.0, 18.0, 24.0), (1, 7, 80.0, 60.0, 20.0, 26.0), (2, 0, 50.0, 50.0, 22.0, 28.0)]
    return {
        "images": [{"id": i, "file_name": f"{i:06d}.png", "width": 128, "height": 128} for i in (1, 2)],
        "annotations": [
            {"id": k + 1, "image_id": img, "category_id": cls, "bbox": [px - 3, py - 3, w, h], "area": w * h,
             "keypoints": [px, py, 2], "num_keypoints": 1, "iscrowd": 0}
            for k, (img, cls, px, py, w, h) in enumerate(digits)
        ],
        "categories": [{"id": c, "name": str(c), "keypoints": ["point"], "skeleton": []} for c in range(10)],
    }


def test_installed_ocrloc_evaluates_the_oracle(tmp_path: Path):
    exe = ocrloc_executable()
    if exe is None:
        pytest.skip("no `ocrloc` executable beside sys.executable or on PATH: run `pip install -e .` to install it")
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(tiny_gt()))
    proc = run(exe, "evaluate", "--gt", gt, "--oracle", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("images 2   ground-truth digits 3   detections 3")
    assert any(line.startswith("keypoint AP") for line in lines)
    scores = json.loads(lines[-1])
    assert scores["kpt_AP"] == pytest.approx(1.0) and scores["miss_rate"] == pytest.approx(0.0)
    assert scores["cls_acc"] == pytest.approx(1.0)

    help_ = run(exe, "--help")
    assert help_.returncode == 0 and help_.stdout.startswith("usage: ocrloc ")
