"""Start, wait for and stop every server of the demo, the tests and the load tests.

One module for the processes that ``manage.py rundemo``, ``screenshot.py``,
the test suite (``tests/servers.py``) and the load tests (``loadtests/``)
start: SecantusDB, gunicorn or uvicorn, the demo itself, Redis and PostgreSQL. Each
one is a :class:`ChildProcess`:

* it runs on 127.0.0.1, with its output appended to a log file (a file, not
  a pipe: nobody reads a pipe while it runs, and a full pipe blocks it);
* it is ready when a probe answers (a MongoDB ``ping``, a Redis ``PING``,
  ``pg_isready``, an HTTP answer from the demo's ``/health/``), never when a
  line shows up in its log; the wait is bounded and ends early, with the log's
  last lines, when the process exits;
* it is stopped by its own process id: its stop signal, then SIGKILL after a
  bounded wait.

It is built on :mod:`subprocess` rather than on mirakuru, which was tried:
mirakuru starts every child from a copy of ``os.environ`` (the tests must give
the demo an environment without the developer's ``MONGO_SESSIONS_*`` and
``DJANGO_*`` variables), sets ``preexec_fn`` itself (rundemo's children get a
parent-death signal), and stops a child by its process group and by a sweep of
every process that carries its marker variable rather than by the child's PID.
Free ports come from port-for, which picks them outside the kernel's ephemeral
range (where an outgoing connection could take a port between pick and bind).

It is one module of more than 400 lines on purpose: issue 11 asks for a single
place that starts, probes and stops every server of the project.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import port_for

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0  # seconds a server gets to answer its probe
STOP_TIMEOUT = 30.0  # seconds a process gets to exit after its stop signal
POLL_INTERVAL = 0.2  # seconds between two probes
PROJECT_DIR = Path(__file__).resolve().parent.parent  # example_project/
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


# --- one child process -----------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: have the child get SIGTERM when its parent dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass(eq=False)
class ChildProcess:
    """One process started by this one, in a session of its own (Ctrl-C reaches only us).

    ``ready`` is the probe :meth:`start` waits for (None: do not wait); ``url``
    and ``port`` say where a server answers. ``env`` is the child's whole
    environment (None: this process's). ``user`` runs it as that system user
    (PostgreSQL refuses to run as root). A ChildProcess can be started again after
    it stopped or was killed, on the same port and data.
    """

    name: str
    command: list[str]
    log_path: Path | None  # None: the child writes to our stdout and stderr
    ready: Callable[[], bool] | None = None
    url: str = ""
    port: int = 0
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    start_timeout: float = START_TIMEOUT
    stop_timeout: float = STOP_TIMEOUT
    die_with_parent: bool = False
    user: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def start(self, stop: threading.Event | None = None) -> ChildProcess:
        """Start the process and wait (at most ``start_timeout`` s) until ``ready()`` is true.

        Raises HarnessError (with the log's last lines) when it exits or does not
        answer in time, after stopping it; Interrupted when ``stop`` is set first.
        """
        self.spawn()
        self.wait_ready(stop)
        return self

    def spawn(self) -> ChildProcess:
        """Start the process without waiting for it (its pid is known from now on)."""
        if self.running():
            raise HarnessError(f"{self.name} (pid {self.pid}) is already running")
        with contextlib.ExitStack() as files:
            log = None
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                log = files.enter_context(self.log_path.open("ab"))
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=None if self.env is None else dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=None if log is None else subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
                user=self.user,
            )
        return self

    def wait_ready(self, stop: threading.Event | None = None) -> None:
        """Wait until ``ready()`` is true, as :meth:`start` does; stop the process on failure."""
        assert self.process is not None, f"{self.name} was never started"
        if self.ready is None:
            return
        try:
            wait_until(self.name, self.ready, self.start_timeout, process=self.process, stop=stop)
        except HarnessError as e:
            self.stop()
            if isinstance(e, Interrupted):
                raise
            tail = f"; last lines of {self.log_path}:\n{self.log_tail()}" if self.log_path else ""
            raise HarnessError(f"{e}{tail}") from None

    def wait(self, timeout: float) -> int:
        """Wait at most ``timeout`` s for the process to exit by itself; return its status.

        Raises HarnessError after stopping it when it is still running then.
        """
        assert self.process is not None, f"{self.name} was never started"
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise HarnessError(f"{self.name} did not finish within {timeout:g} s") from None

    def stop(self, sig: int | None = None) -> int | None:
        """Stop the process by its PID: ``sig`` (default its stop signal), then SIGKILL.

        Waits ``stop_timeout`` s after the first signal and STOP_TIMEOUT s after
        SIGKILL; returns the exit status (None if it was never started). Raises
        HarnessError if it outlives SIGKILL.
        """
        if self.process is None:
            return None
        first = self.stop_signal if sig is None else sig
        for signum, bound in ((first, self.stop_timeout), (signal.SIGKILL, STOP_TIMEOUT)):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=bound)
        if self.process.poll() is None:
            raise HarnessError(f"{self.name} (pid {self.process.pid}) outlived SIGKILL")
        return self.process.returncode

    def kill(self) -> None:
        """Stop the process abruptly (SIGKILL), as a crash would."""
        self.stop(signal.SIGKILL)

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> ChildProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# --- the servers ------------------------------------------------------------------------


def find_executable(name: str, *also: str) -> str | None:
    """Path of ``name`` beside this Python (a virtualenv's bin), on PATH, or in ``also``."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    return next((str(p) for d in also for p in sorted(Path("/").glob(d + name))), None)


def mongo_server(
    storage_path: Path,
    *,
    port: int | None = None,
    log_path: Path | None = None,
    args: Iterable[str] = (),
    launcher: list[str] | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> ChildProcess:
    """SecantusDB on 127.0.0.1:``port`` with its data in ``storage_path``; ready on a ping.

    ``launcher`` replaces ``secantusd-py --host 127.0.0.1`` (the tests run one that
    sets the TTL monitor's period); ``args`` are more flags (``--sync-on-commit``,
    ``--auth``...); ``client_options`` go to the ping's client (TLS, credentials).
    Raises HarnessError when secantusd-py is not installed.
    """
    port = port or free_port()
    if launcher is None:
        executable = find_executable("secantusd-py")
        if executable is None:
            raise HarnessError(
                "SecantusDB (secantusd-py) is not installed: "
                "pip install 'django-mongo-sessions[demo]'"
            )
        launcher = [executable, "--host", LOOPBACK]
    storage_path.mkdir(parents=True, exist_ok=True)
    url = f"mongodb://{LOOPBACK}:{port}/"
    return ChildProcess(
        name="SecantusDB",
        command=[*launcher, "--port", str(port), "--storage-path", str(storage_path), *args],
        log_path=log_path or storage_path.parent / f"secantusd-{port}.log",
        ready=MongoProbe(url, **(client_options or {})),
        url=url,
        port=port,
    )


def http_child(
    name: str, command: list[str], url: str, port: int, probe_path: str, **options: Any
) -> ChildProcess:
    """A ChildProcess serving HTTP at ``url``: ready when ``probe_path`` gets any answer."""
    return ChildProcess(
        name=name,
        command=command,
        ready=lambda: http_status(url + probe_path) is not None,
        url=url,
        port=port,
        **options,
    )


def gunicorn_flags() -> list[str]:
    """Flags for the installed gunicorn: no control socket (newer gunicorns open one in
    ~/.gunicorn, which two instances would share and nothing here uses)."""
    from gunicorn.config import KNOWN_SETTINGS

    known = {flag for setting in KNOWN_SETTINGS for flag in setting.cli or ()}
    return ["--no-control-socket"] if "--no-control-socket" in known else []


def _probe_url(host: str, port: int) -> str:
    """The base URL to probe a web server bound to ``host``:``port`` (loopback for a wildcard)."""
    wildcard = {"0.0.0.0": LOOPBACK, "": LOOPBACK, "::": "[::1]"}
    return f"http://{wildcard.get(host, f'[{host}]' if ':' in host else host)}:{port}"


def gunicorn_server(
    app: str,
    *,
    log_path: Path | None,
    env: Mapping[str, str] | None = None,
    chdir: Path = PROJECT_DIR,
    host: str = LOOPBACK,
    port: int | None = None,
    workers: int = 1,
    args: Iterable[str] = (),
    probe_path: str = HEALTH_PATH,
) -> ChildProcess:
    """``gunicorn app`` on ``host``:``port``; ready when ``probe_path`` answers at all.

    Any HTTP status counts (a 503 from /health/ means the site is up and MongoDB is
    not); the caller decides what the status means. Stopped with SIGTERM
    (graceful: workers finish their requests).
    """
    port = port or free_port()
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    url = _probe_url(host, port)
    command = [
        sys.executable, "-m", "gunicorn", app,
        "--chdir", str(chdir),
        "--bind", bind,
        "--workers", str(workers),
        *gunicorn_flags(),
        *args,
    ]  # fmt: skip
    return http_child("gunicorn", command, url, port, probe_path, log_path=log_path, env=env)


def uvicorn_server(
    app: str,
    *,
    log_path: Path | None,
    env: Mapping[str, str] | None = None,
    app_dir: Path = PROJECT_DIR,
    host: str = LOOPBACK,
    port: int | None = None,
    workers: int = 1,
    args: Iterable[str] = (),
    probe_path: str = HEALTH_PATH,
) -> ChildProcess:
    """``uvicorn app`` (an ASGI application, ``module:attribute``) on ``host``:``port``.

    Ready when ``probe_path`` answers at all, as :func:`gunicorn_server`; stopped
    with SIGTERM (graceful: open requests finish, within 10 s).
    """
    port = port or free_port()
    url = _probe_url(host, port)
    command = [
        sys.executable, "-m", "uvicorn", app,
        "--app-dir", str(app_dir),
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
        "--timeout-graceful-shutdown", "10",
        *args,
    ]  # fmt: skip
    return http_child("uvicorn", command, url, port, probe_path, log_path=log_path, env=env)


def demo_server(
    *,
    data_dir: Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    workers: int = 2,
    args: Iterable[str] = (),
    start_timeout: float = 2 * START_TIMEOUT,
) -> ChildProcess:
    """``manage.py rundemo`` on 127.0.0.1:``port``; ready when its /health/ answers at all.

    rundemo starts an embedded SecantusDB unless ``env`` has MONGO_SESSIONS_URL,
    runs demo_setup, then gunicorn (uvicorn with ``args=["--asgi"]``). SIGTERM or
    SIGINT stop it, and it stops its own children by their PIDs first, so it gets
    twice its children's bound.
    """
    port = port or free_port()
    url = f"http://{LOOPBACK}:{port}"
    command = [
        sys.executable, str(MANAGE_PY), "rundemo",
        "--host", LOOPBACK, "--port", str(port),
        "--workers", str(workers), "--data-dir", str(data_dir),
        *args,
    ]  # fmt: skip
    return http_child(
        "rundemo",
        command,
        url,
        port,
        HEALTH_PATH,
        log_path=log_path,
        env=env,
        cwd=PROJECT_DIR.parent,
        start_timeout=start_timeout,
        stop_timeout=2 * STOP_TIMEOUT,
    )


def redis_server(data_dir: Path, *, port: int | None = None) -> ChildProcess:
    """A throwaway redis-server on 127.0.0.1:``port`` (no persistence); ready on PING.

    Raises HarnessError when redis-server is not installed.
    """
    executable = find_executable("redis-server")
    if executable is None:
        raise HarnessError("redis-server is not installed (Debian: apt-get install redis-server)")
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        executable, "--bind", LOOPBACK, "--port", str(port), "--dir", str(data_dir),
        "--save", "", "--appendonly", "no",
    ]  # fmt: skip
    return ChildProcess(
        name="Redis",
        command=command,
        log_path=data_dir / "redis.log",
        ready=lambda: tcp_answers(port, b"PING\r\n", b"+PONG"),
        url=f"redis://{LOOPBACK}:{port}/0",
        port=port,
    )


POSTGRES_DIRS = ("usr/lib/postgresql/*/bin/",)


def postgres_server(data_dir: Path, *, port: int | None = None) -> ChildProcess:
    """A throwaway PostgreSQL on 127.0.0.1:``port``, user ``postgres`` with trust auth.

    Runs initdb in ``data_dir`` first (bounded) unless it holds a cluster. As root
    (CI), the server runs as the ``postgres`` system user, which must be able to
    reach ``data_dir`` (a folder of its own under /tmp, say). Ready when
    pg_isready says so; stopped with SIGINT (PostgreSQL's fast shutdown). Raises
    HarnessError when PostgreSQL is not installed or initdb fails.
    """
    binaries = {n: find_executable(n, *POSTGRES_DIRS) for n in ("initdb", "postgres", "pg_isready")}
    missing = [name for name, path in binaries.items() if path is None]
    if missing:
        raise HarnessError(f"PostgreSQL is not installed ({', '.join(missing)} not found)")
    port = port or free_port()
    user = "postgres" if os.geteuid() == 0 else None
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(data_dir, user)
    if not (data_dir / "PG_VERSION").exists():
        done = subprocess.run(
            [str(binaries["initdb"]), "-D", str(data_dir), "-U", "postgres", "--auth=trust"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            user=user,
        )
        if done.returncode != 0:
            raise HarnessError(f"initdb failed with status {done.returncode}: {done.stderr}")
    command = [
        str(binaries["postgres"]), "-D", str(data_dir), "-p", str(port),
        "-c", f"listen_addresses={LOOPBACK}", "-c", f"unix_socket_directories={data_dir}",
    ]  # fmt: skip
    is_ready = [str(binaries["pg_isready"]), "-q", "-h", LOOPBACK, "-p", str(port), "-t", "1"]
    return ChildProcess(
        name="PostgreSQL",
        command=command,
        log_path=data_dir / "postgres.log",
        ready=lambda: subprocess.run(is_ready, timeout=10, check=False).returncode == 0,
        url=f"postgresql://postgres@{LOOPBACK}:{port}/postgres",
        port=port,
        stop_signal=signal.SIGINT,
        user=user,
    )
