"""One run of ``ops``, in a process of its own: every engine configured here, measured, saved.

``python -m loadtests ops`` starts ``python -m loadtests.ops.single`` once per
run (``--runs``), each time against a fresh MongoDB server, so that no run
inherits another's interpreter, caches or server state. This process
configures Django once for all the engines, counts what each operation sends
to each store, times the operations in shuffled rounds, measures the bytes one
session takes in each store, writes everything (with every timed sample) to
the JSON file of ``--result`` and removes what it stored.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from mongo_sessions.testing import CommandCounter

from ..stores import describe_mongo
from .configure import cleanup, configure_django
from .django_engines import cache_engine, db_engine
from .engines import Engine, mongo_engine, mongodb_backend_available, mongodb_backend_engine
from .measure import OPERATIONS, measure, stored_bytes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests.ops.single")
    parser.add_argument("--mongo-url", required=True)
    parser.add_argument("--embedded", action="store_true", help="the server is SecantusDB")
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--count-calls", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--cpu", type=int, help="run on this CPU only (before any thread starts)")
    return parser.parse_args(argv)


def build_engines(mongo_url: str, embedded: bool, with_mongodb_backend: bool) -> list[Engine]:
    """The engines of this run, mongo_sessions' first, Django's after."""
    from mongo_sessions.session import SessionStore

    class DocumentSessionStore(SessionStore):
        """The package's store writing the document format (MONGO_SESSIONS_FORMAT)."""

        session_format = "document"

    server = describe_mongo(mongo_url, embedded)
    listener = CommandCounter()  # one client for both formats: counted one engine at a time
    engines = [
        mongo_engine(listener, server, "mongo_sessions", "mongo_sessions (signed)", SessionStore),
        mongo_engine(
            listener,
            server,
            "mongo_sessions_document",
            "mongo_sessions (document)",
            DocumentSessionStore,
        ),
        cache_engine(os.environ.get("REDIS_URL")),
        db_engine(os.environ.get("DATABASE_URL")),
    ]
    if with_mongodb_backend:
        engines.append(mongodb_backend_engine(CommandCounter(), server))
    return engines


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every engine once; return what ops.json and ops.md are made of."""
    import django

    notes = []
    unavailable = mongodb_backend_available()
    if unavailable:
        notes.append(unavailable)
    tmp = Path(tempfile.mkdtemp(prefix="mongo-sessions-ops-"))
    try:
        collection = f"ops_{secrets.token_hex(6)}"
        configure_django(args.mongo_url, collection, tmp, mongodb_backend=unavailable is None)
        engines = build_engines(args.mongo_url, args.embedded, unavailable is None)
        try:
            results = measure(engines, args.warmup, args.iterations, args.count_calls, args.seed)
            sizes = {engine.key: stored_bytes(engine) for engine in engines}
        finally:
            cleanup(engines)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "python": sys.version.split()[0],
        "django": django.get_version(),
        "notes": notes,
        "engines": {
            e.key: {
                "label": e.label,
                "server": e.server,
                "unit": e.unit,
                "bytes": sizes[e.key],
                "bytes_unit": e.bytes_unit,
            }
            for e in engines
        },
        "operations": {
            op.name: {
                e.key: {
                    "commands": results[e.key, op.name].commands,
                    "cpu_us": results[e.key, op.name].cpu_us,
                    "wall_us": results[e.key, op.name].wall_us,
                }
                for e in engines
            }
            for op in OPERATIONS
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = run(args)
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
