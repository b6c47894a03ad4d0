"""The closed-form per-class read-out: exact recovery, decay, collinearity, masking, state."""

from __future__ import annotations

import pytest
import torch

from ocrloc.models.readout import RidgeReadout


def linear_data(n=600, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g) - 0.5
    labels = torch.randint(0, classes, (n,), generator=g)
    slope = torch.randn(classes, d, 2, generator=g)
    intercept = torch.randn(classes, 2, generator=g)
    y = torch.einsum("nd,ndo->no", x, slope[labels]) + intercept[labels]
    return x, labels, y, slope, intercept


def test_one_update_recovers_each_class_map_exactly():
    x, labels, y, slope, intercept = linear_data()
    readout = RidgeReadout(6, 2, num_classes=4, ridge=0.0)
    readout.update(x, labels, y)
    assert torch.allclose(readout(x, labels), y, atol=1e-4)
    assert torch.allclose(readout.weight[:3, :6], slope, atol=1e-4)
    assert torch.allclose(readout.weight[:3, 6], intercept, atol=1e-4)
    assert not readout.weight[3].any()  # a class never seen maps to zeros
    every = readout(x)
    assert every.shape == (600, 4, 2) and torch.allclose(every[torch.arange(600), labels], y, atol=1e-4)


def test_streamed_batches_equal_one_big_batch_without_decay():
    x, labels, y, _, _ = linear_data()
    y = y + 0.05 * torch.randn_like(y)  # noisy: the least-squares answer depends on every sample
    whole, streamed = RidgeReadout(6, 2, 3, decay=1.0), RidgeReadout(6, 2, 3, decay=1.0)
    whole.update(x, labels, y)
    for start in range(0, 600, 50):
        streamed.update(x[start:start + 50], labels[start:start + 50], y[start:start + 50])
    assert torch.allclose(whole.weight, streamed.weight, atol=1e-5)


def test_decay_follows_a_relation_that_changes():
    x, labels, y, _, _ = linear_data()
    readout = RidgeReadout(6, 2, 3, decay=0.9, ridge=0.0)
    readout.update(x, labels, y)
    shifted = y + 3.0
    for _ in range(150):
        readout.update(x, labels, shifted)
    assert torch.allclose(readout(x, labels), shifted, atol=1e-3)


def test_collinear_and_constant_features_stay_finite_and_exact():
    x, labels, y, _, _ = linear_data(d=3)
    x = torch.cat([x, x[:, :1], torch.zeros(600, 1)], dim=1)  # a duplicated column and a dead one
    readout = RidgeReadout(5, 2, 3, ridge=1e-3)
    readout.update(x, labels, y)
    assert torch.isfinite(readout.weight).all() and not readout.weight[:, 4].any()
    assert (readout(x, labels) - y).abs().max() < 0.05  # only the ridge penalty's small shrinkage


def test_zero_weight_leaves_a_sample_out():
    x, labels, y, _, _ = linear_data()
    corrupt = y.clone()
    corrupt[::7] += 100.0
    keep = torch.ones(600)
    keep[::7] = 0
    readout = RidgeReadout(6, 2, 3, ridge=0.0)
    readout.update(x, labels, corrupt, keep)
    assert torch.allclose(readout(x, labels), y, atol=1e-4)


def test_the_map_travels_in_the_state_dict_and_scripts():
    x, labels, y, _, _ = linear_data()
    readout = RidgeReadout(6, 2, 3)
    readout.update(x, labels, y)
    copy = RidgeReadout(6, 2, 3)
    copy.load_state_dict(readout.state_dict())
    assert torch.equal(copy(x, labels), readout(x, labels))
    scripted = torch.jit.script(copy)
    assert torch.allclose(scripted(x, labels), readout(x, labels)) and torch.allclose(scripted(x), readout(x))


def test_bad_settings_name_the_value():
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\], got 0"):
        RidgeReadout(2, 2, 2, decay=0.0)
    with pytest.raises(ValueError, match="ridge must be >= 0, got -1"):
        RidgeReadout(2, 2, 2, ridge=-1)
