"""Shared fixtures and the ``slow`` marker. The data tests use the real MNIST files, found like ocrloc finds
them (``OCRLOC_DATA``, ``./data``, ``../shared/data``); nothing is ever downloaded in a test. The tiny configs and
hand-made ground truths the modules share are in ``tests/helpers.py``.

``python -m pytest -q`` runs the fast set; ``python -m pytest -q --run-slow`` runs everything, the tests marked
``@pytest.mark.slow`` too (real trainings, torchrun, the kill-and-resume loops, the tutorial: README, "Run the
tests")."""

from __future__ import annotations

import pytest

# helpers.py asserts (one_error_line, ...): let pytest explain a failing one as it does in a test module.
pytest.register_assert_rewrite("tests.helpers")

from ocrloc.data.mnist import load_digit_pool  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (the full suite, as CI runs it)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes tens of seconds or more; runs only with --run-slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pools():
    """The three MNIST digit pools, loaded once per test session."""
    return {split: load_digit_pool(split, download=False) for split in ("train", "val", "test")}
