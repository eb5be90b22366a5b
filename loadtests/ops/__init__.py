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
is an embedded SecantusDB on 127.0.0.1 unless MONGO_SESSIONS_URL is set;
``--start redis,postgresql`` starts a throwaway Redis and PostgreSQL for the run.

Modules: ``engines`` (each engine and how to count what it sends),
``measure`` (the operations, as data, and the counting and timing),
``render`` (the Markdown and JSON results).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from mongo_sessions.testing import CommandCounter

from ..results import new_results_folder
from ..stores import add_start_argument, describe_mongo, mongo_for_run, started_stores
from .engines import cache_engine, cleanup, configure_django, db_engine, mongo_engine
from .measure import measure
from .render import render, to_json


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
    add_start_argument(parser)
    parser.add_argument("--output", help="results folder (default: loadtests/results/<ts>-ops/)")


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; write ops.md and ops.json to the results folder; return 0."""
    folder = new_results_folder(args.output, suffix="-ops")
    print(f"Results folder: {folder}")
    tmp = Path(tempfile.mkdtemp(prefix="mongo-sessions-ops-"))
    try:
        with started_stores(args.start), mongo_for_run(tmp / "mongo") as (mongo_url, embedded):
            notes = _fallback_notes()
            listener = CommandCounter()
            configure_django(mongo_url, f"ops_{secrets.token_hex(6)}", listener, tmp)
            engines = [
                mongo_engine(listener, describe_mongo(mongo_url, embedded)),
                cache_engine(os.environ.get("REDIS_URL")),
                db_engine(os.environ.get("DATABASE_URL")),
            ]
            try:
                results = measure(engines, args)
            finally:
                cleanup(engines)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = render(engines, results, args, notes, embedded)
    (folder / "ops.md").write_text(text)
    (folder / "ops.json").write_text(json.dumps(to_json(engines, results, args), indent=2))
    print()
    print(text)
    print(f"Written to {folder}")
    return 0


def _fallback_notes() -> list[str]:
    """Say (and return) which engines run without their server."""
    notes = []
    if not os.environ.get("REDIS_URL"):
        notes.append("REDIS_URL is not set: the cache engine runs on local memory (locmem).")
    if not os.environ.get("DATABASE_URL"):
        notes.append("DATABASE_URL is not set: the db engine runs on SQLite.")
    for note in notes:
        print(note)
    return notes
