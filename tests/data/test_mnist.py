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


# --- ocrloc download-mnist, against a local mirror (no network in tests) ------------------------------------


@pytest.fixture(scope="module")
def local_mirror(tmp_path_factory):
    """MNIST served as torchvision's mirrors serve it (the four files gzipped) by an HTTP server on the loopback
    interface (torchvision's fetch reads a response's length, which a file:// URL lacks), and the files' md5 sums."""
    import functools
    import gzip
    import hashlib
    import http.server
    import threading

    real = resolve_data_root().resolve() / "MNIST" / "raw"  # the test machines' copy (../shared/data)
    mirror = tmp_path_factory.mktemp("mirror")
    resources = []
    for name in mnist._RAW_FILES:
        gz = mirror / f"{name}.gz"
        gz.write_bytes(gzip.compress((real / name).read_bytes(), compresslevel=1))
        resources.append((gz.name, hashlib.md5(gz.read_bytes()).hexdigest()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no access log on stderr
            pass

    class QuietServer(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # a client that hangs up early (torchvision's
            pass                                            # redirect probe) is no error of the test's

    server = QuietServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(mirror)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", resources, real
    server.shutdown()
    server.server_close()


@pytest.fixture
def mirrored(local_mirror, monkeypatch):
    """torchvision's MNIST downloader pointed at the local mirror and nowhere else."""
    from torchvision.datasets import MNIST

    url, resources, real = local_mirror
    monkeypatch.setattr(MNIST, "mirrors", [url])
    monkeypatch.setattr(MNIST, "resources", resources)
    return resources, real


def test_download_mnist_writes_the_raw_files_where_ocrloc_looks(mirrored, tmp_path, monkeypatch, capsys):
    from ocrloc.cli import main

    _, real = mirrored
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OCRLOC_DATA", raising=False)
    assert main(["download-mnist"]) == 0  # no --root: ./data, the first root ocrloc searches
    raw = tmp_path / "data" / "MNIST" / "raw"
    assert capsys.readouterr().out.strip() == f"MNIST is in {Path('data') / 'MNIST' / 'raw'}"
    for name in mnist._RAW_FILES:
        assert (raw / name).read_bytes() == (real / name).read_bytes(), name
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["MNIST"]  # the temporary download folder is gone
    assert resolve_data_root() == Path("data")
    pool = load_digit_pool("val", data_root=tmp_path / "data")
    assert pool.images.shape == (5_000, 28, 28)

    root = tmp_path / "elsewhere"
    assert main(["download-mnist", "--root", str(root)]) == 0
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(mnist._RAW_FILES)


def test_download_mnist_leaves_a_root_that_holds_mnist_as_it_is(tmp_path, monkeypatch):
    root = fake_root(tmp_path / "root")  # four empty files: present is enough, nothing is fetched or replaced
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # the discard port: a fetch would fail
    assert mnist.download_mnist(root) == root
    assert all((root / "MNIST" / "raw" / name).read_bytes() == b"" for name in mnist._RAW_FILES)


def test_a_failed_download_is_one_line_and_leaves_nothing(mirrored, tmp_path, monkeypatch, capsys):
    from ocrloc.cli import main

    resources, _ = mirrored
    from torchvision.datasets import MNIST

    # The last file's checksum does not match (a corrupt or changed file on the mirror).
    monkeypatch.setattr(MNIST, "resources", [*resources[:-1], (resources[-1][0], "0" * 32)])
    root = tmp_path / "root"
    assert main(["download-mnist", "--root", str(root)]) == 2
    # torchvision's progress bars (carriage returns) come first; the error is one line, the last.
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"error: could not download MNIST into {root / 'MNIST' / 'raw'}: Error downloading ")
    assert "t10k-labels-idx1-ubyte.gz" in err and "File not found or corrupted" in err
    assert list(root.iterdir()) == []  # neither a raw file nor the temporary folder


def test_the_not_found_error_names_the_download_command(elsewhere):
    with pytest.raises(MnistNotFoundError, match=r"or fetch them into \./data: ocrloc download-mnist$"):
        resolve_data_root()
    with pytest.raises(MnistNotFoundError, match=r"ocrloc download-mnist --root .*flag$"):
        resolve_data_root(elsewhere / "flag")
