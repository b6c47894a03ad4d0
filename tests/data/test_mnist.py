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


def test_a_named_root_is_the_only_candidate_and_the_search_applies_without_one(elsewhere, monkeypatch):
    assert candidate_roots() == [Path("data"), Path("..") / "shared" / "data"]
    monkeypatch.setenv("OCRLOC_DATA", str(elsewhere / "env"))
    assert candidate_roots() == [elsewhere / "env"]
    assert candidate_roots(elsewhere / "flag") == [elsewhere / "flag"]  # the argument wins over the environment


def test_first_searched_root_with_the_files_wins(elsewhere, monkeypatch):
    shared = fake_root(elsewhere / "a" / "shared" / "data")
    assert resolve_data_root().resolve() == shared.resolve()
    local = fake_root(Path("data"))
    assert resolve_data_root() == local
    env = fake_root(elsewhere / "env")
    monkeypatch.setenv("OCRLOC_DATA", str(env))
    assert resolve_data_root() == env
    flag = fake_root(elsewhere / "flag")
    assert resolve_data_root(flag) == flag


def test_a_named_root_without_mnist_is_an_error_not_a_fallback(elsewhere, monkeypatch):
    fake_root(Path("data"))  # a searched root that would have answered before
    fake_root(elsewhere / "a" / "shared" / "data")
    empty = elsewhere / "empty"
    (empty / "MNIST" / "raw").mkdir(parents=True)
    (empty / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(MnistNotFoundError) as info:
        resolve_data_root(empty)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"MNIST not found in the data root {empty} given by --data-root / data.data_root: ")
    assert f"{(empty / 'MNIST' / 'raw').resolve()} lacks train-labels-idx1-ubyte, t10k-images-idx3-ubyte, " \
           "t10k-labels-idx1-ubyte;" in message
    with pytest.raises(MnistNotFoundError, match=f"data root {elsewhere / 'nowhere'} given by --data-root / "
                                                 f"data.data_root: {elsewhere / 'nowhere'} is not a folder"):
        load_digit_pool("test", elsewhere / "nowhere")

    monkeypatch.setenv("OCRLOC_DATA", str(empty))
    with pytest.raises(MnistNotFoundError, match=f"^MNIST not found in the data root {empty} given by OCRLOC_DATA: "):
        resolve_data_root()
    with pytest.raises(MnistNotFoundError, match="point OCRLOC_DATA at a folder"):
        load_digit_pool("test")


def test_missing_mnist_names_every_searched_root_in_one_line(elsewhere):
    with pytest.raises(MnistNotFoundError) as info:
        resolve_data_root()
    message = str(info.value)
    assert "\n" not in message and message.startswith("MNIST not found: none of ")
    for root in (Path("data"), Path("..") / "shared" / "data"):
        assert str((root / "MNIST" / "raw").resolve()) in message
    assert "--data-root" in message and "OCRLOC_DATA" in message


def test_nothing_is_downloaded_or_even_contacted_by_default(elsewhere, monkeypatch):
    def no_network(timeout=2.0):
        raise AssertionError("the download host was contacted")

    monkeypatch.setattr(mnist, "_network_reachable", no_network)
    with pytest.raises(MnistNotFoundError):
        resolve_data_root()
    with pytest.raises(MnistNotFoundError):
        load_digit_pool("test")
    with pytest.raises(MnistNotFoundError):
        resolve_data_root(elsewhere / "flag")


def test_opt_in_download_without_a_network_is_the_same_error(elsewhere, monkeypatch):
    monkeypatch.setattr(mnist, "_network_reachable", lambda timeout=2.0: False)
    with pytest.raises(MnistNotFoundError, match="MNIST not found: none of"):
        resolve_data_root(download=True)


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_digit_pool("dev")
