"""The test suite's own contract (README, "Run the tests"): a fast default run that skips the tests marked slow,
``--run-slow`` for everything, and CI (``.ci/run``) running the README's full command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_slow_tests_run_only_with_run_slow(tmp_path):
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\n"
        "def test_fast():\n    pass\n\n"
        "@pytest.mark.slow\ndef test_slow():\n    pass\n")

    def run(*extra: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--strict-markers",
                               str(tmp_path), *extra], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    fast = run()
    assert "1 passed, 1 skipped" in fast and "slow: run with --run-slow" in fast
    assert "2 passed" in run("--run-slow")


def test_ci_runs_the_readmes_full_test_command():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(python -m pytest[^#\n]*?)\s*(?:#.*)?$", section, flags=re.M)
    assert commands == ["python -m pytest -q", "python -m pytest -q --run-slow"]
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip().startswith("python -m pytest")]
    assert ci == ["python -m pytest -q --run-slow"]
