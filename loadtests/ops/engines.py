"""``python -m loadtests ops``: what each session operation costs, engine by engine.

For create, load, load-modify-save (a full request cycle), cycle_key, delete
and load of an unknown key it measures, for mongo_sessions and, in the same
run, Django's cache engine (Redis when REDIS_URL is set, else local memory)
and database engine (PostgreSQL when DATABASE_URL is set, else SQLite):

* the commands each call sends to its store: MongoDB commands from pymongo
  command monitoring (``MONGO_SESSIONS_CLIENT_OPTIONS = {"event_listeners":
  [...]}``), Redis commands from the server's INFO commandstats, SQL
  statements (with the BEGIN/COMMIT of Django's transactions) from a
  database execute wrapper, cache calls for local memory;
* the median client CPU per call, ``time.thread_time_ns()`` around each call,
  over many iterations after a warm-up, with no counting hooks installed;
* the median wall time per call, which includes the server's own time.

Django is configured in this process with ``settings.configure()``. MongoDB
is an embedded SecantusDB on 127.0.0.1 unless MONGO_SESSIONS_URL is set.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mongo_sessions.testing import CommandCounter

from . import report
from .common import (
    describe_mongo,
    describe_postgres,
    describe_redis,
    describe_sqlite,
    git_revision,
    machine,
    mongo_for_run,
    new_results_folder,
)

CART = {"apple": 2, "coffee": 1}
OPERATIONS = (
    "create",
    "load",
    "load-modify-save",
    "cycle_key",
    "delete",
    "load unknown key",
)
FULL_CYCLE = "load-modify-save"
BASELINE = "mongo_sessions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--iterations", type=int, default=1000, help="timed calls per operation and engine"
    )
    parser.add_argument(
        "--warmup", type=int, default=100, help="untimed calls before the timed ones"
    )
    parser.add_argument(
        "--count-calls", type=int, default=5, help="calls per operation to count commands on"
    )
    parser.add_argument("--output", help="results folder (default: loadtests/results/<ts>-ops/)")


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


def _mongo_engine(listener: CommandCounter, server: str) -> Engine:
    from django.conf import settings

    from mongo_sessions import connection
    from mongo_sessions.session import SessionStore

    def count(call: Callable[[], Any]) -> list[str]:
        listener.commands.clear()
        call()
        return list(listener.commands)

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
        count=count,
        counting_on=on,
        counting_off=off,
    )


def _cache_engine(redis_url: str | None) -> Engine:
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

    def count_locmem(call: Callable[[], Any]) -> list[str]:
        calls.clear()
        call()
        return list(calls)

    return Engine(
        key="cache",
        label="cache (locmem)",
        unit="cache calls (local memory: no server; REDIS_URL not set)",
        server="Django LocMemCache in this process (REDIS_URL not set)",
        store_class=SessionStore,
        count=count_locmem,
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


def _db_engine(database_url: str | None) -> Engine:
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

    def count(call: Callable[[], Any]) -> list[str]:
        recorder.statements.clear()
        call()
        return list(recorder.statements)

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
        count=count,
        counting_on=on,
        counting_off=off,
    )


# --- the operations -----------------------------------------------------------------


def random_key() -> str:
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS
    from django.utils.crypto import get_random_string

    return get_random_string(32, VALID_KEY_CHARS)


def new_session(engine: Engine) -> str:
    store = engine.store_class()
    store["cart"] = dict(CART)
    store["visits"] = 1
    store.save()
    key = str(store.session_key)
    engine.created_keys.append(key)
    return key


class Operation:
    """One operation: ``prepare`` (untimed) returns the argument of ``call`` (timed)."""

    def __init__(self, engine: Engine, name: str, calls: int) -> None:
        self.engine = engine
        self.name = name
        self.store = engine.store_class
        self.key = new_session(engine)
        # delete needs a session of its own per call: made up front, untimed.
        self.to_delete = [new_session(engine) for _ in range(calls)] if name == "delete" else []

    def prepare(self) -> Any:
        if self.name == "cycle_key":
            session = self.store(self.key)
            session.get("cart")  # loaded, as it is when login() cycles it
            return session
        if self.name == "delete":
            return self.to_delete.pop()
        if self.name == "load unknown key":
            return random_key()
        return None

    def call(self, arg: Any) -> Any:
        name = self.name
        if name == "create":
            session = self.store()
            session["cart"] = dict(CART)
            session["visits"] = 1
            session.save()
            self.engine.created_keys.append(session.session_key)
            return session.session_key
        if name == "load":
            return self.store(self.key).get("cart")
        if name == "load-modify-save":
            session = self.store(self.key)
            session["visits"] = session.get("visits", 0) + 1
            session.save()
            return session["visits"]
        if name == "cycle_key":
            arg.cycle_key()
            self.key = arg.session_key
            self.engine.created_keys.append(self.key)
            return self.key
        if name == "delete":
            self.store(arg).delete()
            return arg
        if name == "load unknown key":
            return self.store(arg).get("cart")
        raise ValueError(name)

    def check(self, arg: Any, value: Any) -> None:
        """Fail loudly when an operation does not do what it should (counting pass)."""
        name = self.name
        ok = True
        if name == "load":
            ok = value == CART
        elif name == "load unknown key":
            ok = value is None
        elif name == "cycle_key":
            ok = self.store(value).get("cart") == CART
        elif name == "delete":
            ok = self.store(value).get("cart") is None
        elif name == "create":
            ok = self.store(value).get("cart") == CART
        if not ok:
            raise AssertionError(f"{self.engine.label}: {name} returned {value!r}")


# --- measuring ----------------------------------------------------------------------


@dataclass
class Measure:
    commands: list[str]
    cpu_us: list[float]
    wall_us: list[float]

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_us)

    @property
    def wall_median(self) -> float:
        return statistics.median(self.wall_us)


def count_commands(engine: Engine, name: str, calls: int) -> list[str]:
    """The commands of one call (the most common sequence over ``calls`` calls)."""
    engine.counting_on()
    try:
        op = Operation(engine, name, calls + 1)
        arg = op.prepare()
        op.call(arg)  # first call after the client is rebuilt: not counted
        seen: Counter[tuple[str, ...]] = Counter()
        for _ in range(calls):
            arg = op.prepare()
            result: list[Any] = []

            def one_call(arg: Any = arg, result: list[Any] = result) -> None:
                result.append(op.call(arg))

            commands = engine.count(one_call)
            op.check(arg, result[0])
            seen[tuple(commands)] += 1
    finally:
        engine.counting_off()
    return list(seen.most_common(1)[0][0])


def time_calls(
    engines: list[Engine], name: str, warmup: int, iterations: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Time ``name`` on every engine, taking turns call by call.

    Interleaving puts every engine under the same machine conditions (other
    load, CPU frequency) rather than one engine after the other.
    """
    ops = [Operation(engine, name, warmup + iterations) for engine in engines]
    samples: dict[str, tuple[list[float], list[float]]] = {e.key: ([], []) for e in engines}
    gc.collect()
    for i in range(warmup + iterations):
        for op in ops:
            arg = op.prepare()
            w0 = time.perf_counter_ns()
            c0 = time.thread_time_ns()
            op.call(arg)
            c1 = time.thread_time_ns()
            w1 = time.perf_counter_ns()
            if i >= warmup:
                cpu, wall = samples[op.engine.key]
                cpu.append((c1 - c0) / 1000)
                wall.append((w1 - w0) / 1000)
    return samples


# --- setup and cleanup ----------------------------------------------------------------


def configure_django(mongo_url: str, collection: str, listener: CommandCounter, tmp: Path) -> None:
    import django
    from django.conf import settings

    redis_url = os.environ.get("REDIS_URL")
    database_url = os.environ.get("DATABASE_URL")
    if redis_url:
        cache = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"loadtests-ops-{secrets.token_hex(4)}",
        }
    else:
        cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ops"}
    if database_url:
        parts = urlsplit(database_url)
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
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


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mongo-sessions-ops-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- the command ----------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    folder = new_results_folder(args.output, suffix="-ops")
    print(f"Results folder: {folder}")
    notes = []
    if not os.environ.get("REDIS_URL"):
        notes.append("REDIS_URL is not set: the cache engine runs on local memory (locmem).")
    if not os.environ.get("DATABASE_URL"):
        notes.append("DATABASE_URL is not set: the db engine runs on SQLite.")
    for note in notes:
        print(note)
    with _workdir() as tmp, mongo_for_run(tmp / "mongo") as (mongo_url, embedded):
        listener = CommandCounter()
        configure_django(mongo_url, f"ops_{secrets.token_hex(6)}", listener, tmp)
        engines = [
            _mongo_engine(listener, describe_mongo(mongo_url, embedded)),
            _cache_engine(os.environ.get("REDIS_URL")),
            _db_engine(os.environ.get("DATABASE_URL")),
        ]
        try:
            results = measure(engines, args)
        finally:
            cleanup(engines)
    text = render(engines, results, args, notes, embedded)
    (folder / "ops.md").write_text(text)
    (folder / "ops.json").write_text(json.dumps(to_json(engines, results, args), indent=2))
    print()
    print(text)
    print(f"Written to {folder}")
    return 0


def measure(engines: list[Engine], args: argparse.Namespace) -> dict[tuple[str, str], Measure]:
    results: dict[tuple[str, str], Measure] = {}
    # Counting first, with the hooks installed; then timing, without them.
    for engine in engines:
        engine.counting_off()
        for name in OPERATIONS:
            results[engine.key, name] = Measure(
                count_commands(engine, name, args.count_calls), [], []
            )
    for name in OPERATIONS:
        print(f"timing {name}...", flush=True)
        samples = time_calls(engines, name, args.warmup, args.iterations)
        for engine in engines:
            results[engine.key, name].cpu_us, results[engine.key, name].wall_us = samples[
                engine.key
            ]
    return results


def _commands_cell(commands: list[str]) -> str:
    if not commands:
        return "0"
    return f"{len(commands)}: {', '.join(commands)}"


def render(
    engines: list[Engine],
    results: dict[tuple[str, str], Measure],
    args: argparse.Namespace,
    notes: list[str],
    embedded: bool,
) -> str:
    base = engines[0]
    others = engines[1:]
    lines = [
        "# Per-operation cost of the session engines",
        "",
        f"- {args.iterations} timed calls per operation and engine after {args.warmup} "
        "untimed, the engines taking turns call by call; medians. Client CPU: "
        "time.thread_time_ns() around each call (user and kernel time of the calling thread).",
        f"- Machine: {machine()}; the stores run on this machine too.",
        f"- Commit: {git_revision()}",
        "",
        "Measured against:",
        "",
        *(f"- {e.label}: {e.server}" for e in engines),
        "",
        *(f"Note: {n}" for n in notes),
        "",
        "## Commands to the store per call",
        "",
        "Counted on separate calls from the timed ones: "
        + "; ".join(f"{e.label}: {e.unit}" for e in engines)
        + ".",
        "",
        report.markdown_table(
            ["Operation", *(e.label for e in engines)],
            [
                [name, *(_commands_cell(results[e.key, name].commands) for e in engines)]
                for name in OPERATIONS
            ],
        ),
        "",
        "## Median client CPU per call (µs)",
        "",
        f"Ratio: engine ÷ {base.label} (above 1: the engine costs the client more CPU).",
        "",
        report.markdown_table(
            [
                "Operation",
                *(e.label for e in engines),
                *(f"{e.label} ÷ {base.label}" for e in others),
            ],
            [
                [
                    name,
                    *(round(results[e.key, name].cpu_median) for e in engines),
                    *(
                        report.ratio(
                            results[e.key, name].cpu_median, results[base.key, name].cpu_median
                        )
                        for e in others
                    ),
                ]
                for name in OPERATIONS
            ],
        ),
        "",
        "## Median wall time per call (µs, includes the store's own time)",
        "",
        report.markdown_table(
            [
                "Operation",
                *(e.label for e in engines),
                *(f"{e.label} ÷ {base.label}" for e in others),
            ],
            [
                [
                    name,
                    *(round(results[e.key, name].wall_median) for e in engines),
                    *(
                        report.ratio(
                            results[e.key, name].wall_median,
                            results[base.key, name].wall_median,
                        )
                        for e in others
                    ),
                ]
                for name in OPERATIONS
            ],
        ),
        "",
    ]
    if embedded:
        lines += [
            "The MongoDB server is the embedded SecantusDB, a pure-Python stand-in far slower "
            "than mongod: its wall times overstate what a real deployment sees. The command "
            "counts do not depend on the server. The client CPU mostly does not either, but it "
            "includes the kernel's share of each round trip and grows somewhat when the answer "
            "takes long (caches go cold while the thread waits), so against the embedded "
            "server the mongo_sessions CPU figures lean pessimistic.",
            "",
        ]
    lines += [
        "## Full request cycle (load, modify, save): client CPU",
        "",
    ]
    base_cpu = results[base.key, FULL_CYCLE].cpu_median
    for e in engines:
        cpu = results[e.key, FULL_CYCLE].cpu_median
        cmds = results[e.key, FULL_CYCLE].commands
        versus = "" if e is base else f", {report.ratio(cpu, base_cpu)} {base.label}"
        lines.append(
            f"- {e.label}: {cpu:,.0f} µs per request ({len(cmds)} store commands{versus}) "
            f"- {e.server}"
        )
    lines.append("")
    return "\n".join(lines)


def to_json(
    engines: list[Engine], results: dict[tuple[str, str], Measure], args: argparse.Namespace
) -> dict[str, Any]:
    return {
        "iterations": args.iterations,
        "warmup": args.warmup,
        "engines": {e.key: {"label": e.label, "server": e.server, "unit": e.unit} for e in engines},
        "operations": {
            name: {
                e.key: {
                    "commands": results[e.key, name].commands,
                    "cpu_us_median": results[e.key, name].cpu_median,
                    "cpu_us_p90": _quantile(results[e.key, name].cpu_us, 0.9),
                    "wall_us_median": results[e.key, name].wall_median,
                    "wall_us_p90": _quantile(results[e.key, name].wall_us, 0.9),
                }
                for e in engines
            }
            for name in OPERATIONS
        },
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
