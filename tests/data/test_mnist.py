"""Finding MNIST: the data-root order and the error that lists every path tried."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrloc.data import mnist
from ocrloc.data.mnist import MnistNotFoundError, candidate_roots, load_digit_pool, resolve_data_root


def fake_root(path: Path) -> Path:
    raw = path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist._RAW_FILES:
        (raw / name).write_bytes(b"")
    return path


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Run from an empty folder with no OCRLOC_DATA, so ./data and ../shared/data are absent."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv("OCRLOC_DATA", raising=False)
    return tmp_path


def test_order_is_argument_then_environment_then_local_then_shared(elsewhere, monkeypatch):
    monkeypatch.setenv("OCRLOC_DATA", str(elsewhere / "env"))
    roots = candidate_roots(elsewhere / "flag")
    assert roots == [elsewhere / "flag", elsewhere / "env", Path("data"), Path("..") / "shared" / "data"]


def test_first_root_with_the_files_wins(elsewhere, monkeypatch):
    shared = fake_root(elsewhere / "a" / "shared" / "data")
    assert resolve_data_root(download=False).resolve() == shared.resolve()
    local = fake_root(Path("data"))
    assert resolve_data_root(download=False) == local
    env = fake_root(elsewhere / "env")
    monkeypatch.setenv("OCRLOC_DATA", str(env))
    assert resolve_data_root(download=False) == env
    flag = fake_root(elsewhere / "flag")
    assert resolve_data_root(flag, download=False) == flag


def test_missing_mnist_lists_every_path_tried(elsewhere, monkeypatch):
    monkeypatch.setenv("OCRLOC_DATA", str(elsewhere / "env"))
    with pytest.raises(MnistNotFoundError) as info:
        resolve_data_root(elsewhere / "flag", download=False)
    message = str(info.value)
    for root in (elsewhere / "flag", elsewhere / "env", Path("data"), Path("..") / "shared" / "data"):
        assert str((root / "MNIST" / "raw").resolve()) in message
    assert "--data-root" in message and "OCRLOC_DATA" in message


def test_no_download_attempt_without_a_network(elsewhere, monkeypatch):
    monkeypatch.setattr(mnist, "_network_reachable", lambda timeout=2.0: False)
    with pytest.raises(MnistNotFoundError, match="no network was reachable"):
        resolve_data_root(download=True)


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_digit_pool("dev")
