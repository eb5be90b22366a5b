"""The harness's constants, errors, free ports, URL redaction and readiness probes."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import port_for

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0  # seconds a server gets to answer its probe
STOP_TIMEOUT = 30.0  # seconds a process gets to exit after its stop signal
POLL_INTERVAL = 0.2  # seconds between two probes
PROJECT_DIR = Path(__file__).resolve().parents[2]  # example_project/
MANAGE_PY = PROJECT_DIR / "manage.py"
#: The demo's readiness and liveness probe: 200 when MongoDB answers, 503 when not.
HEALTH_PATH = "/health/"
#: Where the demo's JSON answers live, for every caller of them (the load test's
#: Locust users, the tests that drive the demo over HTTP): prepended to their
#: paths such as "/counter/" (the demo serves them from demo/api.py).
DEMO_API = "/api"
#: The headless browser that screenshot.py and the browser test drive through
#: Playwright: Debian's chromium, never one that Playwright downloads.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class HarnessError(RuntimeError):
    """A process did not start, did not answer within its bound, or exited early."""


class Interrupted(HarnessError):
    """A wait was cut short by its stop event (Ctrl-C or SIGTERM of the caller)."""


# --- ports, URLs and probes ----------------------------------------------------------


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that is free now, outside the ephemeral range.

    Raises port_for.PortForException when none of 100 random candidates is free.
    """
    return int(port_for.select_random())


def redact_url(url: str) -> str:
    """Return ``url`` with the password of its user part replaced by ``***``, fit to print.

    Works for mongodb://, mongodb+srv://, redis:// and postgresql:// URLs, with
    one host or a comma-separated list; a URL without a password is returned as is.
    """
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{hosts}").geturl()


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    *,
    process: subprocess.Popen[bytes] | None = None,
    stop: threading.Event | None = None,
    detail: Callable[[], str] | None = None,
) -> None:
    """Call ``check()`` every POLL_INTERVAL seconds until it returns True.

    Raises HarnessError after ``timeout`` seconds or as soon as ``process`` has
    exited, and Interrupted as soon as ``stop`` is set; ``detail()`` (the last
    probe error, say) is added to the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        if stop is not None and stop.is_set():
            raise Interrupted(f"interrupted while waiting for {what}")
        if process is not None and process.poll() is not None:
            raise HarnessError(f"{what} exited with status {process.returncode} while starting")
        if check():
            return
        if time.monotonic() >= deadline:
            more = f": {detail()}" if detail is not None else ""
            raise HarnessError(f"{what} did not answer within {timeout:g} s{more}")
        if stop is not None:
            stop.wait(POLL_INTERVAL)
        else:
            time.sleep(POLL_INTERVAL)


class MongoProbe:
    """A callable that is True when the server at ``url`` answers a ping.

    Each call opens a client with a one-second server selection timeout and closes
    it; ``last_error`` keeps why the last call failed (for the timeout message).
    """

    def __init__(self, url: str, **client_options: Any) -> None:
        self.url = url
        self.client_options = {
            "serverSelectionTimeoutMS": 1000,
            "connectTimeoutMS": 1000,
            **client_options,
        }
        self.last_error = "no attempt yet"

    def __call__(self) -> bool:
        import pymongo
        from pymongo.errors import PyMongoError

        try:
            client: pymongo.MongoClient[dict[str, Any]]
            with pymongo.MongoClient(self.url, **self.client_options) as client:
                client.admin.command("ping")
        except PyMongoError as e:
            self.last_error = str(e)
            return False
        return True


def wait_for_ping(
    url: str, timeout: float = START_TIMEOUT, stop: threading.Event | None = None, **options: Any
) -> None:
    """Wait until the MongoDB server at ``url`` answers a ping (client ``options`` apply).

    Raises HarnessError after ``timeout`` seconds, naming the URL without its password.
    """
    probe = MongoProbe(url, **options)
    wait_until(
        f"MongoDB at {redact_url(url)}",
        probe,
        timeout,
        stop=stop,
        detail=lambda: probe.last_error,
    )


def http_status(url: str, timeout: float = 5.0) -> int | None:
    """Return the HTTP status of ``GET url``, or None while nothing answers there."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (OSError, HTTPException):  # URLError is an OSError
        return None


def tcp_answers(port: int, payload: bytes = b"", expect: bytes = b"") -> bool:
    """Whether 127.0.0.1:``port`` accepts a connection (and answers ``payload`` with ``expect``)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
            if payload:
                sock.sendall(payload)
                return sock.recv(64).startswith(expect)
    except OSError:
        return False
    return True
