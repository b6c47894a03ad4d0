"""Checkpoints load with weights_only=True: a crafted file cannot run code, every bad file is one
CheckpointError line naming it, and save_checkpoint writes only what that loader reads."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import pickle

import numpy as np
import pytest
import torch

from ocrloc.config import config_to_dict, load_config
from ocrloc.engine.checkpoint import CheckpointError, detector_from_checkpoint, load_checkpoint, save_checkpoint
from ocrloc.models.build import build
from tests.helpers import TINY_ARGMAX, TINY_MODEL

TINY = TINY_MODEL


class Touch:
    """Unpickling this creates ``marker``: what a crafted checkpoint could do instead (any code)."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


class System:
    """Unpickling this runs a shell command."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.fixture(scope="module")
def state():
    """What the trainer's ``_state`` holds: weights, AdamW and LambdaLR after a step, rows, config, meta."""
    torch.manual_seed(0)
    config = load_config(None, TINY)
    detector = build(config)
    optimizer = torch.optim.AdamW(detector.model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (s + 1))
    loss = sum(p.sum() for p in detector.model.parameters())
    loss.backward()
    optimizer.step()
    scheduler.step()
    return {"model": detector.model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "step": 1, "wall_s": 0.5, "best": {"kpt_AP": 0.25, "step": 1},
            "rows": [{"phase": "train", "step": 1, "loss": 1.5, "lr": ""}, {"phase": "val", "step": 1, "box_AP": None}],
            "config": config_to_dict(config), "meta": {"rule": "all10", "train_size": [128, 128],
                                                       "task": detector.task.to_dict()}}


def _one_line_naming(err: pytest.ExceptionInfo, path) -> str:
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    assert isinstance(err.value, ValueError)  # what the CLIs and --resume catch
    return message


def test_a_saved_state_loads_back_equal_with_weights_only(state, tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(state, path)
    torch.load(path, weights_only=True)  # what is written is what the safe loader reads
    loaded = load_checkpoint(path)
    assert loaded.keys() == state.keys()
    assert loaded["model"].keys() == state["model"].keys()
    assert all(torch.equal(loaded["model"][k], v) for k, v in state["model"].items())
    moments = loaded["optimizer"]["state"][0]
    assert torch.equal(moments["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])
    assert loaded["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    assert loaded["scheduler"] == state["scheduler"] and loaded["scheduler"]["lr_lambdas"] == [None]
    for key in ("step", "wall_s", "best", "rows", "config", "meta"):
        assert loaded[key] == state[key], key
    detector, config, _ = detector_from_checkpoint(path)
    assert config_to_dict(config) == state["config"] and not detector.model.training
    assert all(torch.equal(detector.model.state_dict()[k], v) for k, v in state["model"].items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left


@pytest.mark.parametrize("payload", [Touch, System])
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_crafted_pickle_cannot_run_code(state, tmp_path, payload, zipped):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted.pt"
    torch.save({"model": state["model"], "config": state["config"], "x": payload(marker)}, crafted,
               _use_new_zipfile_serialization=zipped)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(crafted)
    message = _one_line_naming(err, crafted)
    assert "refused" in message and "weights_only=True" in message
    with pytest.raises(CheckpointError, match="refused"):
        detector_from_checkpoint(crafted)
    assert not marker.exists()
    # The file does run code when unpickled the old way: the test above guards a real hole.
    torch.load(crafted, weights_only=False)
    assert marker.exists()


def _truncated(path, state):
    save_checkpoint(state, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


BAD_FILES = {
    "truncated": (_truncated, "truncated or corrupt"),
    "zero_bytes": (lambda path, state: path.write_bytes(b""), "the file is empty"),
    "random_bytes": (lambda path, state: path.write_bytes(np.random.default_rng(0).bytes(4096)),
                     "truncated or corrupt"),
    "text": (lambda path, state: path.write_text("not a checkpoint"), "truncated or corrupt"),
    "plain_pickle": (lambda path, state: path.write_bytes(pickle.dumps({"model": {}, "config": {}}, protocol=4)),
                     "truncated or corrupt"),
    "folder": (lambda path, state: path.mkdir(), "a folder, not a checkpoint file"),
    "torchscript": (lambda path, state: torch.jit.script(torch.nn.Linear(2, 2)).save(str(path)),
                    "an exported TorchScript file, not a checkpoint"),
    "not_a_dict": (lambda path, state: torch.save([1, 2], path), "holds a list, not a dict"),
    "no_model": (lambda path, state: torch.save({"config": state["config"]}, path), "no 'model' entry"),
    "no_config": (lambda path, state: torch.save({"model": state["model"]}, path), "no 'config' entry"),
    "config_not_a_dict": (lambda path, state: torch.save({"model": state["model"], "config": "x"}, path),
                          "'config' is a str, not a dict"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_every_bad_file_is_one_checkpoint_error_line(state, tmp_path, kind):
    write, expected = BAD_FILES[kind]
    path = tmp_path / "bad.pt"
    write(path, state)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert expected in _one_line_naming(err, path)
    with pytest.raises(CheckpointError, match=expected):
        detector_from_checkpoint(path)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_checkpoint(tmp_path / "nowhere.pt")


@pytest.mark.parametrize("change, expected", [
    (lambda model: model.pop(next(iter(model))), "missing: "),
    (lambda model: model.update({"extra.weight": torch.zeros(1)}), "unexpected: extra.weight"),
    (lambda model: model.update({k: torch.zeros(3, 3) for k in list(model)[:1]}), "shape (checkpoint vs model): "),
], ids=["missing", "unexpected", "shape"])
def test_weights_that_do_not_fit_the_config_are_one_line(state, tmp_path, change, expected):
    model = dict(state["model"])
    change(model)
    path = tmp_path / "mismatch.pt"
    save_checkpoint({**state, "model": model}, path)
    with pytest.raises(CheckpointError) as err:
        detector_from_checkpoint(path)
    message = _one_line_naming(err, path)
    assert "the weights do not fit the model its config builds" in message and expected in message


def test_an_older_layout_loads_through_the_models_own_upgrade(tmp_path):
    # The argmax head counted its two candidates in one [slots] buffer before they were counted
    # apart ([slots, 2]); its load pre-hook upgrades that, and the file-level check must not refuse
    # it first (it did: every checkpoint from before the change failed with a shape error).
    config = load_config(None, TINY_ARGMAX)
    detector = build(config)
    weights = detector.model.state_dict()
    slots = weights["head.choice_count"].shape[0]
    weights["head.choice_count"] = torch.arange(1.0, slots + 1)
    path = tmp_path / "old.pt"
    save_checkpoint({"model": weights, "config": config_to_dict(config), "meta": {"task": detector.task.to_dict()}}, path)
    loaded, _, _ = detector_from_checkpoint(path)
    assert loaded.model.head.choice_count.tolist() == [[c, c] for c in range(1, slots + 1)]
    weights["head.choice_count"] = torch.zeros(slots, 3)  # no upgrade makes this fit
    save_checkpoint({"model": weights, "config": config_to_dict(config), "meta": {"task": detector.task.to_dict()}}, path)
    with pytest.raises(CheckpointError, match=r"shape \(checkpoint vs model\): head\.choice_count \[%d, 3\] vs \[%d, 2\]" % (slots, slots)):
        detector_from_checkpoint(path)


@dataclasses.dataclass
class Box:
    size: int = 1


@pytest.mark.parametrize("where, value, named, kind", [
    ("rows", [{"step": 1, "kpt_AP": np.float64(0.5)}], "state['rows'][0]['kpt_AP']", "numpy.float64"),
    ("meta", {"train_size": [np.int64(128), 128]}, "state['meta']['train_size'][0]", "numpy.int64"),
    ("meta", {"data": pathlib.Path("data")}, "state['meta']['data']", "pathlib."),
    ("config", Box(), "state['config']", "Box"),
    ("best", {1.5j: 1}, "state['best'] key 1.5j", "complex"),
])
def test_save_refuses_values_the_safe_loader_would_refuse(state, tmp_path, where, value, named, kind):
    path = tmp_path / "ckpt" / "last.pt"
    with pytest.raises(ValueError) as err:
        save_checkpoint({**state, where: value}, path)
    message = str(err.value)
    assert named in message and kind in message and str(path) in message and "\n" not in message
    assert not path.parent.exists()  # nothing written, not even a temporary


def test_an_exported_pt2_or_onnx_file_is_named_as_such_not_called_corrupt(tmp_path):
    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    program = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(Double(), (torch.ones(2),)), str(program))
    with pytest.raises(CheckpointError, match=r"model\.pt2: an exported torch\.export file, not a checkpoint") as err:
        load_checkpoint(program)
    assert "corrupt" not in str(err.value)
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\x08\x08\x12\x07pytorch")  # an ONNX protobuf's first fields
    with pytest.raises(CheckpointError, match=r"model\.onnx: an exported ONNX file, not a checkpoint"):
        load_checkpoint(onnx_file)
