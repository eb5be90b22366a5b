"""The stores the engines are measured against: start, describe and count them.

MongoDB is the server of ``MONGO_SESSIONS_URL`` or an embedded SecantusDB;
the cache engine runs on Redis when ``REDIS_URL`` is set, the database engine
on PostgreSQL when ``DATABASE_URL`` is set. ``--start redis,postgresql``
starts throwaway ones on 127.0.0.1 for one run (``demo.harness``) and sets
those variables, so a comparison needs no server set up by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymongo
from pymongo.errors import PyMongoError

from demo.harness import (
    ChildProcess,
    mongo_server,
    postgres_server,
    redis_server,
    wait_for_ping,
)

#: MONGO_SESSIONS_COLLECTION of the demo (example_project).
DEMO_COLLECTION = "mongo_sessions"
#: The keys Django's cache engine stores sessions under.
CACHE_KEY_PATTERN = "*django.contrib.sessions.cache*"
#: What --start can start, and the variable each one sets.
STARTABLE = {"redis": "REDIS_URL", "postgresql": "DATABASE_URL"}


@dataclass
class Store:
    """What an engine's figures were measured against: a short and a long description."""

    short: str
    long: str


def add_start_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--start redis,postgresql`` option of ``run`` and ``ops``."""
    parser.add_argument(
        "--start",
        type=parse_start,
        default=[],
        metavar="redis,postgresql",
        help="start a throwaway Redis and/or PostgreSQL on 127.0.0.1 for this run "
        "(sets REDIS_URL / DATABASE_URL)",
    )


def parse_start(value: str) -> list[str]:
    """The names of ``--start redis,postgresql``; raises ValueError for an unknown one."""
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in STARTABLE]
    if unknown:
        raise ValueError(f"cannot start {', '.join(unknown)}: choose from {', '.join(STARTABLE)}")
    return names


@contextlib.contextmanager
def started_stores(names: list[str]) -> Iterator[list[ChildProcess]]:
    """Start a throwaway Redis and/or PostgreSQL; set REDIS_URL/DATABASE_URL meanwhile.

    Yields the servers started.

    Each keeps its data in a folder of its own under the system's temporary
    folder (PostgreSQL, run as the postgres user under root, must reach it),
    removed with the server. Raises demo.harness.HarnessError when one is not
    installed or does not start.
    """
    started: list[ChildProcess] = []
    with contextlib.ExitStack() as stack:
        for name in names:
            folder = Path(tempfile.mkdtemp(prefix=f"loadtests-{name}-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            server = (redis_server if name == "redis" else postgres_server)(folder)
            stack.enter_context(server)
            variable = STARTABLE[name]
            previous = os.environ.get(variable)
            os.environ[variable] = server.url
            stack.callback(_restore, variable, previous)
            print(f"Started {server.name} (pid {server.pid}) at {server.url} for this run")
            started.append(server)
        yield started


def _restore(variable: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = value


@contextlib.contextmanager
def mongo_for_run(
    storage: Path,
    server_args: list[str] | None = None,
    on_start: Callable[[ChildProcess], None] | None = None,
) -> Iterator[tuple[str, bool]]:
    """MONGO_SESSIONS_URL when set, else an embedded server: yields (url, embedded).

    ``server_args`` are more flags of the embedded server; ``on_start`` is
    called with it once it answers.
    """
    url = os.environ.get("MONGO_SESSIONS_URL", "").strip()
    if url:
        wait_for_ping(url, timeout=30)
        yield url, False
        return
    args = ["--log-level", "WARNING", *(server_args or [])]
    with mongo_server(storage, args=args) as server:
        if on_start is not None:
            on_start(server)
        yield server.url, True


# --- descriptions -------------------------------------------------------------------


def secantus_version() -> str:
    try:
        return importlib.metadata.version("SecantusDB")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _mongo_client(url: str) -> pymongo.MongoClient[dict[str, Any]]:
    return pymongo.MongoClient(url, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)


def describe_mongo(url: str, embedded: bool) -> str:
    """ "MongoDB <version> at <hosts>", or what the embedded SecantusDB is."""
    version = "?"
    with contextlib.suppress(PyMongoError), _mongo_client(url) as client:
        version = str(client.server_info().get("version", "?"))
    where = urlsplit(url).netloc.rpartition("@")[2]
    if embedded:
        return (
            f"embedded SecantusDB {secantus_version()} (pure Python, reports MongoDB "
            f"{version}) at {where}"
        )
    return f"MongoDB {version} at {where} (MONGO_SESSIONS_URL)"


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


def describe_store(
    engine: str, mongo_url: str, embedded: bool, data_dir: Path, workers: int
) -> Store:
    """What ``engine`` keeps its sessions in, in the demo under load."""
    if engine == "mongo_sessions":
        long = describe_mongo(mongo_url, embedded)
        short = f"SecantusDB {secantus_version()} (embedded)" if embedded else long.split(" at ")[0]
        return Store(short, long)
    if engine == "cache":
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            long = describe_redis(redis_url)
            return Store(long.split(" at ")[0], long)
        return Store(
            "locmem (per worker)",
            f"local memory of each of the {workers} gunicorn workers (REDIS_URL not set)",
        )
    if engine == "db":
        database_url = os.environ.get("DATABASE_URL")
        if database_url:
            long = describe_postgres(database_url)
            return Store(long.split(" at ")[0], long)
        long = describe_sqlite("a file in the demo's data folder; DATABASE_URL not set")
        return Store(long.split(" (")[0], long)
    return Store("cookie", "the client's signed cookie: no server-side store")


# --- counting the sessions a run left -----------------------------------------------


def count_sessions(engine: str, mongo_url: str, data_dir: Path) -> tuple[int | None, str]:
    """How many sessions the engine's store holds now, and how that was counted."""
    if engine == "mongo_sessions":
        from pymongo.uri_parser import parse_uri

        database = parse_uri(mongo_url)["database"] or "test"  # the package's default
        with _mongo_client(mongo_url) as client:
            n = client[database][DEMO_COLLECTION].count_documents({})
        return n, f"documents in {database}.{DEMO_COLLECTION} (pymongo count_documents)"
    if engine == "cache":
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            return None, "local memory of the workers: not countable from outside"
        import redis

        redis_client = redis.Redis.from_url(redis_url, socket_timeout=10)
        try:
            n = sum(1 for _ in redis_client.scan_iter(match=CACHE_KEY_PATTERN, count=1000))
        finally:
            redis_client.close()
        return n, f"Redis keys matching {CACHE_KEY_PATTERN}"
    if engine == "db":
        return _count_django_session(data_dir), "rows of django_session"
    return None, "kept in the cookie: nothing on the server"


def _count_django_session(data_dir: Path) -> int:
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        import psycopg

        with psycopg.connect(database_url, connect_timeout=5) as conn:
            exists = conn.execute("SELECT to_regclass('django_session')").fetchone()
            if not exists or exists[0] is None:
                return 0
            row = conn.execute("SELECT count(*) FROM django_session").fetchone()
            return int(row[0]) if row else 0
    path = data_dir / "db.sqlite3"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM django_session").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
