"""The dashboard's server refuses foreign Host headers (DNS rebinding) on HTTP and WebSocket,
and stops when the process that started it dies."""

import http.client
import os
import signal
import subprocess
import sys
import textwrap
import time
from urllib.parse import urlsplit

import pytest

from pages._host_guard import host_name, is_allowed_host
from tests.conftest import dashboard_server, free_port, wait_until_served


@pytest.mark.parametrize("header,allowed", [
    ("localhost:8501", True), ("LOCALHOST", True), ("127.0.0.1:8501", True), ("[::1]:8501", True),
    ("192.168.1.20:8501", True), ("localhost.:8501", True),
    ("evil.test:8501", False), ("attacker.localhost.evil.test", False), ("localhost.evil.test", False),
    ("", False), (None, False), ("localhost:abc", False), ("user@localhost", False), ("local host", False),
    ("[::1", False), ("127.0.0.1/x", False),
])
def test_host_header_rule(header, allowed):
    assert is_allowed_host(header, ()) is allowed


def test_configured_names_are_allowed_case_insensitively():
    assert is_allowed_host("Dashboard.Lab.Test:8501", ["dashboard.lab.test"])
    assert not is_allowed_host("other.lab.test", ["dashboard.lab.test"])
    assert host_name("[::1]:80") == "::1"


def _request(port: int, host: str, path: str = "/", upgrade: bool = False) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host}
    if upgrade:
        headers |= {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    connection.request("GET", path, headers=headers)
    status = connection.getresponse().status
    connection.close()
    return status


@pytest.fixture(scope="module")
def serving(synthetic_store_path):
    env = {**os.environ, "PHISHLENS_STORE": str(synthetic_store_path), "PHISHLENS_HOME": str(synthetic_store_path.parent),
           "PHISHLENS_ALLOWED_HOSTS": "dashboard.lab.test"}
    with dashboard_server([sys.executable, "cli.py", "serve"], env, synthetic_store_path.parent / "serve.log") as url:
        yield urlsplit(url).port


def test_foreign_host_is_refused_on_http_and_websocket(serving):
    port = serving
    for path in ("/", "/_stcore/health", "/inbox"):
        assert _request(port, f"evil.test:{port}", path) == 403
        assert _request(port, f"localhost:{port}", path) == 200
    assert _request(port, f"127.0.0.1:{port}") == 200
    assert _request(port, f"dashboard.lab.test:{port}") == 200  # PHISHLENS_ALLOWED_HOSTS
    assert _request(port, f"evil.test:{port}", "/_stcore/stream", upgrade=True) == 403
    assert _request(port, f"127.0.0.1:{port}", "/_stcore/stream", upgrade=True) == 101


def test_server_stops_when_its_starter_is_killed(synthetic_store_path):
    """A killed test run (or a killed `cli.py serve`) leaves no dashboard behind."""
    port = free_port()
    starter = textwrap.dedent(f"""
        import os, subprocess, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from tests.conftest import die_with_test_run
        env = {{**os.environ, "PHISHLENS_STORE": {str(synthetic_store_path)!r}, "PHISHLENS_PORT": "{port}"}}
        subprocess.Popen([sys.executable, "cli.py", "serve"], env=env, preexec_fn=die_with_test_run,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", starter], start_new_session=True)
    try:
        wait_until_served(parent, f"http://127.0.0.1:{port}")  # its server logs nowhere
        os.kill(parent.pid, signal.SIGKILL)  # as a CI timeout or Ctrl-\\ would kill pytest
        parent.wait()
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                _request(port, "localhost")
                time.sleep(0.5)
            except OSError:
                return
        pytest.fail("the dashboard still answers 20 s after the process that started it was killed")
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
