"""When a deployment test fails, the logs of the processes it ran are printed with it."""

from __future__ import annotations

import pytest

from tests.deploy.processes import RUNNING


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        # Groups still running are a module's (a test's own print theirs as they stop).
        for group in RUNNING:
            report.sections.append(("process logs", "\n".join(
                f"===== {process.log_path.name} =====\n{process.log_tail()}" for process in group.all
            )))
    return report
