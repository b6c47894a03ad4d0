"""Argmax-feature layers: exact coordinates on exact inputs, gradients, TorchScript parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ocrloc.data.points import named_points
from ocrloc.models.argmax import (
    EXTREME_FEATURES,
    AddCoords,
    ExtremePoints,
    HardArgmax2d,
    SoftArgmax2d,
    SoftThreshold,
    dsnt_variance_loss,
    spatial_expectation,
)


def one_hot_map(h=7, w=9, row=2, col=5):
    heat = torch.zeros(1, 1, h, w)
    heat[0, 0, row, col] = 1.0
    return heat


def test_soft_argmax_of_a_one_hot_map_returns_its_coordinates():
    assert spatial_expectation(one_hot_map()).tolist() == [[[5.5, 2.5]]]  # the cell center
    coords, prob = SoftArgmax2d(beta=200.0, learnable=False)(one_hot_map())
    assert torch.allclose(coords, torch.tensor([[[5.5, 2.5]]]), atol=1e-4)
    assert torch.allclose(prob.sum(dim=(-2, -1)), torch.ones(1, 1))


def test_soft_argmax_temperature_is_learnable_and_blurs_at_low_beta():
    layer = SoftArgmax2d(beta=1.0)
    coords, _ = layer(one_hot_map())
    # At beta 1 the single 1 barely stands out: the expectation is pulled to the map's middle (4.5, 3.5).
    assert 4.5 < coords[0, 0, 0] < 5.5 and 2.5 < coords[0, 0, 1] < 3.5
    coords[..., 0].sum().backward()  # a sharper softmax moves x towards 5.5
    assert layer.log_beta.grad is not None and layer.log_beta.grad > 0


def test_hard_argmax_is_exact_and_passes_the_soft_gradient_through():
    heat = torch.randn(2, 3, 6, 8, requires_grad=True)
    coords = HardArgmax2d()(heat)
    flat = heat.detach().reshape(2, 3, -1).argmax(-1)
    assert torch.equal(coords.detach(), torch.stack([flat % 8, flat // 8], -1).float() + 0.5)
    coords.sum().backward()
    assert heat.grad is not None and heat.grad.abs().sum() > 0


def test_dsnt_variance_loss_is_zero_at_the_target_spread():
    # Two cells at x = 3.5 and 5.5 with half the mass each: var_x = 1; one row: var_y = 0.
    prob = torch.zeros(1, 1, 5, 9)
    prob[0, 0, 2, 3] = prob[0, 0, 2, 5] = 0.5
    assert dsnt_variance_loss(prob, sigma=1.0).item() == pytest.approx(1.0)  # (1 - 1)^2 + (0 - 1)^2
    assert dsnt_variance_loss(one_hot_map(), sigma=0.0).item() == pytest.approx(0.0)


def hand_made_digit():
    """A 20 x 16 stroke; its top row holds two runs, so its median and mean differ."""
    image = np.zeros((20, 16), dtype=np.float32)
    image[3, 5:7] = 0.9      # top row: columns 5, 6 and 10: median x 6.5 (the mean would be 7.5)
    image[3, 10] = 0.9
    image[4:15, 4] = 0.8     # left column 4 (rows 4-14), leftmost y = 9.5
    image[8:11, 12] = 0.7    # right column 12: rows 8-10, rightmost y = 9.5
    image[15, 6] = 0.6       # bottom row 15: one pixel, bottommost x = 6.5
    image[6, 5:12] = 0.55
    image[5, 9] = 0.3        # below the 0.5 cut-off: not ink
    return image


def test_extreme_points_of_a_hand_made_mask_match_the_spec_points_at_low_temperature():
    image = hand_made_digit()
    truth = named_points(image >= 0.5, image)
    mask = SoftThreshold(1, threshold=0.5, tau=0.005)(torch.from_numpy(image)[None, None])
    features = dict(zip(EXTREME_FEATURES, ExtremePoints()(mask)[0, 0].tolist()))
    expected = {
        "left": truth["leftmost"][0], "leftmost_y": truth["leftmost"][1],
        "top": truth["topmost"][1], "topmost_x": truth["topmost"][0],
        "right": truth["rightmost"][0], "rightmost_y": truth["rightmost"][1],
        "bottom": truth["bottommost"][1], "bottommost_x": truth["bottommost"][0],
    }
    assert expected == {"left": 4.0, "leftmost_y": 9.5, "top": 3.0, "topmost_x": 6.5,
                        "right": 13.0, "rightmost_y": 9.5, "bottom": 16.0, "bottommost_x": 6.5}
    for name, value in expected.items():
        assert abs(features[name] - value) <= 0.1, name


def test_gradients_reach_the_threshold_and_the_temperature():
    threshold = SoftThreshold(1, threshold=0.5, tau=0.2)
    features = ExtremePoints()(threshold(torch.from_numpy(hand_made_digit())[None, None]))
    features.sum().backward()
    assert threshold.threshold.grad.abs().sum() > 0
    assert threshold.log_tau.grad.abs().sum() > 0


def test_add_coords_appends_cell_center_coordinates():
    out = AddCoords()(torch.zeros(2, 3, 4, 2))
    assert out.shape == (2, 5, 4, 2)
    assert out[0, 3, 0].tolist() == [-0.5, 0.5]  # x of the two columns' centers
    assert out[0, 4, :, 0].tolist() == [-0.75, -0.25, 0.25, 0.75]


@pytest.mark.parametrize("layer", [SoftArgmax2d(3.0), HardArgmax2d(), SoftThreshold(2), ExtremePoints(), AddCoords()],
                         ids=lambda m: type(m).__name__)
def test_every_layer_scripts_and_matches_eager(layer):
    x = torch.rand(2, 2, 12, 10)
    scripted = torch.jit.script(layer)
    eager, script = layer(x), scripted(x)
    eager = eager if isinstance(eager, tuple) else (eager,)
    script = script if isinstance(script, tuple) else (script,)
    for e, s in zip(eager, script):
        assert torch.allclose(e, s, atol=1e-6)
