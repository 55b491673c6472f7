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
         "--requests", "5", "--login-requests", "2", "--submit-requests", "2",
         "--repeats", "1", "--concurrency", "2"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=project_root,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "scenario" not in line]
    assert len(rows) == 5
    assert rows[0].startswith("| healthz") and rows[-1].startswith("| submit")
    assert all(row.rstrip(" |").endswith("| 0") for row in rows), result.stdout
    # The submissions solved easy challenges (the proof of work is not what is measured),
    # and the output says which difficulty they were.
    assert "proof-of-work difficulty 8 bits in every run" in result.stdout


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://example.org", "http://192.168.1.2"])
def test_the_benchmark_refuses_anything_but_loopback(project_root: Path, url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "http_bench.py"), "--url", url,
         "--username", "u", "--password", "p"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "loopback" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--scenarios", "healthz,nonsense"], "unknown scenario"),
        (["--url", "http://127.0.0.1:9", "--pow-difficulty", "8"], "own server"),
        (["--pow-difficulty", "30"], "--pow-difficulty"),
    ],
)
def test_the_benchmark_refuses_bad_arguments_before_starting_anything(
    project_root: Path, arguments: list[str], complaint: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "http_bench.py"), *arguments],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert complaint in result.stderr
