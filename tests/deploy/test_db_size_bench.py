"""bench/db_size.py keeps working (tiny numbers; it measures nothing here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_size_benchmark_measures_a_small_database_and_drops_it(project_root: Path) -> None:
    server = os.environ.get("TEST_DATABASE_URL")
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "db_size.py"), "--cases", "1000", "--attachments", "2",
         "--attachment-kib", "100", *(["--database-url", server] if server else [])],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=project_root,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(" `"): line for line in result.stdout.splitlines() if line.startswith("| `")}
    assert set(rows) == {"cases", "case_keys", "case_transitions", "case_messages", "audit_log", "case_identities",
                         "identity_keys", "case_attachments", "attachment_chunks"}
    assert "| 1,000 | 1.00 |" in rows["cases"]
    per_case = int(re.search(r"a case without files, .*: \*\*([\d,]+) bytes\*\*", result.stdout).group(1).replace(",", ""))
    assert 8_000 < per_case < 30_000, result.stdout  # sealed keys, report, messages, history, audit
    # The chain it generated is a real one: the service's own check walked it to the end.
    entries = int(re.search(r"check .* over ([\d,]+) entries", result.stdout).group(1).replace(",", ""))
    assert entries > 5 * 1000
    assert result.stdout.count("`pg_dump --format=custom") == 3 and "`pg_restore --single-transaction`" in result.stdout
    created = re.findall(r"created database (cw_size_\w+)", result.stderr)
    assert len(created) == 2 and all(f"dropped database {name}" in result.stderr for name in created)


def test_the_size_benchmark_refuses_a_remote_database_and_bad_counts() -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "db_size.py"
    for arguments, complaint in (
        (["--database-url", "postgresql://postgres@10.0.0.5/postgres"], "loopback addresses only"),
        (["--cases", "10"], "keep --cases within"),
        (["--cases", "1000", "--attachments", "2000"], "keep --attachments within"),
    ):
        result = subprocess.run([sys.executable, str(bench), *arguments], capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        assert result.returncode != 0 and complaint in result.stderr, (arguments, result.stderr)
