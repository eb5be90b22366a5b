"""Smoke runs of ``python -m loadtests run`` and ``python -m loadtests ops``.

A few seconds each, so that the load test and the benchmark cannot rot: the
commands must exit with 0 and write their files and tables. Without
REDIS_URL and DATABASE_URL the commands must fall back to local memory and
SQLite on their own; with ``--start redis,postgresql`` they start a throwaway
Redis and PostgreSQL themselves (demo.harness) and stop them afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT, pid_alive

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OPERATIONS = ("create", "load", "load-modify-save", "cycle_key", "delete", "load unknown key")

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MONGO_SESSIONS_URL", "REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
        and not k.startswith(("LOCUST_", "LOADTEST_", "DEMO_"))
    }
    env.update(extra)
    return env


def _run(
    args: list[str], env: dict[str, str], timeout: float, module: str = "loadtests"
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` from the repository root; it must exit with 0."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def _load_run(out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``loadtests run`` with ``options``: five seconds, ten users, two workers, into ``out``."""
    # Ten users, so that each of the four user classes gets at least one.
    args = [
        "run",
        *options,
        "--users", "10",
        "--spawn-rate", "10",
        "--run-time", "5s",
        "--workers", "2",
        "--output", str(out),
    ]  # fmt: skip
    return _run(args, _env(), timeout=240)


@pytest.mark.no_mongo
def test_run_compares_two_engines_on_the_embedded_server(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = _load_run(out, "--engines", "mongo_sessions,db")

    for engine in ("mongo_sessions", "db"):
        folder = out / engine
        for name in (
            "locust_stats.csv",
            "locust_failures.csv",
            "report.html",
            "locust_verdict.json",
        ):
            assert (folder / name).is_file(), f"{engine}/{name} missing"
        # Locust's own report is the chart over time: nothing redraws it.
        assert "<html" in (folder / "report.html").read_text(errors="replace").lower()
        verdict = json.loads((folder / "locust_verdict.json").read_text())
        assert verdict["passed"], verdict
        assert verdict["session_engine"] == engine
        stats = (folder / "locust_stats.csv").read_text()
        # Every user class ran: visitors, shoppers, returning visitors, login churn.
        for request in ("/counter/ [new session]", "/cart/add/", "/session/", "/login/ [log in]"):
            assert request in stats, f"{engine}: no {request!r} request"
    assert (out / "comparison.png").read_bytes().startswith(PNG_SIGNATURE)

    summary = json.loads((out / "summary.json").read_text())
    assert [s["engine"] for s in summary] == ["mongo_sessions", "db"]
    for s in summary:
        assert s["requests"] > 0 and s["failures"] == 0, s
        assert s["sessions_after"] is not None, s
    assert "SecantusDB" in summary[0]["store"]
    assert "SQLite" in summary[1]["store"]

    table = (out / "summary.md").read_text()
    assert "| Engine " in table and "| Sessions left " in table
    assert "## Compared with mongo_sessions" in table
    assert "## Compared with mongo_sessions" in proc.stdout  # printed as well
    assert "| mongo_sessions | SecantusDB" in proc.stdout


def test_ops_counts_commands_and_falls_back_without_redis_and_postgres(
    tmp_path: Path, mongo_url: str
) -> None:
    """``ops`` without Redis and PostgreSQL: its JSON, samples, chart, report and output.

    Over 60 lines on purpose: every assertion reads what one run of the command
    wrote (two processes, each on a fresh server); a test per file would each
    pay for a run of its own.
    """
    out = tmp_path / "ops"
    args = ["ops", "--iterations", "20", "--warmup", "5", "--runs", "2", "--import-runs", "1"]
    proc = _run([*args, "--output", str(out)], _env(MONGO_SESSIONS_URL=mongo_url), timeout=300)
    assert "REDIS_URL is not set" in proc.stdout
    assert "DATABASE_URL is not set" in proc.stdout

    data = json.loads((out / "ops.json").read_text())
    ours = ("mongo_sessions", "mongo_sessions_document")
    assert {*ours, "cache", "db"} <= set(data["engines"])
    assert data["engines"]["mongo_sessions"]["label"] == "mongo_sessions (signed)"
    assert data["engines"]["mongo_sessions_document"]["label"] == "mongo_sessions (document)"
    assert data["engines"]["cache"]["label"] == "cache (locmem)"
    assert data["engines"]["db"]["label"] == "db (SQLite)"
    assert data["runs"] == 2
    for engine in ours:
        commands = {name: data["operations"][name][engine]["commands"] for name in OPERATIONS}
        assert commands == {
            "create": ["insert"],
            "load": ["find"],
            "load-modify-save": ["find", "update"],
            "cycle_key": ["insert"],  # the old document goes at the next save
            "delete": ["delete"],
            "load unknown key": ["find"],
        }
    for name in OPERATIONS:
        for engine in data["engines"]:
            measured = data["operations"][name][engine]
            assert measured["cpu_us_median"] > 0
            assert len(measured["cpu_us_run_medians"]) == 2  # one median per run
        # Each of ours against each of Django's, within each run.
        ratios = data["cpu_ratios"][name]
        assert {*ratios} >= {f"{m}/{o}" for m in ours for o in ("cache", "db")}
        assert all(len(r["runs"]) == 2 and r["median"] > 0 for r in ratios.values())
    for engine, described in data["engines"].items():
        assert described["bytes"] > 0, engine
    assert {"mongo_sessions", "mongo_sessions_first_use", "cache"} == set(data["imports_ms"])
    for name in ("Django", "pymongo", "redis-py"):
        assert name in data["versions"]

    for run in (1, 2):  # every timed sample of each run, for whoever wants more
        samples = json.loads((out / f"run-{run}.json").read_text())
        assert len(samples["operations"]["load"]["mongo_sessions"]["cpu_us"]) == 20
    assert (out / "ops.png").read_bytes().startswith(PNG_SIGNATURE)

    text = (out / "ops.md").read_text()
    for heading in (
        "## Commands to the store per call",
        "## Median client CPU per call",
        "## Client CPU of mongo_sessions ÷ Django's engines, in the same rounds",
        "## Full request cycle (load, modify, save)",
        "## Bytes stored per session",
        "## Import cost (python -X importtime)",
    ):
        assert heading in text and heading in proc.stdout
    for name in OPERATIONS:
        assert f"| {name} " in text
    assert "=== run 2 of 2 ===" in proc.stdout
    if (os.cpu_count() or 1) >= 2:
        assert "Note: The client ran on CPU 0, the stores started here on CPU(s) 1" in text


def test_ops_pins_a_process_tree() -> None:
    """The stores ``ops`` starts run on the CPUs it gives them, and their children too."""
    from loadtests.ops import pin_process_tree

    sleeper = "import time; time.sleep(60)"
    script = (
        "import subprocess, sys, time; "
        f"child = subprocess.Popen([sys.executable, '-c', {sleeper!r}]); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        pin_process_tree(parent.pid, {0})
        assert os.sched_getaffinity(parent.pid) == {0}
        assert os.sched_getaffinity(child) == {0}
    finally:
        os.kill(child, 9)
        parent.kill()
        parent.wait(timeout=10)


SERVERS_INSTALLED = shutil.which("redis-server") is not None and (
    shutil.which("postgres") is not None or any(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
)


@pytest.mark.skipif(not SERVERS_INSTALLED, reason="needs redis-server and PostgreSQL installed")
def test_ops_starts_redis_and_postgresql_itself_and_stops_them(
    tmp_path: Path, mongo_url: str
) -> None:
    out = tmp_path / "ops"
    args = ["ops", "--iterations", "20", "--warmup", "5", "--start", "redis,postgresql"]
    proc = _run([*args, "--output", str(out)], _env(MONGO_SESSIONS_URL=mongo_url), timeout=240)
    assert "REDIS_URL is not set" not in proc.stdout
    assert "DATABASE_URL is not set" not in proc.stdout

    data = json.loads((out / "ops.json").read_text())
    assert data["engines"]["cache"]["label"] == "cache (Redis)"
    assert data["engines"]["db"]["label"] == "db (PostgreSQL)"
    assert data["engines"]["cache"]["server"].startswith("Redis ")
    assert data["engines"]["db"]["server"].startswith("PostgreSQL ")
    assert data["operations"]["load-modify-save"]["cache"]["commands"] == ["GET", "GET", "SET"]
    started = re.findall(r"Started (Redis|PostgreSQL) \(pid (\d+)\)", proc.stdout)
    assert {name for name, _ in started} == {"Redis", "PostgreSQL"}, proc.stdout[-2000:]
    for name, pid in started:
        assert not pid_alive(int(pid)), f"{name} (pid {pid}) still runs after ops ended"


@pytest.mark.no_mongo
def test_run_serves_the_demo_with_uvicorn_and_the_touch_rule(tmp_path: Path) -> None:
    """``run --asgi --touch-after``: the demo under uvicorn with MONGO_SESSIONS_TOUCH_AFTER, and
    the returning visitors' expiry check relaxed to "moves only forward" (it passes)."""
    out = tmp_path / "results"
    _load_run(
        out, "--engines", "mongo_sessions", "--asgi", "--touch-after", "300", "--save-every-request"
    )
    folder = out / "mongo_sessions"
    verdict = json.loads((folder / "locust_verdict.json").read_text())
    assert verdict["passed"], verdict
    assert (verdict["touch_after"], verdict["save_every_request"]) == (300.0, True)
    assert "/session/" in (folder / "locust_stats.csv").read_text()  # the expiry was checked
    demo_log = (folder / "demo.log").read_text(errors="replace")
    assert re.search(r"^uvicorn pid \d+, 2 workers", demo_log, re.M), demo_log[-2000:]
    assert "gunicorn" not in demo_log
    summary = (out / "summary.md").read_text()
    assert "under uvicorn (ASGI), 2 worker processes" in summary
    assert "MONGO_SESSIONS_TOUCH_AFTER = 300 s" in summary


def test_touch_benchmark_counts_commands_and_bytes(mongo_url: str) -> None:
    """``python -m loadtests.touch``: within the window a find only; past it, an update whose
    size does not depend on the session's."""
    proc = _run(
        ["--iterations", "3", "--warmup", "1"],
        _env(MONGO_SESSIONS_URL=mongo_url),
        timeout=180,
        module="loadtests.touch",
    )
    rows = {
        (cells[0], cells[1]): (cells[2], cells[3])
        for line in proc.stdout.splitlines()
        if line.startswith(("| small ", "| large "))
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert len(rows) == 12, proc.stdout
    for size in ("small", "large"):
        assert rows[size, "touch on, within the window"][0] == "1: find"
        assert rows[size, "touch on, past the window"][0] == "2: find, update"
        assert rows[size, "touch off (full update)"][0] == "2: find, update"
    touch_update = {size: rows[size, "touch on, past the window"][1] for size in ("small", "large")}
    assert touch_update["small"] == touch_update["large"], touch_update
    full_small, full_large = (
        int(rows[size, "touch off (full update)"][1].split(" + ")[1]) for size in ("small", "large")
    )
    assert full_large > full_small + 10_000
