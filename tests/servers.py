"""Servers of the tests' own, on ``demo.harness``: SecantusDB, and the demo site.

Every one listens on 127.0.0.1, keeps its data and log in a folder the test
gives (from pytest's ``tmp_path`` or ``tmp_path_factory``), is ready when a
probe answers and is stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

import pymongo
import trustme
from pymongo.database import Database

from demo.harness import (
    DEMO_API,
    MANAGE_PY,
    PROJECT_DIR,
    ChildProcess,
    demo_server,
    free_port,
    mongo_server,
    wait_for_ping,
    web_server,
)
from mongo_sessions import connection

__all__ = [
    "DEMO_API",
    "MANAGE_PY",
    "PROJECT_DIR",
    "REPO_ROOT",
    "AuthServer",
    "ChildProcess",
    "RunDemo",
    "TlsFiles",
    "asgi_test_site",
    "auth_mongo_server",
    "demo_env",
    "free_port",
    "gunicorn_site",
    "make_tls_files",
    "pid_alive",
    "run_demo_setup",
    "rundemo",
    "rundemo_process",
    "test_mongo_server",
    "wait_for_ping",
    "with_database",
]

REPO_ROOT = PROJECT_DIR.parent
# secantusd-py has no flag for the TTL monitor's period: tests/secantus_launcher.py has.
TEST_LAUNCHER = [sys.executable, "-m", "tests.secantus_launcher"]


# --- MongoDB-wire servers ---------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway certificate authority and a server certificate it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls_files(directory: Path, name: str) -> TlsFiles:
    """Make a CA (trustme) and a certificate it signed for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name=f"{name} test CA")
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(
        ca_file=directory / f"{name}-ca.pem",
        cert_file=directory / f"{name}-server.pem",
        key_file=directory / f"{name}-server.key",
    )
    ca.cert_pem.write_to_path(str(files.ca_file))
    server.private_key_pem.write_to_path(str(files.key_file))
    for i, pem in enumerate(server.cert_chain_pems):
        pem.write_to_path(str(files.cert_file), append=i > 0)
    return files


def test_mongo_server(
    storage_path: Path,
    *,
    auth: bool = False,
    test_commands: bool = True,
    ttl_sweep_seconds: float = 1.0,
    tls: TlsFiles | None = None,
    args: list[str] | tuple[str, ...] = (),
    port: int | None = None,
) -> ChildProcess:
    """SecantusDB with a one-second TTL monitor and (by default) test commands; not started.

    With ``tls`` it serves that certificate, and its readiness ping trusts the CA.
    """
    flags = ["--ttl-sweep-seconds", str(ttl_sweep_seconds), *args]
    flags += ["--auth"] if auth else []
    flags += ["--enable-test-commands"] if test_commands else []
    options: dict[str, Any] = {}
    if tls is not None:
        flags += ["--tls-cert-file", str(tls.cert_file), "--tls-key-file", str(tls.key_file)]
        options = {"tls": True, "tlsCAFile": str(tls.ca_file)}
    return mongo_server(
        storage_path, port=port, args=flags, launcher=TEST_LAUNCHER, client_options=options
    )


test_mongo_server.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest


@dataclass(frozen=True)
class AuthServer:
    """A running test server with --auth, and the URLs its users reach ``database`` with."""

    child: ChildProcess
    database: str
    user: str
    password: str

    @property
    def port(self) -> int:
        return self.child.port

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """The URL of ``user`` with ``password`` (by default the server's own), percent-escaped."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        return (
            f"mongodb://{quote_plus(user)}:{quote_plus(password)}@127.0.0.1:{self.port}"
            f"/{self.database}?authSource={self.database}"
        )


@contextlib.contextmanager
def auth_mongo_server(
    storage_path: Path,
    database: str,
    user: str,
    password: str,
    provision: Callable[[Database[dict[str, Any]]], None] | None = None,
) -> Iterator[AuthServer]:
    """Run a test server with --auth until the block ends; ``user`` may readWrite ``database``.

    As SecantusDB (and mongod) want it: the server first runs without auth, and
    ``user`` is created in the database that will be its authSource (``provision``
    may create more roles and users there); then it restarts with --auth. Ready
    when ``user``'s ping answers. The package's connection, which may hold a
    client of this server, is reset before the server stops.
    """
    with test_mongo_server(storage_path, test_commands=False) as server:
        client: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(server.url, serverSelectionTimeoutMS=5000) as client:
            client[database].command(
                "createUser", user, pwd=password, roles=[{"role": "readWrite", "db": database}]
            )
            if provision is not None:
                provision(client[database])
    with test_mongo_server(storage_path, auth=True) as child:
        try:
            served = AuthServer(child, database, user, password)
            wait_for_ping(served.url())
            yield served
        finally:
            connection.reset()


# --- the demo site (example_project) ------------------------------------------------------


def demo_env(**extra: str) -> dict[str, str]:
    """Environment of a demo subprocess: the demo's settings, none of the suite's or the
    developer's (MONGO_SESSIONS_*, MONGO_DB_*, DEMO_*, DJANGO_* variables), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MONGO_SESSIONS_", "MONGO_DB_", "DEMO_", "DJANGO_"))
    }
    env["DJANGO_SETTINGS_MODULE"] = "demo.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_demo_setup(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py demo_setup --skip-mongo`` with its user table in ``data_dir`` (bounded)."""
    return subprocess.run(
        [sys.executable, str(MANAGE_PY), "demo_setup", "--skip-mongo"],
        env=demo_env(DEMO_DATA_DIR=str(data_dir)),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def with_database(url: str, database: str) -> str:
    """``url`` with its path (the database) replaced by ``database``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@contextlib.contextmanager
def gunicorn_site(env: Mapping[str, str], log: Path, workers: int = 1) -> Iterator[str]:
    """Run ``gunicorn demo.wsgi`` on a free loopback port; yield its base URL."""
    site = web_server(
        "gunicorn", "demo.wsgi", log_path=log, env=env, workers=workers, args=["--timeout", "30"]
    )
    with site:
        yield site.url


def one_module_site(
    folder: Path,
    module: str,
    source: str,
    settings: Any,
    *,
    probe_path: str,
    workers: int = 1,
    args: list[str] | None = None,
) -> ChildProcess:
    """gunicorn serving the site ``source`` (see ``tests/wsgi_site.py``) on a free loopback port.

    ``source`` is written to ``folder/module.py``; gunicorn logs to
    ``folder/gunicorn.log``. The site's MongoDB URL and collection are those of
    ``settings`` (pytest-django's). Not started: enter the returned process.
    """
    (folder / f"{module}.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MONGO_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(folder), str(REPO_ROOT)]),
        SITE_MONGO_URL=settings.MONGO_SESSIONS_URL,
        SITE_COLLECTION=settings.MONGO_SESSIONS_COLLECTION,
        PYTHONUNBUFFERED="1",
    )
    return web_server(
        "gunicorn",
        f"{module}:application",
        log_path=folder / "gunicorn.log",
        env=env,
        app_dir=folder,
        workers=workers,
        args=args or [],
        probe_path=probe_path,
    )


def rundemo_process(
    env: Mapping[str, str],
    data_dir: Path,
    log: Path,
    workers: int = 2,
    access_log: bool = False,
    asgi: bool = False,
) -> ChildProcess:
    """``manage.py rundemo`` on a free loopback port with ``env``; not started.

    ``asgi``: ``rundemo --asgi``, the demo under uvicorn instead of gunicorn.
    """
    args = ["--access-log"] if access_log else []
    args += ["--asgi"] if asgi else []
    return demo_server(data_dir=data_dir, log_path=log, env=env, workers=workers, args=args)


def asgi_test_site(env: Mapping[str, str], log: Path) -> ChildProcess:
    """uvicorn serving ``tests/asgi_site`` on a free loopback port with ``env``; not started.

    Ready when its ``/_counts/`` view (the command counts, no session) answers.
    """
    return web_server(
        "uvicorn",
        "tests.asgi_site.asgi:application",
        log_path=log,
        env=env,
        app_dir=REPO_ROOT,
        args=["--log-level", "warning"],
        probe_path="/_counts/",
    )


@dataclass
class RunDemo:
    """A running ``rundemo``, with what it printed."""

    child: ChildProcess

    @property
    def base(self) -> str:
        return self.child.url

    def output(self) -> str:
        return self.child.log_text()

    def pids(self) -> dict[str, int]:
        """The children's pids, as rundemo printed them."""
        found: dict[str, int] = {}
        for line in self.output().splitlines():
            if line.startswith("Embedded MongoDB (SecantusDB) pid "):
                found["mongo"] = int(line.split()[4])
            elif line.startswith(("gunicorn pid ", "uvicorn pid ")):
                found[line.split()[0]] = int(line.split()[2].rstrip(","))
        return found

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop rundemo with ``sig`` (it stops its children); return its exit status."""
        return self.child.stop(sig)


@contextlib.contextmanager
def rundemo(
    env: Mapping[str, str], data_dir: Path, log: Path, workers: int = 2, asgi: bool = False
) -> Iterator[RunDemo]:
    """Run ``manage.py rundemo`` (``--asgi``: under uvicorn) on a free port until the block ends."""
    with rundemo_process(env, data_dir, log, workers, asgi=asgi) as child:
        yield RunDemo(child)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
