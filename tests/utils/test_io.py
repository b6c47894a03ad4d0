import errno
import json
import os

import pytest

from ocrloc.utils import io
from ocrloc.utils.io import OutputError, cached_json, write_bytes_atomic, write_json_atomic


def test_cached_json_computes_once_per_key(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"ap": 0.5}

    path = tmp_path / "scores.json"
    assert cached_json(path, {"step": 1}, compute) == {"ap": 0.5}
    assert cached_json(path, {"step": 1}, compute) == {"ap": 0.5}
    assert len(calls) == 1
    assert json.loads(path.read_text()) == {"key": {"step": 1}, "value": {"ap": 0.5}}
    # A new key (another checkpoint) is recomputed and replaces the stored value.
    assert cached_json(path, {"step": 2}, lambda: {"ap": 0.7}) == {"ap": 0.7}
    assert json.loads(path.read_text())["key"] == {"step": 2}


def test_cached_json_recomputes_old_layouts_and_unreadable_files(tmp_path):
    path = tmp_path / "scores.json"
    # Same key, but stored under an older field name: stale, not a KeyError.
    write_json_atomic({"key": {"step": 1}, "scores": {"ap": 0.1}}, path)
    assert cached_json(path, {"step": 1}, lambda: {"ap": 0.9}) == {"ap": 0.9}
    path.write_text("{not json")
    assert cached_json(path, {"step": 1}, lambda: {"ap": 0.3}) == {"ap": 0.3}
    assert json.loads(path.read_text())["value"] == {"ap": 0.3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]  # no temporary left behind


@pytest.mark.parametrize("write", [lambda path: write_json_atomic({"a": 1}, path),
                                   lambda path: write_bytes_atomic(b"weights", path)], ids=["json", "bytes"])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_temporary(write, tmp_path, monkeypatch):
    path = tmp_path / "out" / "file.bin"
    path.parent.mkdir()
    path.write_bytes(b"the good one")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.os, "fsync", full)  # where the last bytes of a write meet a full disk
    with pytest.raises(OutputError) as err:
        write(path)
    assert str(err.value) == f"{path}: cannot write it (No space left on device)"
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert [p.name for p in path.parent.iterdir()] == ["file.bin"] and path.read_bytes() == b"the good one"
