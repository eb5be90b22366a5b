"""``python -m loadtests run``: the demo stack under Locust, once per session engine.

For each engine it starts ``example_project/manage.py rundemo`` on 127.0.0.1
(with the embedded SecantusDB unless ``MONGO_SESSIONS_URL`` is set), runs
Locust headless for a bounded time against it, counts the sessions left in
the store, stops the demo by its PID, and writes Locust's CSV files and HTML
report, a chart and a summary into the results folder.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import report
from .common import (
    LOADTESTS_DIR,
    LOOPBACK,
    MANAGE_PY,
    REPO_ROOT,
    describe_mongo,
    describe_postgres,
    describe_redis,
    describe_sqlite,
    free_port,
    git_revision,
    machine,
    mongo_client,
    new_results_folder,
    secantus_version,
    stop_process,
)

ENGINES = ("mongo_sessions", "cache", "db", "signed_cookies")
BASELINE = "mongo_sessions"
LOCUSTFILE = LOADTESTS_DIR / "locustfile.py"
LOCUST_CONF = LOADTESTS_DIR / "locust.conf"
DEMO_COLLECTION = "mongo_sessions"  # MONGO_SESSIONS_COLLECTION of example_project
CACHE_KEY_PATTERN = "*django.contrib.sessions.cache*"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engines",
        default=BASELINE,
        help="comma-separated session engines to run one after the other: "
        f"{', '.join(ENGINES)} (default: {BASELINE})",
    )
    parser.add_argument("-u", "--users", type=int, help="Locust users (default: locust.conf)")
    parser.add_argument(
        "-r", "--spawn-rate", type=float, help="users started per second (default: locust.conf)"
    )
    parser.add_argument(
        "-t",
        "--run-time",
        help="how long each engine is loaded, e.g. 30s, 2m (default: locust.conf)",
    )
    parser.add_argument(
        "--workers", type=int, default=3, help="gunicorn sync workers, the same for every engine"
    )
    parser.add_argument(
        "--save-every-request",
        action="store_true",
        help="run the demo with SESSION_SAVE_EVERY_REQUEST = True (and check that reads save)",
    )
    parser.add_argument(
        "--asgi",
        action="store_true",
        help="serve the demo with uvicorn (rundemo --asgi) instead of gunicorn",
    )
    parser.add_argument(
        "--touch-after",
        type=float,
        default=None,
        help="run the demo with MONGO_SESSIONS_TOUCH_AFTER = this many seconds (default: off)",
    )
    parser.add_argument(
        "--real-password-hashing",
        action="store_true",
        help="keep Django's PBKDF2 for logins (by default the demo hashes with MD5 during the "
        "load test, so that logins measure the session store, not password hashing)",
    )
    parser.add_argument(
        "--output",
        help="results folder (default: loadtests/results/<timestamp>/)",
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=120.0, help="seconds to wait for the demo"
    )
    parser.add_argument(
        "locust_args",
        nargs=argparse.REMAINDER,
        help="after --: more Locust options, e.g. -- --max-p95-ms 500 --think-time 0.5",
    )


@dataclass
class Store:
    """What an engine's figures were measured against."""

    short: str
    long: str


@dataclass
class EngineResult:
    engine: str
    folder: Path
    store: Store | None = None
    exit_code: int | None = None
    error: str | None = None
    stats: list[report.EndpointStats] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    verdict: dict[str, Any] = field(default_factory=dict)
    sessions_before: int | None = None
    sessions_after: int | None = None
    sessions_note: str = ""

    @property
    def total(self) -> report.EndpointStats | None:
        return next((s for s in self.stats if s.name == "Aggregated"), None)

    @property
    def passed(self) -> bool:
        return self.error is None and self.exit_code == 0


def main(args: argparse.Namespace) -> int:
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        print(f"Unknown engine(s) {unknown}: choose from {', '.join(ENGINES)}", file=sys.stderr)
        return 2
    extra = list(args.locust_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    folder = new_results_folder(args.output)
    print(f"Results folder: {folder}")
    if "cache" in engines and not os.environ.get("REDIS_URL") and args.workers > 1:
        print(
            "Warning: REDIS_URL is not set, so the cache engine runs on local memory, which "
            f"each of the {args.workers} gunicorn workers has to itself: sessions are lost "
            "between workers and the checks will count that as failures (set REDIS_URL, "
            "or use --workers 1).",
            file=sys.stderr,
        )
    # Stop the children on SIGTERM too, not only on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    results: list[EngineResult] = []
    for engine in engines:
        print(f"\n=== {engine} ===", flush=True)
        result = run_engine(engine, args, folder / engine, extra)
        results.append(result)
        total = result.total
        if result.error:
            print(f"{engine}: ERROR {result.error}")
        elif total is not None:
            print(
                f"{engine}: {total.requests} requests, {total.rps:.1f}/s, "
                f"p95 {report.ms(total.p('95%'))} ms, {total.failures} failures, "
                f"exit code {result.exit_code}"
            )

    summary = summarize(results, args, folder)
    (folder / "summary.md").write_text(summary)
    (folder / "summary.json").write_text(json.dumps(summary_json(results), indent=2))
    if len(results) > 1 and all(r.total for r in results):
        report.draw_comparison_chart(
            [r.engine for r in results],
            [r.total.rps for r in results if r.total],
            [r.total.p("95%") or 0 for r in results if r.total],
            folder / "comparison.png",
        )
    print()
    print(summary)
    print(f"Written to {folder}")
    return 0 if all(r.passed for r in results) else 1


# --- one engine ------------------------------------------------------------------


def run_engine(
    engine: str, args: argparse.Namespace, folder: Path, extra: list[str]
) -> EngineResult:
    folder.mkdir(parents=True, exist_ok=True)
    result = EngineResult(engine=engine, folder=folder)
    data_dir = Path(tempfile.mkdtemp(prefix=f"mongo-sessions-loadtest-{engine}-"))
    port = free_port()
    user_url = os.environ.get("MONGO_SESSIONS_URL", "").strip()
    command = [
        sys.executable, str(MANAGE_PY), "rundemo",
        "--host", LOOPBACK,
        "--port", str(port),
        "--workers", str(args.workers),
        "--data-dir", str(data_dir),
        "--startup-timeout", str(args.startup_timeout),
    ]  # fmt: skip
    if args.asgi:
        command.append("--asgi")
    if user_url:
        mongo_url = user_url
    else:
        mongo_port = free_port()
        command += ["--mongo-port", str(mongo_port)]
        mongo_url = f"mongodb://{LOOPBACK}:{mongo_port}/demo"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "DEMO_SESSION_ENGINE": engine,
        "DEMO_SESSION_SAVE_EVERY_REQUEST": "1" if args.save_every_request else "0",
        "DEMO_FAST_PASSWORD_HASHER": "0" if args.real_password_hashing else "1",
        # Off unless asked: the demo's own default is 300 s.
        "MONGO_SESSIONS_TOUCH_AFTER": "" if args.touch_after is None else str(args.touch_after),
        "PYTHONUNBUFFERED": "1",
    }
    demo_log = (folder / "demo.log").open("wb")
    print(f"Starting the demo ({engine}) on {LOOPBACK}:{port}...", flush=True)
    demo = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=demo_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_demo(port, demo, args.startup_timeout, folder / "demo.log")
        result.store = describe_store(engine, mongo_url, not user_url, data_dir, args.workers)
        print(f"Measuring against: {result.store.long}", flush=True)
        result.sessions_before, _ = count_sessions(engine, mongo_url, data_dir)
        result.exit_code = _run_locust(engine, args, port, folder, extra)
        result.sessions_after, result.sessions_note = count_sessions(engine, mongo_url, data_dir)
    except Exception as e:
        result.error = f"{type(e).__name__}: {e}"
    finally:
        print(f"Stopping the demo (pid {demo.pid})...", flush=True)
        stop_process(demo, signal.SIGINT, timeout=45)
        demo_log.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    prefix = folder / "locust"
    if prefix.with_name("locust_stats.csv").exists():
        result.stats = report.read_stats(prefix)
        result.failures = report.read_failures(prefix)
        history = report.read_history(prefix)
        if history.seconds:
            store = result.store.short if result.store else "?"
            report.draw_history_chart(
                history, f"{engine} on {store}: requests/s and latency", folder / "chart.png"
            )
    verdict = prefix.with_name("locust_verdict.json")
    if verdict.exists():
        result.verdict = json.loads(verdict.read_text())
    elif result.error is None:
        result.error = "Locust wrote no verdict (see locust.log)"
    return result


def _wait_for_demo(port: int, demo: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"the demo exited with status {demo.returncode}:\n{tail}")
        if _health(port) == 200:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the demo did not answer /health/ within {timeout:g} s")


def _health(port: int) -> int | None:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        conn.request("GET", "/health/", headers={"Accept": "application/json"})
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _run_locust(
    engine: str, args: argparse.Namespace, port: int, folder: Path, extra: list[str]
) -> int:
    command = [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--config", str(LOCUST_CONF),
        "--host", f"http://{LOOPBACK}:{port}",
        "--csv", str(folder / "locust"),
        "--html", str(folder / "report.html"),
        "--session-engine", engine,
    ]  # fmt: skip
    if args.save_every_request:
        command.append("--save-every-request")
    if args.touch_after is not None:
        command += ["--touch-after", str(args.touch_after)]
    if args.users is not None:
        command += ["--users", str(args.users)]
    if args.spawn_rate is not None:
        command += ["--spawn-rate", str(args.spawn_rate)]
    if args.run_time is not None:
        command += ["--run-time", args.run_time]
    command += extra
    run_time = _seconds(args.run_time or _conf_value("run-time", "60s"))
    limit = run_time + _seconds(_conf_value("stop-timeout", "5s")) + 90
    print(f"Running Locust for {run_time} s (log: {folder / 'locust.log'})...", flush=True)
    with (folder / "locust.log").open("wb") as log:
        locust = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return locust.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            stop_process(locust, signal.SIGTERM, timeout=30)
            raise RuntimeError(f"Locust did not finish within {limit} s") from None
        finally:
            stop_process(locust, signal.SIGTERM, timeout=30)


def _conf_value(key: str, default: str) -> str:
    """A setting of locust.conf, or its LOCUST_* environment variable."""
    env = os.environ.get("LOCUST_" + key.upper().replace("-", "_"))
    if env:
        return env
    for line in LOCUST_CONF.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            return value.strip()
    return default


def _seconds(span: str) -> int:
    """Seconds in a Locust time span ("90", "30s", "1m30s", "2h").

    Parsed here: importing locust would monkey-patch this process with gevent.
    """
    span = span.strip()
    if span.isdigit():
        return int(span)
    parts = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?", span)
    if not parts or not any(parts.groups()):
        raise ValueError(f"not a time span: {span!r} (use e.g. 30s, 2m, 1h30m)")
    hours, minutes, seconds = (int(g or 0) for g in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


# --- stores ----------------------------------------------------------------------


def describe_store(
    engine: str, mongo_url: str, embedded: bool, data_dir: Path, workers: int
) -> Store:
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


def count_sessions(engine: str, mongo_url: str, data_dir: Path) -> tuple[int | None, str]:
    """How many sessions the engine's store holds now, and how that was counted."""
    if engine == "mongo_sessions":
        from pymongo.uri_parser import parse_uri

        database = parse_uri(mongo_url)["database"] or "test"  # the package's default
        with mongo_client(mongo_url) as client:
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


# --- summary ---------------------------------------------------------------------


def _sessions_cell(r: EngineResult) -> str:
    if r.sessions_after is None:
        return "n/a"
    if r.sessions_before:
        return f"{r.sessions_after:,} (+{r.sessions_after - r.sessions_before:,})"
    return f"{r.sessions_after:,}"


def _verdict_cell(r: EngineResult) -> str:
    if r.error:
        return "ERROR"
    if r.exit_code == 0:
        return "pass"
    return f"FAIL (exit {r.exit_code})"


def summarize(results: list[EngineResult], args: argparse.Namespace, folder: Path) -> str:
    first = next((r.verdict for r in results if r.verdict), {})
    lines = [
        f"# Load test {folder.name}",
        "",
        f"- Scenario: loadtests/locustfile.py, {first.get('users', '?')} users "
        f"(spawn rate {first.get('spawn_rate', '?')}/s), {first.get('run_time', '?')} s per "
        f"engine, {_think(first.get('think_time'))}",
        f"- Server: the demo site (example_project) under "
        f"{'uvicorn (ASGI)' if args.asgi else 'gunicorn'}, {args.workers} "
        f"{'worker processes' if args.asgi else 'sync workers'} on {LOOPBACK}; "
        f"SESSION_SAVE_EVERY_REQUEST "
        f"{'= True' if args.save_every_request else 'off (Django default)'}; "
        f"MONGO_SESSIONS_TOUCH_AFTER "
        f"{'off' if args.touch_after is None else f'= {args.touch_after:g} s'}; password hasher "
        f"{'PBKDF2 (Django default)' if args.real_password_hashing else 'MD5 (load-test switch)'}",
        f"- Thresholds (exit code): failure ratio <= {first.get('max_fail_ratio', '?')}, "
        f"p95 <= {first.get('max_p95_ms', '?')} ms",
        f"- Machine: {machine()}; Locust, server and stores all on this machine",
        f"- Commit: {git_revision()}",
        "",
        "## Results",
        "",
    ]
    rows = []
    for r in results:
        t = r.total
        rows.append(
            [
                r.engine,
                r.store.short if r.store else "n/a",
                t.requests if t else None,
                round(t.rps, 1) if t else None,
                report.ms(t.p("50%")) if t else None,
                report.ms(t.p("95%")) if t else None,
                report.ms(t.p("99%")) if t else None,
                report.ms(t.max_ms) if t else None,
                f"{t.failures} ({t.fail_ratio:.2%})" if t else "n/a",
                _sessions_cell(r),
                _verdict_cell(r),
            ]
        )
    lines.append(
        report.markdown_table(
            [
                "Engine",
                "Measured against",
                "Requests",
                "Req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "Max ms",
                "Failures",
                "Sessions left",
                "Result",
            ],
            rows,
        )
    )
    lines += ["", "Stores:"]
    for r in results:
        if r.store:
            lines.append(f"- {r.engine}: {r.store.long}")
        if r.sessions_note:
            lines.append(f"  - sessions left: {r.sessions_note}")
    base = next((r for r in results if r.engine == BASELINE and r.total), None)
    others = [r for r in results if r is not base and r.total]
    if base is not None and others and base.total is not None:
        lines += [
            "",
            f"## Compared with {BASELINE}",
            "",
            f"Throughput ratio: engine req/s ÷ {BASELINE} req/s (above 1: more requests served). "
            f"p95 ratio: engine p95 ÷ {BASELINE} p95 (above 1: slower).",
            "",
        ]
        ratio_rows = []
        for r in [base, *others]:
            t = r.total
            assert t is not None
            ratio_rows.append(
                [
                    r.engine,
                    r.store.short if r.store else "n/a",
                    round(t.rps, 1),
                    report.ratio(t.rps, base.total.rps),
                    report.ms(t.p("95%")),
                    report.ratio(t.p("95%"), base.total.p("95%")),
                ]
            )
        lines.append(
            report.markdown_table(
                [
                    "Engine",
                    "Measured against",
                    "Req/s",
                    "Throughput ratio",
                    "p95 ms",
                    "p95 ratio",
                ],
                ratio_rows,
            )
        )
    for r in results:
        lines += ["", f"## {r.engine}", ""]
        if r.error:
            lines += [f"Error: {r.error}", ""]
        if r.verdict.get("problems"):
            lines += [f"Thresholds not met: {'; '.join(r.verdict['problems'])}", ""]
        if r.stats:
            lines.append(
                report.markdown_table(
                    ["Request", "Count", "Failures", "p50 ms", "p95 ms", "p99 ms", "Req/s"],
                    [
                        [
                            f"{s.method} {s.name}".strip(),
                            s.requests,
                            s.failures,
                            report.ms(s.p("50%")),
                            report.ms(s.p("95%")),
                            report.ms(s.p("99%")),
                            round(s.rps, 1),
                        ]
                        for s in r.stats
                    ],
                )
            )
        for f in r.failures[:10]:
            lines.append(
                f"- {f.get('Occurrences')} x {f.get('Method')} {f.get('Name')}: {f.get('Error')}"
            )
        lines += [
            "",
            f"Files: {r.engine}/locust_stats.csv, locust_stats_history.csv, "
            "locust_failures.csv, report.html, chart.png, locust.log, demo.log",
        ]
    return "\n".join(lines) + "\n"


def _think(value: Any) -> str:
    if not value:
        return "no think time (each user sends its next request when the last one is answered)"
    return f"think time 0-{value:g} s between tasks"


def summary_json(results: list[EngineResult]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        t = r.total
        out.append(
            {
                "engine": r.engine,
                "store": r.store.long if r.store else None,
                "exit_code": r.exit_code,
                "error": r.error,
                "requests": t.requests if t else None,
                "failures": t.failures if t else None,
                "rps": t.rps if t else None,
                "percentiles_ms": t.percentiles if t else None,
                "sessions_before": r.sessions_before,
                "sessions_after": r.sessions_after,
                "verdict": r.verdict,
            }
        )
    return out
