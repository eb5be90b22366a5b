"""The engines ``ops`` compares, and how to count what one call sends to each store.

An :class:`Engine` is Django's SessionStore class of one engine plus a
``count`` hook that runs one call and returns the commands it sent to its
store (MongoDB commands, Redis commands, SQL statements or local-memory cache
calls), and ``counting_on``/``counting_off`` to install and remove the
hooks, so that timed calls run without them. ``configure_django`` sets up
this process for all of them at once; ``cleanup`` removes what they stored.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mongo_sessions.testing import CommandCounter

from ..matrix import BASELINE, postgres_database, redis_cache
from ..stores import describe_postgres, describe_redis, describe_sqlite

# --- counting what goes to each store ---------------------------------------------


@dataclass
class Engine:
    """One session engine and how to count what a call sends to its store."""

    key: str  # mongo_sessions, cache, db
    label: str  # e.g. "cache (Redis)"
    unit: str  # what is counted: "MongoDB commands", "Redis commands", ...
    server: str  # what the figures were measured against
    store_class: Any
    count: Callable[[Callable[[], Any]], list[str]]  # run a call, return its commands
    counting_on: Callable[[], None] = lambda: None
    counting_off: Callable[[], None] = lambda: None
    created_keys: list[str] = field(default_factory=list)


def recorded_in(record: list[str]) -> Callable[[Callable[[], Any]], list[str]]:
    """A ``count`` hook for a hook that appends to ``record``: what one call appended."""

    def count(call: Callable[[], Any]) -> list[str]:
        record.clear()
        call()
        return list(record)

    return count


def mongo_engine(listener: CommandCounter, server: str) -> Engine:
    """mongo_sessions, its commands counted by ``listener`` (pymongo command monitoring)."""
    from django.conf import settings

    from mongo_sessions import connection
    from mongo_sessions.session import SessionStore

    def on() -> None:
        settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"event_listeners": [listener]}
        connection.reset()

    def off() -> None:
        # Time without the listener: the client is rebuilt without it.
        settings.MONGO_SESSIONS_CLIENT_OPTIONS = {}
        connection.reset()

    return Engine(
        key="mongo_sessions",
        label="mongo_sessions",
        unit="MongoDB commands (pymongo command monitoring)",
        server=server,
        store_class=SessionStore,
        count=recorded_in(listener.commands),
        counting_on=on,
        counting_off=off,
    )


def cache_engine(redis_url: str | None) -> Engine:
    from django.contrib.sessions.backends.cache import SessionStore
    from django.core.cache import caches

    if redis_url:
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

        return Engine(
            key="cache",
            label="cache (Redis)",
            unit="Redis commands (server INFO commandstats, listed alphabetically)",
            server=describe_redis(redis_url),
            store_class=SessionStore,
            count=count,
        )

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

    return Engine(
        key="cache",
        label="cache (locmem)",
        unit="cache calls (local memory: no server; REDIS_URL not set)",
        server="Django LocMemCache in this process (REDIS_URL not set)",
        store_class=SessionStore,
        count=recorded_in(calls),
        counting_on=on,
        counting_off=off,
    )


def _commandstats(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    out: dict[str, int] = {}
    for key, value in stats.items():
        name = key.removeprefix("cmdstat_")
        if name in ("info",):
            continue
        out[name] = int(value["calls"]) if isinstance(value, dict) else 0
    return out


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
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connections

    recorder = SqlRecorder()
    connection = connections["default"]
    wrapper_cm: list[Any] = []

    def on() -> None:
        original_commit, original_rollback = connection.commit, connection.rollback

        def commit() -> None:
            original_commit()
            recorder.ended("COMMIT")

        def rollback() -> None:
            original_rollback()
            recorder.ended("ROLLBACK")

        connection.commit = commit  # type: ignore[method-assign]
        connection.rollback = rollback  # type: ignore[method-assign]
        cm = connection.execute_wrapper(recorder)
        cm.__enter__()
        wrapper_cm.append(cm)

    def off() -> None:
        for name in ("commit", "rollback"):
            with contextlib.suppress(AttributeError):
                delattr(connection, name)
        while wrapper_cm:
            wrapper_cm.pop().__exit__(None, None, None)

    if database_url:
        server = describe_postgres(database_url)
        label, unit = "db (PostgreSQL)", "SQL statements incl. BEGIN/COMMIT (PostgreSQL)"
    else:
        server = describe_sqlite("a temporary file in this process; DATABASE_URL not set")
        label, unit = "db (SQLite)", "SQL statements incl. BEGIN/COMMIT (SQLite, no server)"
    return Engine(
        key="db",
        label=label,
        unit=unit,
        server=server,
        store_class=SessionStore,
        count=recorded_in(recorder.statements),
        counting_on=on,
        counting_off=off,
    )


# --- setup and cleanup ----------------------------------------------------------------


def configure_django(mongo_url: str, collection: str, listener: CommandCounter, tmp: Path) -> None:
    import django
    from django.conf import settings

    redis_url = os.environ.get("REDIS_URL")
    database_url = os.environ.get("DATABASE_URL")
    if redis_url:
        cache = redis_cache(redis_url, KEY_PREFIX=f"loadtests-ops-{secrets.token_hex(4)}")
    else:
        cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ops"}
    if database_url:
        database = postgres_database(database_url)
    else:
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp / "ops.sqlite3")}
    settings.configure(
        SECRET_KEY="loadtests-ops-" + secrets.token_hex(16),
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.sessions"],
        DATABASES={"default": database},
        CACHES={"default": cache},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        SESSION_ENGINE="mongo_sessions.session",
        MONGO_SESSIONS_URL=mongo_url,
        MONGO_DB_NAME="loadtests",  # when the URL names no database
        MONGO_SESSIONS_COLLECTION=collection,
        MONGO_SESSIONS_CLIENT_OPTIONS={"event_listeners": [listener]},
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", "sessions", verbosity=0, interactive=False)


def cleanup(engines: list[Engine]) -> None:
    """Remove what the benchmark stored: its collection, rows and keys."""
    from django.core.cache import caches
    from django.db import connections

    from mongo_sessions import connection

    for engine in engines:
        keys = engine.created_keys
        if engine.key == BASELINE:
            with contextlib.suppress(Exception):
                connection.get_collection().drop()
            connection.reset()
        elif engine.key == "cache":
            with contextlib.suppress(Exception):
                prefix = engine.store_class.cache_key_prefix
                caches["default"].delete_many([prefix + k for k in keys])
        elif engine.key == "db":
            from django.contrib.sessions.models import Session

            with contextlib.suppress(Exception):
                for i in range(0, len(keys), 500):
                    Session.objects.filter(session_key__in=keys[i : i + 500]).delete()
    with contextlib.suppress(Exception):
        connections.close_all()
