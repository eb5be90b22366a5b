"""The process harness (example_project/demo/harness/) that starts every server.

Small Python children stand in for the servers: one that listens after a
while, one that exits at once, one that ignores SIGTERM. They show that a
server is ready when its probe answers (not when it prints something), that a
start is bounded and cleans up after itself, and that a stop reaches the
process by its own PID within its bound, escalating to SIGKILL.
"""

from __future__ import annotations

import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import port_for
import pytest

from demo.harness import (
    ChildProcess,
    HarnessError,
    Interrupted,
    free_port,
    http_status,
    redact_url,
    tcp_answers,
    wait_for_ping,
)
from tests.servers import pid_alive

pytestmark = pytest.mark.no_mongo


def python_child(tmp_path: Path, code: str, port: int = 0, **options: object) -> ChildProcess:
    """A ChildProcess running ``code`` (``PORT`` is its port), ready when the port answers."""
    port = port or free_port()
    return ChildProcess(
        name="child",
        command=[sys.executable, "-c", f"PORT = {port}\n" + textwrap.dedent(code)],
        log_path=tmp_path / "child.log",
        ready=lambda: tcp_answers(port),
        port=port,
        **options,  # type: ignore[arg-type]
    )


LISTEN_LATER = """
    import socket, time
    print("listening", flush=True)  # a lie: the port opens a second later
    time.sleep(1.0)
    server = socket.create_server(("127.0.0.1", PORT))
    while True:
        server.accept()[0].close()
"""

IGNORE_SIGTERM = """
    import signal, socket
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = socket.create_server(("127.0.0.1", PORT))
    while True:
        server.accept()[0].close()
"""


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mongodb://app:s3cr%3Aet%2Fp%40ss@db1:27017,db2/sessions?replicaSet=rs0",
         "mongodb://app:***@db1:27017,db2/sessions?replicaSet=rs0"),
        ("mongodb+srv://app:pw@cluster0.example.net/sessions?tls=true",
         "mongodb+srv://app:***@cluster0.example.net/sessions?tls=true"),
        ("postgresql://postgres:hunter2@127.0.0.1:5432/loadtests",
         "postgresql://postgres:***@127.0.0.1:5432/loadtests"),
        ("redis://:only-a-password@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("mongodb://app@127.0.0.1/sessions", "mongodb://app@127.0.0.1/sessions"),
        ("mongodb://127.0.0.1:27017/", "mongodb://127.0.0.1:27017/"),
    ],
)  # fmt: skip
def test_redact_url_hides_the_password_and_nothing_else(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_free_port_is_free_and_outside_the_ephemeral_range() -> None:
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = {free_port() for _ in range(20)}
    assert not any(low <= port <= high for port in ports), sorted(ports)
    for port in ports:
        assert not port_for.port_is_used(port)


def test_start_waits_for_the_probe_not_for_output(tmp_path: Path) -> None:
    child = python_child(tmp_path, LISTEN_LATER)
    started = time.monotonic()
    with child:
        waited = time.monotonic() - started
        assert tcp_answers(child.port)
        assert "listening" in child.log_text()
    assert waited >= 1.0, f"ready after {waited:.2f} s, before the port opened"
    assert child.pid is not None and not pid_alive(child.pid)


def test_a_child_that_exits_fails_the_start_at_once_with_its_last_lines(tmp_path: Path) -> None:
    child = python_child(tmp_path, "import sys; print('bad config: no such file'); sys.exit(3)")
    child.start_timeout = 60
    started = time.monotonic()
    with pytest.raises(HarnessError) as raised:
        child.start()
    assert time.monotonic() - started < 10
    assert "exited with status 3" in str(raised.value)
    assert "bad config: no such file" in str(raised.value)


def test_a_start_that_times_out_stops_the_child(tmp_path: Path) -> None:
    child = python_child(tmp_path, "import time; time.sleep(600)", start_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(HarnessError, match="did not answer within 1 s"):
        child.start()
    assert time.monotonic() - started < 10
    assert child.pid is not None and not pid_alive(child.pid)


def test_stop_escalates_to_sigkill_within_its_bound(tmp_path: Path) -> None:
    child = python_child(tmp_path, IGNORE_SIGTERM, stop_timeout=1.0).start()
    started = time.monotonic()
    status = child.stop()
    assert status == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert child.pid is not None and not pid_alive(child.pid)


def test_stop_reaches_only_its_own_process(tmp_path: Path) -> None:
    # Two children with the very same command line: stopping one leaves the other.
    code = "import time; time.sleep(600)"
    first = ChildProcess("twin", [sys.executable, "-c", code], tmp_path / "1.log").start()
    second = ChildProcess("twin", [sys.executable, "-c", code], tmp_path / "2.log").start()
    try:
        assert first.stop() == -signal.SIGTERM
        assert second.running()
    finally:
        second.stop()


def test_a_child_can_be_killed_and_started_again_on_its_port(tmp_path: Path) -> None:
    child = python_child(tmp_path, LISTEN_LATER).start()
    first_pid = child.pid
    child.kill()
    assert not tcp_answers(child.port)
    child.start()
    try:
        assert child.pid != first_pid and tcp_answers(child.port)
    finally:
        child.stop()


def test_wait_is_bounded_and_stops_the_child(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(600)"]
    child = ChildProcess("sleeper", command, tmp_path / "sleeper.log").spawn()
    with pytest.raises(HarnessError, match=r"did not finish within 0\.5 s"):
        child.wait(timeout=0.5)
    assert not child.running()


def test_a_stop_event_interrupts_the_wait(tmp_path: Path) -> None:
    child = python_child(tmp_path, "import time; time.sleep(600)", start_timeout=60)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        child.start(stop=stop)
    assert time.monotonic() - started < 10
    assert not child.running()


def test_wait_for_ping_gives_up_in_time_without_printing_the_password() -> None:
    port = free_port()  # nothing listens there: connections are refused
    url = f"mongodb://app:t0p-secret@127.0.0.1:{port}/db"
    started = time.monotonic()
    with pytest.raises(HarnessError) as raised:
        wait_for_ping(url, timeout=1.0)
    assert time.monotonic() - started < 10
    assert "t0p-secret" not in str(raised.value)
    assert f"app:***@127.0.0.1:{port}" in str(raised.value)


def test_http_status_reports_error_statuses_and_silence(tmp_path: Path) -> None:
    code = """
        from http.server import BaseHTTPRequestHandler, HTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(503)
                self.end_headers()

        HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
    """
    with python_child(tmp_path, code) as child:
        assert http_status(f"http://127.0.0.1:{child.port}/health/") == 503
    assert http_status(f"http://127.0.0.1:{child.port}/health/", timeout=1) is None
