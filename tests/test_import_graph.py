"""The package's import structure: no cycle between its parts, and the light paths stay light.

* Every module of ``ocrloc`` is parsed with ``ast`` (no import runs): each ``import`` and ``from ... import``,
  at module level, inside functions and under ``if TYPE_CHECKING`` alike, is an edge between the package's
  parts (``ocrloc.<subpackage>`` or a top-level module such as ``ocrloc.config``). The graph must have no
  cycle: a lazy import inside a function is still a dependency, it only hides the cycle from the interpreter.
* ``ocrloc.Predictor`` on a checkpoint never imports the training stack (albumentations, cv2, the generators),
  and reading a COCO folder never imports a generator (subprocesses, so the modules counted are their own).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ocrloc"

# The training stack and the data generators: what inference and a COCO reader must not load.
GENERATORS = ("ocrloc.data.canvas", "ocrloc.data.glyphs", "ocrloc.data.mnist", "ocrloc.data.augment")
TRAINING_STACK = ("albumentations", "cv2") + GENERATORS


def _module_name(path: Path) -> Tuple[str, bool]:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _part(module: str, modules: Set[str]) -> Optional[str]:
    """The part of the package that ``module`` belongs to (``ocrloc.data.canvas`` -> ``ocrloc.data``); None for
    the package root (``ocrloc/__init__.py``, which loads the inference API by name, on first use) and for
    anything outside the package."""
    parts = module.split(".")
    if parts[0] != "ocrloc" or len(parts) < 2:
        return None
    part = ".".join(parts[:2])
    return part if part in modules or any(m.startswith(part + ".") for m in modules) else None


def import_edges() -> Dict[Tuple[str, str], List[str]]:
    """``{(part, imported part): ["file:line", ...]}`` for every import of one part of ``ocrloc`` by another."""
    files = sorted(PACKAGE.rglob("*.py"))
    names = {path: _module_name(path) for path in files}
    modules = {name for name, _ in names.values()}
    edges: Dict[Tuple[str, str], List[str]] = {}
    for path in files:
        module, is_package = names[path]
        source = _part(module, modules)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the module's own package, up level - 1 packages
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # `from ocrloc import api` imports the module ocrloc.api; `from ocrloc.x import name` imports ocrloc.x.
                targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                           for alias in node.names]
            else:
                continue
            for target in targets:
                imported = _part(target, modules)
                if source and imported and imported != source:
                    edges.setdefault((source, imported), []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return edges


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """A cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search, nodes in sorted order)."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_names_a_cycle_and_passes_a_layered_graph():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"cli": {"engine", "data"}, "engine": {"data", "models"}, "models": {"data"}}) is None


def test_the_package_parts_import_each_other_without_a_cycle():
    edges = import_edges()
    graph: Dict[str, Set[str]] = {}
    for source, imported in edges:
        graph.setdefault(source, set()).add(imported)
    # The parts the graph must see, so a parsing slip cannot pass it empty.
    assert {"ocrloc.config", "ocrloc.data", "ocrloc.engine", "ocrloc.models", "ocrloc.visualize"} <= set(graph)
    assert ("ocrloc.engine", "ocrloc.data") in edges
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle " + " -> ".join(cycle) + ": " + "; ".join(
        f"{a} -> {b} at {', '.join(edges[(a, b)][:3])}" for a, b in zip(cycle, cycle[1:]))


def _run(code: str, cwd: Path) -> List[str]:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _loaded(modules) -> str:
    return f"import json, sys; print(json.dumps(sorted(m for m in {tuple(modules)!r} if m in sys.modules)))"


def test_the_light_modules_import_the_standard_library_only(tmp_path):
    # What --help, the config and a checkpoint reader import from the data layer: no numpy, torch, yaml or cv2.
    heavy = ("numpy", "torch", "yaml", "cv2", "albumentations", "PIL", "pycocotools")
    code = ("import ocrloc.constants, ocrloc.data.catalog, ocrloc.data.source, ocrloc.data.data_config, "
            "ocrloc.utils.errors\n" + _loaded(heavy))
    assert _run(code, tmp_path) == []


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny untrained argmax detector saved as the trainer saves it, and as an older trainer did (no train_size
    in its meta: the loader then reads the size from the preset)."""
    import torch

    from ocrloc.config import config_to_dict, load_config
    from ocrloc.engine.checkpoint import save_checkpoint
    from ocrloc.models.build import build

    torch.manual_seed(0)
    config = load_config(None, ["model.type=argmax", "model.backbone=test_resnet", "model.fpn_channels=8",
                                "model.head_channels=8", "postprocess.score_threshold=0.0"])
    detector = build(config).eval()
    folder = tmp_path_factory.mktemp("light")
    meta = {"rule": "all10", "preset": "canvas128", "train_size": [128, 128], "task": detector.task.to_dict()}
    state = {"model": detector.model.state_dict(), "config": config_to_dict(config), "meta": meta, "step": 0}
    save_checkpoint(state, folder / "model.pt")
    save_checkpoint({**state, "meta": {"rule": "all10", "preset": "canvas128"}}, folder / "old.pt")
    return folder


@pytest.mark.parametrize("name", ["model.pt", "old.pt"])
def test_predictor_on_a_checkpoint_imports_no_training_stack(checkpoints, name, tmp_path):
    code = "\n".join([
        "import numpy as np, ocrloc",
        f"predictor = ocrloc.Predictor({str(checkpoints / name)!r}, device='cpu')",
        "canvas = np.zeros((128, 128), np.uint8); canvas[40:70, 50:60] = 255",
        "detections = predictor(canvas, score_threshold=0)",
        "assert predictor.train_size in ([128, 128], (128, 128)), predictor.train_size",
        "assert len(detections.boxes) > 0",  # threshold 0: an untrained model still gives detections
        _loaded(TRAINING_STACK),
    ])
    assert _run(code, tmp_path) == []


def _coco_folder(folder: Path) -> Path:
    """A two-image COCO keypoints folder written by hand (no generator): a user's own data."""
    import cv2

    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for k in range(2):
        image = np.zeros((40, 48), np.uint8)
        image[10:20, 12 + 10 * k:18 + 10 * k] = 255
        cv2.imwrite(str(folder / "images" / f"{k}.png"), image)
        images.append({"id": k + 1, "file_name": f"images/{k}.png", "width": 48, "height": 40})
        annotations.append({"id": k + 1, "image_id": k + 1, "category_id": 7, "bbox": [12.0 + 10 * k, 10.0, 6.0, 10.0],
                            "area": 60.0, "iscrowd": 0, "keypoints": [15.0 + 10 * k, 12.0, 2], "num_keypoints": 1})
    categories = [{"id": 7, "name": "tick", "keypoints": ["tip"], "skeleton": []}]
    (folder / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                          "categories": categories}))
    return folder


def test_reading_a_coco_folder_imports_no_generator(tmp_path):
    folder = _coco_folder(tmp_path / "mine")
    code = "\n".join([
        "from ocrloc.data.build import build_train_dataset, build_val_data, describe_training_data",
        "from ocrloc.data.data_config import DataConfig",
        "from ocrloc.data.datasets import CocoKeypointDataset",
        f"data = DataConfig(train_path={str(folder)!r}, val_path={str(folder)!r})",
        "dataset, length, source = build_train_dataset(data, 10)",
        "image, target = dataset[1]",
        "assert length == 2 and tuple(image.shape) == (1, 40, 48) and target['labels'].tolist() == [0]",
        "assert describe_training_data(source)['train_size'] == [40, 48]",
        "val, gt = build_val_data(data)",
        "assert len(val) == 2 and len(gt['annotations']) == 2",
        _loaded(GENERATORS + ("albumentations",)),  # cv2 reads the images: a COCO reader needs it
    ])
    assert _run(code, tmp_path) == []
