"""The drawing of truth and prediction (``ocrloc predict --viz``, TensorBoard): styles, labels, matches."""

from __future__ import annotations

import numpy as np
import torch

from ocrloc.visualize import PREDICTION_COLORS, TRUTH_COLOR, draw_truth_and_prediction, match_for_drawing


def _count(panel: torch.Tensor, color) -> int:
    return int((panel.permute(1, 2, 0) == torch.tensor(color, dtype=torch.uint8)).all(-1).sum())


def _truth():
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100.0,
             "keypoints": [10, 10, 2], "num_keypoints": 1, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 10], "area": 100.0,
             "keypoints": [25, 25, 2], "num_keypoints": 1, "iscrowd": 0}]
    return {"images": [{"id": 1, "width": 32, "height": 32}], "annotations": anns,
            "categories": [{"id": 1, "name": "one", "keypoints": ["p"]}, {"id": 2, "name": "two", "keypoints": ["p"]}]}


def test_truth_and_prediction_are_drawn_in_their_own_styles_with_the_match_error():
    truth = _truth()
    results = [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "keypoints": [11, 10, 0.9], "score": 0.9}]
    errors, matched = match_for_drawing(truth, results)
    assert errors == {0: 1.0} and matched == {1}  # the evaluator's match: 1 px off; truth 2 is missed

    image = np.zeros((32, 32), np.uint8)
    panel = draw_truth_and_prediction(image, results, truth["annotations"], {1: "one", 2: "two"},
                                      [errors.get(0)], matched, scale=4)
    assert panel.dtype == torch.uint8 and panel.shape == (3, 128, 128)
    assert _count(panel, TRUTH_COLOR) > 0 and _count(panel, PREDICTION_COLORS[1]) > 0
    unknown = draw_truth_and_prediction(image, results, truth["annotations"], scale=4)  # matches not known
    assert _count(panel, TRUTH_COLOR) > _count(unknown, TRUTH_COLOR)  # the "missed two" tag
    with_title = draw_truth_and_prediction(image, results, (), title="000.png", scale=4)
    assert with_title.shape[1] > 128 and with_title.shape[2] == 128
    assert _count(with_title, TRUTH_COLOR) == 0  # no truth given, none drawn


def test_save_grid_writes_the_panels_pixels_as_png_without_deprecated_encoders(tmp_path):
    import warnings

    import numpy as np
    import torch
    from PIL import Image

    from ocrloc.visualize import save_grid

    panel = torch.arange(3 * 6 * 5, dtype=torch.uint8).view(3, 6, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # torchvision 0.29's encoders warn
        save_grid([panel], tmp_path / "grid.png", nrow=1)
        save_grid([panel, 255 - panel], tmp_path / "two.png", nrow=2)
    one = np.asarray(Image.open(tmp_path / "grid.png"))
    assert np.array_equal(one, panel.permute(1, 2, 0).numpy())  # make_grid returns a single panel as it is
    two = np.asarray(Image.open(tmp_path / "two.png"))
    assert two.shape == (4 + 6 + 4, 4 + 5 + 4 + 5 + 4, 3)  # 4 px of white padding around and between
    assert np.array_equal(two[4:10, 13:18], (255 - panel).permute(1, 2, 0).numpy()) and (two[:4] == 255).all()


def test_several_keypoints_get_a_marker_and_colour_each_and_the_preview_a_legend(tmp_path):
    from PIL import Image

    from ocrloc.data.glyphs import GlyphCanvasGenerator
    from ocrloc.visualize import KEYPOINT_STYLES, POINT_COLOR, draw_detections, save_canvas_preview

    image = np.zeros((32, 32), np.uint8)
    boxes = torch.tensor([[2.0, 2.0, 30.0, 30.0]])
    five = torch.tensor([[[4.0, 4.0, 2], [16.0, 16.0, 2], [6.0, 28.0, 2], [16.0, 28.0, 2], [26.0, 28.0, 0]]])
    panel = draw_detections(image, boxes, torch.tensor([0]), five, scale=4)
    drawn = [_count(panel, color) > 0 for _, color in KEYPOINT_STYLES]
    assert drawn == [True, True, True, True, False, False, False]  # the fifth is not labelled (v = 0)
    assert _count(panel, POINT_COLOR) == 0
    one = draw_detections(image, boxes, torch.tensor([0]), five[:, :1], scale=4)  # one keypoint: the red dot
    assert _count(one, POINT_COLOR) > 0 and all(_count(one, color) == 0 for _, color in KEYPOINT_STYLES)

    generator = GlyphCanvasGenerator("glyphs128", "val", 0)
    save_canvas_preview(generator, tmp_path / "glyphs.png", count=2, nrow=2)
    picture = torch.from_numpy(np.asarray(Image.open(tmp_path / "glyphs.png")).copy()).permute(2, 0, 1)
    grid_height = 4 + 128 * 3 + 4
    legend = picture[:, : picture.shape[1] - grid_height]
    assert legend.shape[1] > 10 and (legend == 255).float().mean() > 0.8  # a white strip above the grid
    assert len(generator.task.keypoint_names[0]) == 5
    assert all(_count(legend, color) > 0 for _, color in KEYPOINT_STYLES[:5])  # one entry per keypoint name
