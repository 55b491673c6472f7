"""The benchmark script keeps working (tiny numbers; it measures nothing here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_benchmark_runs_end_to_end_on_its_own_server(project_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "http_bench.py"),
         "--requests", "5", "--login-requests", "2", "--repeats", "1", "--concurrency", "2"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=project_root,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "scenario" not in line]
    assert len(rows) == 4
    assert all(row.rstrip(" |").endswith("| 0") for row in rows), result.stdout


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://example.org", "http://192.168.1.2"])
def test_the_benchmark_refuses_anything_but_loopback(project_root: Path, url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "http_bench.py"), "--url", url,
         "--username", "u", "--password", "p"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "loopback" in result.stderr
