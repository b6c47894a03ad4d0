"""Shared fixtures. The data tests use the real MNIST files, found like ocrloc finds them
(``OCRLOC_DATA``, ``./data``, ``../shared/data``); nothing is ever downloaded in a test."""

from __future__ import annotations

import pytest

from ocrloc.data.mnist import load_digit_pool


@pytest.fixture(scope="session")
def pools():
    """The three MNIST digit pools, loaded once per test session."""
    return {split: load_digit_pool(split, download=False) for split in ("train", "val", "test")}
