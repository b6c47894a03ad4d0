"""tools/experiment.py's engine: scores, seeds, reuse, the mean ± std table."""

from __future__ import annotations

import pytest
import torch
import yaml

import math

from ocrloc.data.points import POINT_NAMES
from ocrloc.research.head_study import (STUDY_COLUMNS, StudyTestSet, experiment_table, feature_fidelity, fidelity_rows,
                                      fidelity_table, fit_fidelity, make_test_set, point_scores, run_experiments)
from ocrloc.research.study import StudyNet, StudyPredictor


class FixedOutputs(torch.nn.Module):
    """Outputs row k for the canvas whose first pixel holds k (so batches can split anywhere)."""

    def __init__(self, logits, points):
        super().__init__()
        self.logits, self.points = logits, points
        self.canvas_size = 32

    def forward(self, images):
        rows = images[:, 0, 0, 0].long()
        return {"logits": self.logits[rows], "points": self.points[rows]}


def test_point_scores_are_measured_at_the_predicted_class():
    truth = torch.tensor([[10.0, 10.0], [10.0, 10.0], [10.0, 10.0], [10.0, 10.0]])
    images = torch.zeros(4, 1, 32, 32)
    images[:, 0, 0, 0] = torch.arange(4.0)
    test = StudyTestSet(images, torch.tensor([1, 2, 3, 4]), truth, "hand-made")
    logits = torch.full((4, 10), -5.0)
    logits[torch.arange(4), torch.tensor([1, 2, 3, 5])] = 5.0  # the last canvas is misclassified as a 5
    points = torch.zeros(4, 10, 2)
    points[0, 1] = torch.tensor([10.0, 10.0])   # error 0
    points[1, 2] = torch.tensor([10.4, 10.0])   # 0.4
    points[2, 3] = torch.tensor([10.0, 10.8])   # 0.8
    points[3, 5] = torch.tensor([13.0, 10.0])   # 3, read at the predicted class 5
    points[3, 4] = torch.tensor([10.0, 10.0])   # exact at the true class: not what is scored
    scores = point_scores(StudyPredictor(FixedOutputs(logits, points)), test, torch.device("cpu"), batch_size=3)
    assert scores["point_px"] == pytest.approx((0 + 0.4 + 0.8 + 3) / 4, abs=1e-5)
    assert scores["pck_0.5"] == 0.5 and scores["pck_1"] == 0.75 and scores["cls_acc"] == 0.75
    # At the true class the misclassified canvas is exact: (0 + 0.4 + 0.8 + 0) / 4.
    assert scores["true_px"] == pytest.approx(0.3, abs=1e-5)
    assert scores["true_pck_0.5"] == 0.75 and scores["true_pck_1"] == 1.0


def test_experiments_run_every_seed_and_reuse_finished_runs(tmp_path, pools):
    config = {"data": {"preset": "single", "val_count": 4, "num_workers": 0},
              "model": {"type": "study", "study": {"head": "soft_argmax", "width": 8, "hidden": 16, "argmax_channels": 2}},
              "train": {"batch_size": 4, "steps": 2, "val_every": 2, "log_every": 1}, "optim": {"warmup_steps": 1}}
    path = tmp_path / "soft.yaml"
    path.write_text(yaml.safe_dump(config))
    rows = run_experiments([path], ["seed37"], [0, 1], tmp_path / "out", test_count=8, progress=False)
    (row,) = rows
    assert row["rule"] == "seed37" and row["config"] == "soft" and row["seeds"] == [0, 1]
    assert [r["seed"] for r in row["runs"]] == [0, 1]
    assert row["runs"][0]["point_px"] != row["runs"][1]["point_px"]  # different seeds, different models
    assert row["cls_acc"]["std"] >= 0 and 0 <= row["pck_1"]["mean"] <= 1
    assert (tmp_path / "out" / "seed37" / "soft" / "seed1" / "study_scores.json").is_file()
    metrics = (tmp_path / "out" / "seed37" / "soft" / "seed0" / "metrics.csv").read_text()
    again = run_experiments([path], ["seed37"], [0, 1], tmp_path / "out", test_count=8, progress=False)
    assert (tmp_path / "out" / "seed37" / "soft" / "seed0" / "metrics.csv").read_text() == metrics  # not retrained
    assert again[0]["point_px"] == row["point_px"]
    table = experiment_table(rows).splitlines()
    assert table[0] == "| " + " | ".join(STUDY_COLUMNS) + " |"
    assert table[2].startswith("| seed37 | soft | 2 |") and " ± " in table[2]


def test_fit_fidelity_finds_the_feature_that_holds_a_target():
    g = torch.Generator().manual_seed(0)
    hidden, other = torch.rand(400, generator=g) * 20, torch.rand(400, generator=g) * 20
    features = torch.stack([3.0 * hidden - 7.0, torch.randn(400, generator=g)], dim=1)  # an affine copy + noise
    fits = fit_fidelity(features, torch.stack([hidden, other], dim=1))
    assert fits["single"][0] < 1e-3 and fits["linear"][0] < 1e-3
    spread = float((other - other.mean()).abs().median())  # nothing to explain it: its own spread (about 5)
    assert fits["single"][1] == pytest.approx(spread, rel=0.1)
    assert fits["linear"][1] == pytest.approx(spread, rel=0.15)
    with pytest.raises(ValueError, match="at least 4 rows"):
        fit_fidelity(features[:3], features[:3])


def test_extreme_features_of_the_thresholded_canvas_are_the_spec_points(pools):
    test = make_test_set("single", "all10", 64, 1000)
    assert test.named_points.shape == (64, len(POINT_NAMES), 2)
    exact = StudyNet(head="extremes", inputs=("canvas",), argmax_channels=1, num_classes=10)
    features = exact.point_features[0]
    with torch.no_grad():  # the map is the canvas; cut between the ink levels 127 and 128
        features.conv.weight.fill_(1.0)
        features.conv.bias.zero_()
        features.threshold.threshold.fill_(127.5 / 255)
        features.threshold.log_tau.fill_(math.log(1e-4))
    fidelity = feature_fidelity(exact, test, torch.device("cpu"))
    for name in ("edges", "topleft", "center", "topmost", "bottommost", "leftmost", "rightmost"):
        assert fidelity[name] < 1e-3, name
    assert fidelity["centroid"] < 0.2  # the mask's centroid, not the intensity-weighted one
    assert fidelity["features"] == 10
    # The same head on an untrained stride-4 map has no such features.
    coarse = feature_fidelity(StudyNet(head="extremes", inputs=("stage2",), argmax_channels=1, num_classes=10), test, torch.device("cpu"))
    assert coarse["edges"] > 0.5


def test_fidelity_rows_cover_coordinate_heads_only(tmp_path, pools):
    rows = []
    for head in ("extremes", "pool"):
        config = {"data": {"preset": "single", "val_count": 4, "num_workers": 0},
                  "model": {"type": "study", "study": {"head": head, "width": 8, "hidden": 16, "argmax_channels": 2}},
                  "train": {"batch_size": 4, "steps": 1, "val_every": 1, "log_every": 1}, "optim": {"warmup_steps": 1}}
        path = tmp_path / f"{head}.yaml"
        path.write_text(yaml.safe_dump(config))
        rows.append(path)
    run_experiments(rows, ["all10"], [0], tmp_path / "out", test_count=8, progress=False)
    fidelity = fidelity_rows(rows, ["all10"], [0], tmp_path / "out", test_count=8)
    assert [r["config"] for r in fidelity] == ["extremes"] and fidelity[0]["features"] == 20
    table = fidelity_table(fidelity).splitlines()
    assert table[0].startswith("| rule | config | seeds | features | ink box edges, one feature | topleft, linear")
    assert len(table) == 3


def test_a_rule_file_is_run_and_tabled_under_its_stem(tmp_path, pools):
    """A rule file (here stroke points, found by a search over the ink) is a column like all10:
    its runs live under OUT/<file stem> and its rows say the stem, not the path."""
    config = {"data": {"preset": "single", "val_count": 4, "num_workers": 0},
              "model": {"type": "study", "study": {"head": "soft_argmax", "width": 8, "hidden": 16, "argmax_channels": 2}},
              "train": {"batch_size": 4, "steps": 1, "val_every": 1, "log_every": 1}, "optim": {"warmup_steps": 1}}
    path = tmp_path / "soft.yaml"
    path.write_text(yaml.safe_dump(config))
    rule = tmp_path / "strokes.yaml"
    rule.write_text("".join(f"{c}: nearest_ink(1, 0)\n" for c in range(10)))
    (row,) = run_experiments([path], [str(rule)], [0], tmp_path / "out", test_count=4, progress=False)
    assert row["rule"] == "strokes"
    assert (tmp_path / "out" / "strokes" / "soft" / "seed0" / "study_scores.json").is_file()
