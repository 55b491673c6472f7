"""The wheel the Docker image installs carries the migrations the service runs and the
drill scenario library."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_wheel_contains_every_migration(project_root: Path, tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(project_root)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("cleanwindow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    revisions = {path.name for path in (project_root / "migrations" / "versions").glob("*.py")}
    assert "app/migrations/env.py" in names
    assert "app/migrations/script.py.mako" in names
    assert {f"app/migrations/versions/{name}" for name in revisions} <= names
    assert "app/drills/scenarios.yaml" in names
    assert not any("__pycache__" in name or name.startswith("tests/") for name in names)
