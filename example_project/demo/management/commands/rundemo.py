"""``manage.py rundemo``: the whole demo with one command.

* Without ``MONGO_SESSIONS_URL`` it starts an embedded MongoDB-wire server
  (SecantusDB, ``secantusd-py``) on 127.0.0.1 with its data in
  ``DATA_DIR/mongo``, so sessions survive a restart.
* With ``MONGO_SESSIONS_URL`` it uses that server and starts nothing else.

Then it runs the migrations, creates the demo user (``demo_setup``), starts
gunicorn with several workers (or, with ``--asgi``, uvicorn serving
``demo.asgi``) and prints the address. Ctrl-C or SIGTERM stops the web server,
then the embedded server, each by its own process id.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

PROJECT_DIR = Path(__file__).resolve().parents[3]  # example_project/
MANAGE_PY = PROJECT_DIR / "manage.py"
REPO_ROOT = PROJECT_DIR.parent

STOP_TIMEOUT = 20.0  # seconds a child gets to stop after SIGTERM before SIGKILL


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: have the child get SIGTERM if rundemo itself is killed hard."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def gunicorn_flags() -> list[str]:
    """Flags for this gunicorn version: no control socket (newer gunicorns open one
    in ~/.gunicorn, which the demo does not use and which two instances would share)."""
    from gunicorn.config import KNOWN_SETTINGS

    known = {flag for setting in KNOWN_SETTINGS for flag in setting.cli or ()}
    return ["--no-control-socket"] if "--no-control-socket" in known else []


def _secantusd() -> str | None:
    found = shutil.which("secantusd-py")
    if found:
        return found
    beside = Path(sys.executable).parent / "secantusd-py"
    return str(beside) if beside.is_file() else None


class Command(BaseCommand):
    help = (
        "Run the demo: an embedded MongoDB-wire server unless MONGO_SESSIONS_URL is set, "
        "the migrations and demo user, and gunicorn."
    )
    requires_system_checks = ()  # nothing to check before MongoDB runs

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address gunicorn binds to")
        parser.add_argument("--port", type=int, default=8000, help="port gunicorn binds to")
        parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
        parser.add_argument(
            "--data-dir",
            default=".demo-data",
            help="folder for the embedded server's data and the SQLite user table",
        )
        parser.add_argument(
            "--mongo-port",
            type=int,
            default=0,
            help="port of the embedded server on 127.0.0.1 (default: a free one)",
        )
        parser.add_argument(
            "--startup-timeout",
            type=float,
            default=60.0,
            help="seconds to wait for MongoDB and for gunicorn to answer",
        )
        parser.add_argument(
            "--access-log", action="store_true", help="have the web server log every request"
        )
        parser.add_argument(
            "--asgi",
            action="store_true",
            help="serve the demo with uvicorn (ASGI, demo.asgi) instead of gunicorn (WSGI)",
        )

    # -- process handling ---------------------------------------------------

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop = threading.Event()
        self._children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _say(self, message: str) -> None:
        print(message, flush=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _spawn(self, name: str, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        # A new session: Ctrl-C reaches rundemo alone, which then stops the
        # children in order (gunicorn first, the database last).
        proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent, **kwargs)
        self._children.append((name, proc))
        return proc

    def _stop_children(self) -> None:
        for name, proc in reversed(self._children):
            if proc.poll() is None:
                self._say(f"Stopping {name} (pid {proc.pid})...")
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self._say(f"{name} (pid {proc.pid}) did not stop in time: killing it.")
                    proc.kill()
                    proc.wait(timeout=STOP_TIMEOUT)
        self._children.clear()

    def _wait_for(self, what: str, check: Any, timeout: float, proc: Any = None) -> None:
        """Poll ``check()`` until true, bounded by ``timeout``, a stop signal or a dead child."""
        deadline = time.monotonic() + timeout
        while True:
            if self._stop.is_set():
                raise CommandError(f"Interrupted while waiting for {what}.")
            if proc is not None and proc.poll() is not None:
                raise CommandError(f"{what} exited with status {proc.returncode} while starting.")
            if check():
                return
            if time.monotonic() > deadline:
                raise CommandError(f"{what} did not answer within {timeout:g} s.")
            self._stop.wait(0.25)

    # -- the command --------------------------------------------------------

    def handle(self, *args: Any, **options: Any) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self._run(**options)
        finally:
            self._stop_children()
        self._say("Demo stopped.")

    def _run(self, **options: Any) -> None:
        server = "uvicorn" if options["asgi"] else "gunicorn"
        if find_spec(server) is None:
            raise CommandError(
                f"{server} is not installed: pip install 'django-mongo-sessions[demo]'"
            )
        host: str = options["host"]
        port: int = options["port"]
        timeout: float = options["startup_timeout"]
        data_dir = Path(options["data_dir"]).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)

        env = os.environ.copy()
        env["DEMO_DATA_DIR"] = str(data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        # Run from a checkout, the children import this checkout's mongo_sessions.
        if (REPO_ROOT / "mongo_sessions" / "__init__.py").is_file():
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
            )

        url = os.environ.get("MONGO_SESSIONS_URL", "").strip()
        if url:
            self._say(f"Using the MongoDB server of MONGO_SESSIONS_URL ({_redact(url)}).")
            self._wait_for(f"MongoDB at {_redact(url)}", lambda: _mongo_answers(url), timeout)
        else:
            env["MONGO_SESSIONS_URL"] = self._start_embedded_mongo(
                data_dir, options["mongo_port"], timeout
            )

        self._say("Running migrations and creating the demo user...")
        setup = subprocess.run(
            [sys.executable, str(MANAGE_PY), "demo_setup"], env=env, timeout=300, check=False
        )
        if setup.returncode != 0:
            raise CommandError(f"demo_setup failed with status {setup.returncode}.")

        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        cmd = (
            _asgi_command(host, port, options) if options["asgi"] else _wsgi_command(bind, options)
        )
        web = self._spawn(server, cmd, env=env)
        self._say(f"{server} pid {web.pid}, {options['workers']} workers, on {bind}")
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        self._wait_for(server, lambda: _health(probe_host, port) is not None, timeout, proc=web)
        status = _health(probe_host, port)
        if status != 200:
            self._say(
                f"Warning: /health/ answered {status} (check DJANGO_ALLOWED_HOSTS and MongoDB)."
            )

        shown = "localhost" if host in ("0.0.0.0", "::", "") else bind.rsplit(":", 1)[0]
        self._say("")
        self._say(f"  Demo running at http://{shown}:{port}/")
        if settings.DEMO_PASSWORD == "demo-password":
            self._say(f"  Log in as {settings.DEMO_USERNAME} / demo-password (a demo-only account)")
        else:
            self._say(f"  Log in as {settings.DEMO_USERNAME} (password from DEMO_PASSWORD)")
        self._say("  Press Ctrl-C to stop.")
        self._say("")

        while not self._stop.is_set():
            for name, proc in self._children:
                if proc.poll() is not None:
                    raise CommandError(
                        f"{name} (pid {proc.pid}) exited with status {proc.returncode}."
                    )
            self._stop.wait(0.5)

    def _start_embedded_mongo(self, data_dir: Path, port: int, timeout: float) -> str:
        exe = _secantusd()
        if exe is None:
            raise CommandError(
                "MONGO_SESSIONS_URL is not set and SecantusDB (secantusd-py) is not installed: "
                "pip install 'django-mongo-sessions[demo]', or point MONGO_SESSIONS_URL at MongoDB."
            )
        port = port or free_port()
        storage = data_dir / "mongo"
        storage.mkdir(parents=True, exist_ok=True)
        log_path = data_dir / "secantusd.log"
        with open(log_path, "ab") as log:
            proc = self._spawn(
                "SecantusDB",
                # --sync-on-commit: an acknowledged session write survives a crash
                # of the server (like journaled writes on mongod); it cost under 3%
                # of update throughput when measured here.
                [
                    exe,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--storage-path",
                    str(storage),
                    "--sync-on-commit",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        url = f"mongodb://127.0.0.1:{port}/demo"
        self._say(f"Embedded MongoDB (SecantusDB) pid {proc.pid} at {url}, data in {storage}")
        try:
            self._wait_for("SecantusDB", lambda: _mongo_answers(url), timeout, proc=proc)
        except CommandError:
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            self._say("\n".join(["Last lines of " + str(log_path) + ":", *tail]))
            raise
        return url


def _wsgi_command(bind: str, options: dict[str, Any]) -> list[str]:
    cmd = [
        sys.executable, "-m", "gunicorn", "demo.wsgi",
        "--chdir", str(PROJECT_DIR),
        "--bind", bind,
        "--workers", str(options["workers"]),
        "--graceful-timeout", "10",
        "--timeout", "30",
    ]  # fmt: skip
    cmd += gunicorn_flags()
    if options["access_log"]:
        cmd += ["--access-logfile", "-"]
    return cmd


def _asgi_command(host: str, port: int, options: dict[str, Any]) -> list[str]:
    """Serve demo.asgi with uvicorn: the session is loaded and saved by the async client."""
    cmd = [
        sys.executable, "-m", "uvicorn", "demo.asgi:application",
        "--app-dir", str(PROJECT_DIR),
        "--host", host,
        "--port", str(port),
        "--workers", str(options["workers"]),
        "--timeout-graceful-shutdown", "10",
    ]  # fmt: skip
    if not options["access_log"]:
        cmd.append("--no-access-log")
    return cmd


def _redact(url: str) -> str:
    """The URL without its password, fit to print."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    creds, _, hosts = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hosts}"


def _mongo_answers(url: str) -> bool:
    import pymongo
    from pymongo.errors import PyMongoError

    try:
        client: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(
            url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
        ) as client:
            client.admin.command("ping")
    except PyMongoError:
        return False
    return True


def _health(host: str, port: int) -> int | None:
    """The HTTP status of GET /health/, or None while nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/health/", headers={"Accept": "application/json"})
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
