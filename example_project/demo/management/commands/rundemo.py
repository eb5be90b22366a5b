"""``manage.py rundemo``: the whole demo with one command.

* Without ``MONGO_SESSIONS_URL`` it starts an embedded MongoDB-wire server
  (SecantusDB, ``secantusd-py``) on 127.0.0.1 with its data in
  ``DATA_DIR/mongo``, so sessions survive a restart.
* With ``MONGO_SESSIONS_URL`` it uses that server and starts nothing else.

Then it runs the migrations, creates the demo user (``demo_setup``), starts
gunicorn with several workers (or, with ``--asgi``, uvicorn serving
``demo.asgi``) and prints the address once ``/health/`` answers. Ctrl-C or
SIGTERM stops the web server, then the embedded server, each by its own
process id. The processes are started, probed and stopped by ``demo.harness``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.harness import (
    HEALTH_PATH,
    MANAGE_PY,
    PROJECT_DIR,
    STOP_TIMEOUT,
    ChildProcess,
    HarnessError,
    http_status,
    mongo_server,
    redact_url,
    wait_for_ping,
    web_server,
)

REPO_ROOT = PROJECT_DIR.parent


class Command(BaseCommand):
    help = (
        "Run the demo: an embedded MongoDB-wire server unless MONGO_SESSIONS_URL is set, "
        "the migrations and demo user, and gunicorn (or uvicorn with --asgi)."
    )
    requires_system_checks = ()  # nothing to check before MongoDB runs

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address the web server binds to")
        parser.add_argument("--port", type=int, default=8000, help="port the web server binds to")
        parser.add_argument("--workers", type=int, default=3, help="web server worker processes")
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
            help="seconds to wait for MongoDB and for the web server to answer",
        )
        parser.add_argument(
            "--access-log", action="store_true", help="have the web server log every request"
        )
        parser.add_argument(
            "--asgi",
            action="store_true",
            help="serve the demo with uvicorn (ASGI, demo.asgi) instead of gunicorn (WSGI)",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop = threading.Event()
        self._children: list[ChildProcess] = []

    def _say(self, message: str) -> None:
        print(message, flush=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def handle(self, *args: Any, **options: Any) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self._run(**options)
        except HarnessError as e:
            raise CommandError(str(e)) from None
        finally:
            self._stop_children()
        self._say("Demo stopped.")

    def _start(
        self, child: ChildProcess, timeout: float, started: Callable[[ChildProcess], str]
    ) -> ChildProcess:
        """Start ``child`` with a parent-death signal, remembered for the ordered stop.

        ``started(child)`` is printed before the wait for its probe: whoever reads
        the output knows the pid as soon as the demo answers.
        """
        child.die_with_parent = True
        child.start_timeout = timeout
        self._children.append(child)
        child.spawn()
        self._say(started(child))
        child.wait_ready(stop=self._stop)
        return child

    def _stop_children(self) -> None:
        """Stop the children in reverse order (the web server first, the database last)."""
        for child in reversed(self._children):
            if child.running():
                self._say(f"Stopping {child.name} (pid {child.pid})...")
                child.stop_timeout = STOP_TIMEOUT
                child.stop()
        self._children.clear()

    def _run(self, **options: Any) -> None:
        server = "uvicorn" if options["asgi"] else "gunicorn"
        if find_spec(server) is None:
            raise CommandError(
                f"{server} is not installed: pip install 'django-mongo-sessions[demo]'"
            )
        timeout: float = options["startup_timeout"]
        data_dir = Path(options["data_dir"]).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        env = self._child_env(data_dir)

        url = os.environ.get("MONGO_SESSIONS_URL", "").strip()
        if url:
            self._say(f"Using the MongoDB server of MONGO_SESSIONS_URL ({redact_url(url)}).")
            wait_for_ping(url, timeout, stop=self._stop)
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
        if settings.DEMO_PASSWORD == "demo-password":
            self._say(f"Log in as {settings.DEMO_USERNAME} / demo-password (a demo-only account)")
        else:
            self._say(f"Log in as {settings.DEMO_USERNAME} (password from DEMO_PASSWORD)")

        web = self._start_web_server(options, env, timeout)
        status = http_status(web.url + HEALTH_PATH)
        if status != 200:
            self._say(
                f"Warning: /health/ answered {status} (check DJANGO_ALLOWED_HOSTS and MongoDB)."
            )
        host: str = options["host"]
        shown = "localhost" if host in ("0.0.0.0", "::", "") else _bracketed(host)
        self._say("")
        self._say(f"  Demo running at http://{shown}:{web.port}/")
        self._say("  Press Ctrl-C to stop.")
        self._say("")
        self._supervise()

    def _child_env(self, data_dir: Path) -> dict[str, str]:
        """The environment of the children: ours, the data folder, this checkout first."""
        env = os.environ.copy()
        env["DEMO_DATA_DIR"] = str(data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        # Run from a checkout, the children import this checkout's mongo_sessions.
        if (REPO_ROOT / "mongo_sessions" / "__init__.py").is_file():
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
            )
        return env

    def _start_embedded_mongo(self, data_dir: Path, port: int, timeout: float) -> str:
        """Start SecantusDB with its data in ``data_dir/mongo``; return its URL."""
        try:
            # --sync-on-commit: an acknowledged session write survives a crash of
            # the server (like journaled writes on mongod); it cost under 3% of
            # update throughput when measured here.
            server = mongo_server(
                data_dir / "mongo",
                port=port or None,
                log_path=data_dir / "secantusd.log",
                args=["--sync-on-commit"],
            )
        except HarnessError as e:
            raise CommandError(
                f"MONGO_SESSIONS_URL is not set and {e}, or point MONGO_SESSIONS_URL at MongoDB."
            ) from None
        url = f"{server.url}demo"
        where = f"at {url}, data in {data_dir / 'mongo'}"
        self._start(server, timeout, lambda c: f"Embedded MongoDB (SecantusDB) pid {c.pid} {where}")
        return url

    def _start_web_server(
        self, options: dict[str, Any], env: dict[str, str], timeout: float
    ) -> ChildProcess:
        """Start gunicorn with the demo's WSGI app, or with ``--asgi`` uvicorn with its ASGI
        app (a request's session load and save then use the async client only); the
        server's output goes to our stdout."""
        where = {"host": options["host"], "port": options["port"], "workers": options["workers"]}
        if options["asgi"]:
            server, app = "uvicorn", "demo.asgi:application"
            args = [] if options["access_log"] else ["--no-access-log"]
        else:
            server, app = "gunicorn", "demo.wsgi"
            args = ["--graceful-timeout", "10", "--timeout", "30"]
            if options["access_log"]:
                args += ["--access-logfile", "-"]
        web = web_server(server, app, log_path=None, env=env, args=args, **where)
        bind = f"{_bracketed(options['host'])}:{web.port}"
        workers = options["workers"]
        self._start(web, timeout, lambda c: f"{c.name} pid {c.pid}, {workers} workers, on {bind}")
        return web

    def _supervise(self) -> None:
        """Wait for a stop signal; fail when a child exits on its own."""
        while not self._stop.is_set():
            for child in self._children:
                if not child.running():
                    assert child.process is not None
                    raise CommandError(
                        f"{child.name} (pid {child.pid}) exited with status "
                        f"{child.process.returncode}."
                    )
            self._stop.wait(0.5)


def _bracketed(host: str) -> str:
    """An IPv6 address in brackets, as a URL wants it."""
    return f"[{host}]" if ":" in host else host
