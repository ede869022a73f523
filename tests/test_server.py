"""The dashboard's server refuses foreign Host headers (DNS rebinding) on HTTP and WebSocket,
refuses WebSocket upgrades and writes from other origins at once, sends no request off the
machine, and stops when the process that started it dies."""

import asyncio
import http.client
import socket
import threading
import os
import signal
import subprocess
import sys
import textwrap
import time
from urllib.parse import urlsplit

import pytest

import websockets

from pages._host_guard import canonical_origin, host_name, is_allowed_host, is_own_origin
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


@pytest.mark.parametrize("origin,allowed", [
    (None, True),  # no Origin: a program, not a web page
    ("http://127.0.0.1:8501", True), ("HTTP://127.0.0.1:8501", True), ("https://dash.lab.test", True),
    ("http://localhost:9999", False), ("http://127.0.0.1:9999", False), ("http://127.0.0.1", False),
    ("null", False), ("", False), ("file://", False), ("https://127.0.0.1:8501", False),
    ("http://evil.test:8501", False), ("http://127.0.0.1:8501@evil.test", False), ("chrome-extension://abc", False),
])
def test_origin_rule(origin, allowed):
    assert is_own_origin(origin, "127.0.0.1:8501", "ws", ["https://dash.lab.test"]) is allowed


def test_default_ports_are_explicit_in_origins():
    assert canonical_origin("http://LOCALHOST") == canonical_origin("http://localhost:80") == "http://localhost:80"
    assert canonical_origin("https://[::1]") == "https://[::1]:443"
    assert is_own_origin("http://localhost", "localhost:80", "http")


class ConnectionLog:
    """A local TCP listener standing in for every outside host: the server's proxy variables point
    here, so any HTTP(S) request the server makes (an IP look-up, say) is recorded, never sent."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(1)
            try:
                self.seen.append(conn.recv(200) or b"(connected)")
            except OSError:
                self.seen.append(b"(connected)")
            conn.close()


@pytest.fixture(scope="module")
def outbound():
    log = ConnectionLog()
    yield log
    log.sock.close()


@pytest.fixture(scope="module")
def serving(synthetic_store_path, outbound):
    env = {key: value for key, value in os.environ.items() if key.lower() != "no_proxy"}
    env |= {"PHISHLENS_STORE": str(synthetic_store_path), "PHISHLENS_HOME": str(synthetic_store_path.parent),
            "PHISHLENS_ALLOWED_HOSTS": "dashboard.lab.test",
            **{name: outbound.address for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
                                                   "https_proxy", "all_proxy")}}
    with dashboard_server([sys.executable, "cli.py", "serve"], env, synthetic_store_path.parent / "serve.log") as url:
        yield urlsplit(url).port


async def _handshake(port: int, origin: str | None, host: str = "127.0.0.1") -> tuple[bool, float]:
    """(opened, seconds) for a WebSocket handshake to the dashboard's stream at `host` with this Origin."""
    started = time.perf_counter()
    headers = {"Origin": origin} if origin is not None else {}
    try:
        async with websockets.connect(f"ws://{host}:{port}/_stcore/stream", additional_headers=headers,
                                      subprotocols=["streamlit"], open_timeout=10, proxy=None):
            return True, time.perf_counter() - started
    except websockets.InvalidStatus as exc:
        assert exc.response.status_code == 403
        return False, time.perf_counter() - started


def test_foreign_origins_cannot_open_the_websocket(serving, outbound):
    port = serving
    # The server's first WebSocket handshake loads its WebSocket machinery (0.7 s once in CI): that
    # is start-up, not the refusal, so one own-origin handshake goes first, untimed.
    assert asyncio.run(_handshake(port, f"http://127.0.0.1:{port}"))[0]
    for origin in (f"http://localhost:{port + 1}", "http://localhost:9999", f"http://127.0.0.1:{port + 1}", "null",
                   f"http://evil.test:{port}", f"http://dashboard.lab.test:{port + 1}"):
        opened, seconds = asyncio.run(_handshake(port, origin))
        assert not opened, origin
        assert seconds < 0.1, (origin, seconds)
    assert asyncio.run(_handshake(port, f"http://127.0.0.1:{port}"))[0]
    assert asyncio.run(_handshake(port, f"http://localhost:{port}", host="localhost"))[0]
    assert asyncio.run(_handshake(port, None))[0]
    assert outbound.seen == []


def test_a_write_from_another_origin_is_refused(serving):
    connection = http.client.HTTPConnection("127.0.0.1", serving, timeout=10)
    connection.request("PUT", "/_stcore/upload_file/x/y", body=b"x",
                       headers={"Host": f"127.0.0.1:{serving}", "Origin": "http://localhost:9999"})
    assert connection.getresponse().status == 403


def test_handshake_floods_leave_health_answering_and_send_nothing_out(serving, outbound):
    port = serving

    async def flood_and_check_health():
        foreign = [_handshake(port, f"http://localhost:{9000 + i}") for i in range(20)]
        health = asyncio.to_thread(_timed_health, port)
        *results, health_seconds = await asyncio.gather(*foreign, health)
        return results, health_seconds

    results, health_seconds = asyncio.run(flood_and_check_health())
    assert not any(opened for opened, _ in results)
    assert max(seconds for _, seconds in results) < 1.0
    assert health_seconds < 1.0
    assert outbound.seen == [], f"the server sent requests off the machine: {outbound.seen}"


def _timed_health(port: int) -> float:
    started = time.perf_counter()
    assert _request(port, f"127.0.0.1:{port}", "/_stcore/health") == 200
    return time.perf_counter() - started


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
