"""``python -m loadtests ops``: what each session operation costs, engine by engine.

For create, load, load-modify-save (a full request cycle), cycle_key, delete
and load of an unknown key it measures mongo_sessions, in each of its formats
(signed, the default, and document), next to Django's cache
engine (on Redis when REDIS_URL is set, else local memory), Django's database
engine (on PostgreSQL when DATABASE_URL is set, else SQLite) and, where Django
6.1 and django-mongodb-backend are installed, Django's database engine on that
backend against the same MongoDB server:

* the commands each call sends to its store: MongoDB commands from pymongo
  command monitoring, Redis commands from the server's INFO commandstats, SQL
  statements (with the BEGIN/COMMIT of Django's transactions) from a
  database execute wrapper, cache calls for local memory;
* the median client CPU per call, ``time.process_time_ns()`` around each
  call, with no counting hook installed, every engine configured in the same
  process and the calls interleaved one by one: each round calls every
  operation on every engine once, in an order shuffled for each round; and
  the ratio of mongo_sessions to each of Django's engines, from the same rounds;
* the median wall time per call, which includes the store's own time;
* the bytes one session takes in each store;
* what importing mongo_sessions costs a site next to Django's cache engine on
  Redis (``python -X importtime`` in fresh interpreters, ``imports``).

Each run (``--runs N``, default 1) is a process of its own
(``loadtests.ops.single``) against a fresh MongoDB server: an embedded
SecantusDB on 127.0.0.1 (``--oplog-max-entries 5000``: its client-side cost
grows with its oplog) unless MONGO_SESSIONS_URL is set. With several runs the
report gives the spread over the runs. ``--start redis,postgresql`` starts a
throwaway Redis and PostgreSQL for the whole command. On a machine of two
CPUs or more the client runs on CPU 0 and the stores started here on the
others (``--no-pin`` lets them share): a server working on the client's CPU
between two of its calls leaves that CPU's caches cold for the client, which
would charge the client for the server's own work, the more so the slower the
server (the embedded SecantusDB is pure Python; Redis is C). In a deployment
the store runs on another machine.

Modules: ``engines`` (what an engine is, and mongo_sessions' and
django-mongodb-backend's engines), ``django_engines`` (Django's cache and
database engines), ``configure`` (Django set up for all of them, and the
cleanup), ``measure`` (the operations, as data, and the counting and timing),
``single`` (one run), ``imports`` (import cost), ``render`` (the Markdown, JSON
and chart).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from demo.harness import ChildProcess

from ..results import REPO_ROOT, new_results_folder
from ..stores import add_start_argument, mongo_for_run, started_stores
from .imports import measure_imports
from .render import draw_chart, render, to_json

#: Flags of the embedded SecantusDB of each run.
SECANTUS_ARGS = ["--oplog-max-entries", "5000"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--iterations", type=int, default=900, help="timed rounds (calls per operation and engine)"
    )
    parser.add_argument("--warmup", type=int, default=90, help="untimed rounds before them")
    parser.add_argument(
        "--runs", type=int, default=1, help="runs, each in a new process on a fresh server"
    )
    parser.add_argument(
        "--count-calls", type=int, default=5, help="calls per operation to count commands on"
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the shuffled order (default: random, reported)"
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        help="seconds one run may take before it is stopped (default: from the rounds)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the client and the stores it starts share every CPU (by default the "
        "client runs on CPU 0 and those stores on the others)",
    )
    parser.add_argument(
        "--import-runs",
        type=int,
        default=9,
        help="fresh interpreters per engine to measure import cost with -X importtime (0: skip)",
    )
    add_start_argument(parser)
    parser.add_argument("--output", help="results folder (default: loadtests/results/<ts>-ops/)")


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; write ops.md, ops.json and ops.png to the results folder; return 0."""
    if args.runs < 1 or args.iterations < 1 or args.warmup < 0:
        print("--runs and --iterations must be at least 1, --warmup at least 0", file=sys.stderr)
        return 2
    folder = new_results_folder(args.output, suffix="-ops")
    print(f"Results folder: {folder}")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    tmp = Path(tempfile.mkdtemp(prefix="mongo-sessions-ops-"))
    runs: list[dict[str, Any]] = []
    try:
        with started_stores(args.start) as stores:
            pinned = _can_pin() and not args.no_pin
            for store in stores if pinned else []:
                pin_process_tree(store.pid, STORE_CPUS)
            notes = _fallback_notes()
            if pinned:
                notes.append(
                    f"The client ran on CPU {CLIENT_CPU}, the stores started here on CPU(s) "
                    f"{', '.join(map(str, sorted(STORE_CPUS)))} (--no-pin: all shared)."
                )
            for n in range(1, args.runs + 1):
                print(f"\n=== run {n} of {args.runs} ===", flush=True)
                runs.append(_one_run(n, seed + n, args, folder, tmp / f"mongo-{n}", pinned))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    imports = None
    if args.import_runs > 0:
        print(
            f"\nMeasuring import cost ({args.import_runs} interpreters per engine)...", flush=True
        )
        imports = measure_imports(args.import_runs)
    text = render(runs, args, seed, notes, imports)
    (folder / "ops.md").write_text(text)
    (folder / "ops.json").write_text(json.dumps(to_json(runs, args, seed, imports), indent=2))
    draw_chart(runs, folder / "ops.png")
    print()
    print(text)
    print(f"Written to {folder} (ops.md, ops.json, ops.png, run-N.json)")
    return 0


def _one_run(
    n: int, seed: int, args: argparse.Namespace, folder: Path, storage: Path, pinned: bool
) -> dict[str, Any]:
    """One run in a new process against a fresh server; returns what it measured."""
    result = folder / f"run-{n}.json"

    def pin_server(server: ChildProcess) -> None:
        if pinned and server.pid is not None:
            pin_process_tree(server.pid, STORE_CPUS)

    with mongo_for_run(storage, SECANTUS_ARGS, on_start=pin_server) as (mongo_url, embedded):
        command = [
            sys.executable, "-m", "loadtests.ops.single",
            "--mongo-url", mongo_url,
            "--iterations", str(args.iterations),
            "--warmup", str(args.warmup),
            "--count-calls", str(args.count_calls),
            "--seed", str(seed),
            "--result", str(result),
            *(["--embedded"] if embedded else []),
            *(["--cpu", str(CLIENT_CPU)] if pinned else []),
        ]  # fmt: skip
        child = ChildProcess(
            name=f"ops run {n}",
            command=command,
            log_path=None,  # its progress goes to our output
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            die_with_parent=True,
        )
        child.spawn()
        try:
            status = child.wait(timeout=_run_timeout(args))
        finally:
            child.stop()
    if status != 0:
        raise SystemExit(f"run {n} failed with exit status {status}")
    measured: dict[str, Any] = json.loads(result.read_text())
    measured["embedded"] = embedded
    measured["seed"] = seed
    return measured


def _can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2


#: Where the client runs, and the stores the benchmark starts (see the module's docstring).
CLIENT_CPU = 0
STORE_CPUS = set(range(1, os.cpu_count() or 2))


def pin_process_tree(pid: int, cpus: set[int]) -> None:
    """Run every thread of process ``pid`` and of its child processes on ``cpus`` (Linux).

    Threads and processes started later inherit it. Processes that end meanwhile
    are skipped.
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The parent's pid is the second field after the command, which is in parentheses.
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    pending = [pid]
    while pending:
        process = pending.pop()
        pending += children.get(process, [])
        for task in Path(f"/proc/{process}/task").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), cpus)


def _run_timeout(args: argparse.Namespace) -> float:
    if args.run_timeout:
        return float(args.run_timeout)
    # Generous: 6 operations on up to 4 engines per round, against a slow server.
    return 300.0 + 1.5 * (args.warmup + args.iterations)


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
