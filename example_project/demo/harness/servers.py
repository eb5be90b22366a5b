"""The servers the demo, the tests and the load tests start, each a ChildProcess."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from .base import (
    HEALTH_PATH,
    LOOPBACK,
    MANAGE_PY,
    PROJECT_DIR,
    START_TIMEOUT,
    STOP_TIMEOUT,
    HarnessError,
    MongoProbe,
    free_port,
    http_status,
    tcp_answers,
)
from .process import (
    ChildProcess,
)

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

    ``launcher`` replaces ``secantusd-py --host 127.0.0.1``, run through
    ``secantusd.py`` when this Python has SecantusDB (the tests run one that
    sets the TTL monitor's period); ``args`` are more flags (``--sync-on-commit``,
    ``--auth``...); ``client_options`` go to the ping's client (TLS, credentials).
    Raises HarnessError when secantusd-py is not installed.
    """
    port = port or free_port()
    if launcher is None and importlib.util.find_spec("secantus") is not None:
        # secantusd-py through a wrapper that stops it without a moment of
        # standalone hello replies (see secantusd.py beside this file).
        launcher = [sys.executable, str(Path(__file__).with_name("secantusd.py"))]
        launcher += ["--host", LOOPBACK]
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


def web_server(
    server: Literal["gunicorn", "uvicorn"],
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
    """``gunicorn app`` (WSGI) or ``uvicorn app`` (ASGI, ``module:attribute``) on ``host``:``port``.

    ``app`` is imported from ``app_dir``. Ready when ``probe_path`` answers at
    all: any HTTP status counts (a 503 from /health/ means the site is up and
    MongoDB is not); the caller decides what the status means. Stopped with
    SIGTERM, gracefully: gunicorn's workers finish their requests, uvicorn's
    open requests finish within 10 s.
    """
    port = port or free_port()
    if server == "gunicorn":
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        where = ["--chdir", str(app_dir), "--bind", bind, *gunicorn_flags()]
    else:
        where = [
            "--app-dir", str(app_dir),
            "--host", host,
            "--port", str(port),
            "--timeout-graceful-shutdown", "10",
        ]  # fmt: skip
    command = [sys.executable, "-m", server, app, *where, "--workers", str(workers), *args]
    url = _probe_url(host, port)
    return http_child(server, command, url, port, probe_path, log_path=log_path, env=env)


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
