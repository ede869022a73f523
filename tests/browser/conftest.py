"""A failed browser test carries the end of its dashboard's log (the server runs in another
process, so its tracebacks and warnings are not in the test's captured output)."""

from pathlib import Path

import pytest

from tests.conftest import log_tail

SERVER_LOGS: dict[str, Path] = {}  # server fixture name → its log file, filled by the fixtures


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name in item.fixturenames:
            if name in SERVER_LOGS:
                report.sections.append((f"dashboard log ({name}), its end", log_tail(SERVER_LOGS[name])))
