"""Helpers shared by ``run`` and ``ops``: ports, child processes, store descriptions."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymongo
from pymongo.errors import PyMongoError

LOADTESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = LOADTESTS_DIR.parent
MANAGE_PY = REPO_ROOT / "example_project" / "manage.py"
RESULTS_ROOT = LOADTESTS_DIR / "results"

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def new_results_folder(output: str | None, suffix: str = "") -> Path:
    """The folder given, or loadtests/results/<timestamp><suffix>/ (never reused)."""
    if output:
        folder = Path(output)
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = RESULTS_ROOT / f"{stamp}{suffix}"
        n = 2
        while folder.exists():
            folder = RESULTS_ROOT / f"{stamp}{suffix}-{n}"
            n += 1
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stop_process(
    proc: subprocess.Popen[Any],
    first: signal.Signals = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT,
) -> None:
    """Stop one child by its own PID: ``first``, then SIGTERM, then SIGKILL."""
    for sig in dict.fromkeys((first, signal.SIGTERM, signal.SIGKILL)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def redact_url(url: str) -> str:
    """The URL without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()
    revision = out.stdout.strip() or "unknown"
    return f"{revision}{'+local changes' if dirty else ''}"


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"


# --- MongoDB -----------------------------------------------------------------


def secantusd_executable() -> str:
    beside = Path(sys.executable).with_name("secantusd-py")
    return str(beside) if beside.exists() else "secantusd-py"


def secantus_version() -> str:
    try:
        return importlib.metadata.version("SecantusDB")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def mongo_client(url: str, **options: Any) -> pymongo.MongoClient[dict[str, Any]]:
    return pymongo.MongoClient(url, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, **options)


def wait_for_ping(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client: pymongo.MongoClient[dict[str, Any]]
            with pymongo.MongoClient(url, serverSelectionTimeoutMS=1000) as client:
                client.admin.command("ping")
            return
        except PyMongoError as e:
            last = e
            time.sleep(0.2)
    raise RuntimeError(f"no ping answer from {redact_url(url)} within {timeout:g} s: {last}")


def mongo_server_version(url: str) -> str:
    with contextlib.suppress(PyMongoError), mongo_client(url) as client:
        return str(client.server_info().get("version", "?"))
    return "?"


def describe_mongo(url: str, embedded: bool) -> str:
    where = ",".join(f"{h}:{p}" for h, p in _mongo_hosts(url))
    if embedded:
        return (
            f"embedded SecantusDB {secantus_version()} (pure Python, reports MongoDB "
            f"{mongo_server_version(url)}) at {where}"
        )
    return f"MongoDB {mongo_server_version(url)} at {where} (MONGO_SESSIONS_URL)"


def _mongo_hosts(url: str) -> list[tuple[str, int]]:
    try:
        from pymongo.uri_parser import parse_uri

        return [(h, int(p)) for h, p in parse_uri(url)["nodelist"]]
    except Exception:
        return [(urlsplit(url).hostname or "?", urlsplit(url).port or 27017)]


@dataclass
class EmbeddedMongo:
    """secantusd-py on 127.0.0.1, started and stopped by this process."""

    storage: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://{LOOPBACK}:{self.port}/"

    def start(self, timeout: float = 60.0) -> EmbeddedMongo:
        self.storage.mkdir(parents=True, exist_ok=True)
        log = open(self.storage.parent / "secantusd.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        command = [
            secantusd_executable(),
            "--host", LOOPBACK,
            "--port", str(self.port),
            "--storage-path", str(self.storage),
            "--log-level", "WARNING",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_ping(self.url, timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM, timeout=15)
        with contextlib.suppress(AttributeError):
            self._log.close()


@contextlib.contextmanager
def mongo_for_run(storage: Path) -> Iterator[tuple[str, bool]]:
    """MONGO_SESSIONS_URL when set, else an embedded server: yields (url, embedded)."""
    url = os.environ.get("MONGO_SESSIONS_URL", "").strip()
    if url:
        wait_for_ping(url, timeout=30)
        yield url, False
        return
    server = EmbeddedMongo(storage).start()
    try:
        yield server.url, True
    finally:
        server.stop()


# --- Redis and SQL databases -----------------------------------------------------


def describe_redis(url: str) -> str:
    import redis

    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379}"
    try:
        client = redis.Redis.from_url(url, socket_timeout=5)
        version = client.info("server").get("redis_version", "?")
        client.close()
    except redis.RedisError as e:
        return f"Redis at {where} (not answering: {e})"
    return f"Redis {version} at {where}"


def describe_postgres(url: str) -> str:
    import psycopg

    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 5432}"
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        version = str(row[0]).split()[0] if row else "?"
    except psycopg.Error as e:
        return f"PostgreSQL at {where} (not answering: {e})"
    return f"PostgreSQL {version} at {where}"


def describe_sqlite(where: str) -> str:
    return f"SQLite {sqlite3.sqlite_version} ({where})"
