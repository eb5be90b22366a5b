"""Django's own engines that ``ops`` compares: the cache engine and the database engine.

Each on a server when its URL is set (Redis: REDIS_URL; PostgreSQL:
DATABASE_URL), else in this process (local memory; SQLite), with the hooks
that count what a call sends to its store (see :class:`.engines.Engine`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from ..stores import describe_postgres, describe_redis, describe_sqlite
from .engines import Engine, recorded_in

# --- Django's cache engine ---------------------------------------------------------------


def cache_engine(redis_url: str | None) -> Engine:
    """Django's cache engine: on Redis at ``redis_url``, else on local memory."""
    from django.contrib.sessions.backends.cache import SessionStore
    from django.core.cache import caches

    def full_key(session_key: str) -> str:
        cache = caches["default"]
        return str(cache.make_key(SessionStore.cache_key_prefix + session_key))

    if redis_url:
        return _redis_cache_engine(redis_url, SessionStore, full_key)
    return _locmem_cache_engine(SessionStore, full_key)


def _redis_cache_engine(redis_url: str, store_class: Any, full_key: Callable[[str], str]) -> Engine:
    """The cache engine on Redis, its commands counted by the server's INFO commandstats."""
    import redis

    stats_client = redis.Redis.from_url(redis_url, socket_timeout=10)

    def count(call: Callable[[], Any]) -> list[str]:
        before = _commandstats(stats_client)
        call()
        after = _commandstats(stats_client)
        names: list[str] = []
        for name, calls in sorted(after.items()):
            names += [name.upper()] * (calls - before.get(name, 0))
        return names

    def redis_bytes(session_key: str) -> int:
        key = full_key(session_key)
        return len(key.encode()) + int(stats_client.strlen(key))

    return Engine(
        key="cache",
        label="cache (Redis)",
        unit="Redis commands (server INFO commandstats, listed alphabetically)",
        server=describe_redis(redis_url),
        store_class=store_class,
        count=count,
        stored_bytes=redis_bytes,
        bytes_unit="Redis key and value (STRLEN), in bytes",
    )


def _locmem_cache_engine(store_class: Any, full_key: Callable[[str], str]) -> Engine:
    """The cache engine on local memory, its calls counted by wrappers on the cache."""
    from django.core.cache import caches

    calls: list[str] = []
    methods = ("get", "set", "add", "delete", "has_key", "touch", "get_many", "set_many")

    def on() -> None:
        cache = caches["default"]
        for name in methods:
            original = getattr(cache, name)

            def wrapper(*args: Any, _name: str = name, _f: Any = original, **kw: Any) -> Any:
                calls.append(f"cache.{_name}")
                return _f(*args, **kw)

            setattr(cache, name, wrapper)

    def off() -> None:
        cache = caches["default"]
        for name in methods:
            with contextlib.suppress(AttributeError):
                delattr(cache, name)

    def locmem_bytes(session_key: str) -> int:
        key = full_key(session_key)
        value = caches["default"]._cache.get(key, b"")
        return len(key.encode()) + len(value)

    return Engine(
        key="cache",
        label="cache (locmem)",
        unit="cache calls (local memory: no server; REDIS_URL not set)",
        server="Django LocMemCache in this process (REDIS_URL not set)",
        store_class=store_class,
        count=recorded_in(calls),
        stored_bytes=locmem_bytes,
        bytes_unit="cache key and pickled value, in bytes",
        counting_on=on,
        counting_off=off,
    )


def _commandstats(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    out: dict[str, int] = {}
    for key, value in stats.items():
        name = key.removeprefix("cmdstat_")
        if name in ("info", "strlen"):
            continue
        out[name] = int(value["calls"]) if isinstance(value, dict) else 0
    return out


# --- Django's database engine ----------------------------------------------------------------


class SqlRecorder:
    """Record each SQL statement, and the BEGIN/COMMIT around Django's transactions."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.in_transaction = False

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
        connection = context["connection"]
        if verb == "BEGIN":
            self.in_transaction = True
        elif connection.in_atomic_block and not self.in_transaction:
            # psycopg opens the transaction itself before the first statement.
            self.statements.append("BEGIN")
            self.in_transaction = True
        self.statements.append(verb)
        return execute(sql, params, many, context)

    def ended(self, how: str) -> None:
        if self.in_transaction:
            self.statements.append(how)
            self.in_transaction = False


def db_engine(database_url: str | None) -> Engine:
    """Django's database engine: on PostgreSQL at ``database_url``, else on SQLite."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connections

    recorder = SqlRecorder()
    connection = connections["default"]
    on, off = _sql_counting(connection, recorder)
    server, label, unit, size_sql, bytes_unit = _database(database_url)

    def row_bytes(session_key: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute(size_sql, [session_key])
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    return Engine(
        key="db",
        label=label,
        unit=unit,
        server=server,
        store_class=SessionStore,
        count=recorded_in(recorder.statements),
        stored_bytes=row_bytes,
        bytes_unit=bytes_unit,
        counting_on=on,
        counting_off=off,
    )


def _sql_counting(
    connection: Any, recorder: SqlRecorder
) -> tuple[Callable[[], None], Callable[[], None]]:
    """Return the hooks that install and remove ``recorder`` on ``connection``."""
    wrapper_cm: list[Any] = []

    def on() -> None:
        original_commit, original_rollback = connection.commit, connection.rollback

        def commit() -> None:
            original_commit()
            recorder.ended("COMMIT")

        def rollback() -> None:
            original_rollback()
            recorder.ended("ROLLBACK")

        connection.commit = commit
        connection.rollback = rollback
        cm = connection.execute_wrapper(recorder)
        cm.__enter__()
        wrapper_cm.append(cm)

    def off() -> None:
        for name in ("commit", "rollback"):
            with contextlib.suppress(AttributeError):
                delattr(connection, name)
        while wrapper_cm:
            wrapper_cm.pop().__exit__(None, None, None)

    return on, off


def _database(database_url: str | None) -> tuple[str, str, str, str, str]:
    """Return the server, label, unit, row-size SQL and its unit of PostgreSQL, else SQLite."""
    if database_url:
        server = describe_postgres(database_url)
        label, unit = "db (PostgreSQL)", "SQL statements incl. BEGIN/COMMIT (PostgreSQL)"
        size_sql = "SELECT pg_column_size(s.*) FROM django_session s WHERE session_key = %s"
        bytes_unit = "the row's size as PostgreSQL reports it (pg_column_size)"
    else:
        server = describe_sqlite("a temporary file in this process; DATABASE_URL not set")
        label, unit = "db (SQLite)", "SQL statements incl. BEGIN/COMMIT (SQLite, no server)"
        size_sql = (
            "SELECT length(CAST(session_key AS BLOB)) + length(CAST(session_data AS BLOB)) "
            "+ length(CAST(expire_date AS BLOB)) FROM django_session WHERE session_key = %s"
        )
        bytes_unit = "the row's three columns, in bytes"
    return server, label, unit, size_sql, bytes_unit
