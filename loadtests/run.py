"""``python -m loadtests run``: the demo stack under Locust, once per session engine.

For each engine it starts the demo (``example_project/manage.py rundemo`` with
``DJANGO_SETTINGS_MODULE=loadtests.demo_settings``; under uvicorn with
``--asgi``; with ``MONGO_SESSIONS_TOUCH_AFTER`` set by ``--touch-after``) on
127.0.0.1 through ``demo.harness``, with the embedded SecantusDB unless
``MONGO_SESSIONS_URL`` is set; runs Locust headless for a bounded time against it; counts the
sessions left in the store; and stops the demo by its PID. Per engine the
results folder keeps Locust's own output: its CSV statistics and its HTML
report (requests/s, response times and users over time). The summary
(Markdown and JSON) is built from Locust's statistics; with more than one
engine, ``comparison.png`` shows the engines' throughput and p95 side by side,
which no single report does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from demo.harness import ChildProcess, demo_server, free_port

from . import report
from .matrix import BASELINE, SESSION_ENGINES
from .results import LOADTESTS_DIR, REPO_ROOT, new_results_folder
from .stores import add_start_argument, count_sessions, describe_store, started_stores
from .summary import EngineResult, summarize, summary_json

LOCUSTFILE = LOADTESTS_DIR / "locustfile.py"
LOCUST_CONF = LOADTESTS_DIR / "locust.conf"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engines",
        default=BASELINE,
        help="comma-separated session engines to run one after the other: "
        f"{', '.join(SESSION_ENGINES)} (default: {BASELINE})",
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
        "--workers",
        type=int,
        default=3,
        help="gunicorn sync workers (uvicorn worker processes with --asgi), the same for "
        "every engine",
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
    add_start_argument(parser)
    parser.add_argument("--output", help="results folder (default: loadtests/results/<timestamp>/)")
    parser.add_argument(
        "--startup-timeout", type=float, default=120.0, help="seconds to wait for the demo"
    )
    parser.add_argument(
        "locust_args",
        nargs=argparse.REMAINDER,
        help="after --: more Locust options, e.g. -- --max-p95-ms 500 --think-time 0.5",
    )


def main(args: argparse.Namespace) -> int:
    """Run each engine of ``--engines``; write the summary; return 0 if all passed, else 1."""
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in SESSION_ENGINES]
    if unknown or not engines:
        print(
            f"Unknown engine(s) {unknown}: choose from {', '.join(SESSION_ENGINES)}",
            file=sys.stderr,
        )
        return 2
    extra = list(args.locust_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    folder = new_results_folder(args.output)
    print(f"Results folder: {folder}")
    # Stop the children on SIGTERM too, not only on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with started_stores(args.start):
        _warn_locmem(engines, args.workers)
        results = [_run_and_report(engine, args, folder / engine, extra) for engine in engines]
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


def _warn_locmem(engines: list[str], workers: int) -> None:
    if "cache" in engines and not os.environ.get("REDIS_URL") and workers > 1:
        print(
            "Warning: REDIS_URL is not set, so the cache engine runs on local memory, which "
            f"each of the {workers} gunicorn workers has to itself: sessions are lost "
            "between workers and the checks will count that as failures (set REDIS_URL, "
            "use --start redis, or --workers 1).",
            file=sys.stderr,
        )


def _run_and_report(
    engine: str, args: argparse.Namespace, folder: Path, extra: list[str]
) -> EngineResult:
    print(f"\n=== {engine} ===", flush=True)
    result = run_engine(engine, args, folder, extra)
    total = result.total
    if result.error:
        print(f"{engine}: ERROR {result.error}")
    elif total is not None:
        print(
            f"{engine}: {total.requests} requests, {total.rps:.1f}/s, "
            f"p95 {report.ms(total.p('95%'))} ms, {total.failures} failures, "
            f"exit code {result.exit_code}"
        )
    return result


# --- one engine ------------------------------------------------------------------


def run_engine(
    engine: str, args: argparse.Namespace, folder: Path, extra: list[str]
) -> EngineResult:
    """Start the demo on ``engine``, load it with Locust, stop it; read Locust's output."""
    folder.mkdir(parents=True, exist_ok=True)
    result = EngineResult(engine=engine, folder=folder)
    data_dir = Path(tempfile.mkdtemp(prefix=f"mongo-sessions-loadtest-{engine}-"))
    user_url = os.environ.get("MONGO_SESSIONS_URL", "").strip()
    mongo_port = free_port()
    mongo_url = user_url or f"mongodb://127.0.0.1:{mongo_port}/demo"
    demo = _demo(
        engine, args, data_dir, folder, [] if user_url else ["--mongo-port", str(mongo_port)]
    )
    try:
        print(f"Starting the demo ({engine}) on {demo.url}...", flush=True)
        demo.start()
        result.store = describe_store(engine, mongo_url, not user_url, data_dir, args.workers)
        print(f"Measuring against: {result.store.long}", flush=True)
        result.sessions_before, _ = count_sessions(engine, mongo_url, data_dir)
        result.exit_code = _run_locust(engine, args, demo.url, folder, extra)
        result.sessions_after, result.sessions_note = count_sessions(engine, mongo_url, data_dir)
    except Exception as e:
        result.error = f"{type(e).__name__}: {e}"
    finally:
        print(f"Stopping the demo (pid {demo.pid})...", flush=True)
        demo.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    prefix = folder / "locust"
    if prefix.with_name("locust_stats.csv").exists():
        result.stats = report.read_stats(prefix)
        result.failures = report.read_failures(prefix)
    verdict = prefix.with_name("locust_verdict.json")
    if verdict.exists():
        result.verdict = json.loads(verdict.read_text())
    elif result.error is None:
        result.error = "Locust wrote no verdict (see locust.log)"
    return result


def _demo(
    engine: str, args: argparse.Namespace, data_dir: Path, folder: Path, more: list[str]
) -> ChildProcess:
    """rundemo (under uvicorn with ``--asgi``) with the load test's settings and engine;
    stopped with SIGINT (Ctrl-C)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "loadtests.demo_settings",
        "DEMO_SESSION_ENGINE": engine,
        "DEMO_SESSION_SAVE_EVERY_REQUEST": "1" if args.save_every_request else "0",
        "DEMO_FAST_PASSWORD_HASHER": "0" if args.real_password_hashing else "1",
        # Off unless asked: the demo's own default is 300 s.
        "MONGO_SESSIONS_TOUCH_AFTER": "" if args.touch_after is None else str(args.touch_after),
        "PYTHONUNBUFFERED": "1",
    }
    if args.asgi:
        more = [*more, "--asgi"]
    demo = demo_server(
        data_dir=data_dir,
        log_path=folder / "demo.log",
        env=env,
        workers=args.workers,
        args=["--startup-timeout", str(args.startup_timeout), *more],
        start_timeout=args.startup_timeout,
    )
    demo.stop_signal = signal.SIGINT
    return demo


def _run_locust(
    engine: str, args: argparse.Namespace, host: str, folder: Path, extra: list[str]
) -> int:
    """Run Locust headless against ``host`` until it ends (bounded); return its exit code."""
    command = [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--config", str(LOCUST_CONF),
        "--host", host,
        "--csv", str(folder / "locust"),
        "--html", str(folder / "report.html"),
        "--session-engine", engine,
    ]  # fmt: skip
    if args.save_every_request:
        command.append("--save-every-request")
    if args.touch_after is not None:
        command += ["--touch-after", str(args.touch_after)]
    for flag, value in (("--users", args.users), ("--spawn-rate", args.spawn_rate)):
        if value is not None:
            command += [flag, str(value)]
    if args.run_time is not None:
        command += ["--run-time", args.run_time]
    command += extra
    run_time = _seconds(args.run_time or _conf_value("run-time", "60s"))
    limit = run_time + _seconds(_conf_value("stop-timeout", "5s")) + 90
    print(f"Running Locust for {run_time} s (log: {folder / 'locust.log'})...", flush=True)
    locust = ChildProcess(
        name="Locust", command=command, log_path=folder / "locust.log", cwd=REPO_ROOT
    )
    locust.spawn()
    try:
        return locust.wait(timeout=limit)
    finally:
        locust.stop()


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
