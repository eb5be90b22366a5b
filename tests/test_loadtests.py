"""Smoke runs of ``python -m loadtests run`` and ``python -m loadtests ops``.

A few seconds each, so that the load test and the benchmark cannot rot: the
commands must exit with 0 and write their files and tables. Redis and
PostgreSQL are left out (REDIS_URL and DATABASE_URL unset): the commands must
fall back to local memory and SQLite on their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
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


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtests", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.no_mongo
def test_run_compares_two_engines_on_the_embedded_server(tmp_path: Path) -> None:
    out = tmp_path / "results"
    # Ten users, so that each of the four user classes gets at least one.
    args = [
        "run",
        "--engines", "mongo_sessions,db",
        "--users", "10",
        "--spawn-rate", "10",
        "--run-time", "5s",
        "--workers", "2",
        "--output", str(out),
    ]  # fmt: skip
    proc = _run(args, _env(), timeout=240)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    for engine in ("mongo_sessions", "db"):
        folder = out / engine
        for name in (
            "locust_stats.csv",
            "locust_stats_history.csv",
            "locust_failures.csv",
            "report.html",
            "locust_verdict.json",
        ):
            assert (folder / name).is_file(), f"{engine}/{name} missing"
        assert (folder / "chart.png").read_bytes().startswith(PNG_SIGNATURE)
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
    out = tmp_path / "ops"
    proc = _run(
        ["ops", "--iterations", "20", "--warmup", "5", "--output", str(out)],
        _env(MONGO_SESSIONS_URL=mongo_url),
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "REDIS_URL is not set" in proc.stdout
    assert "DATABASE_URL is not set" in proc.stdout

    data = json.loads((out / "ops.json").read_text())
    assert set(data["engines"]) == {"mongo_sessions", "cache", "db"}
    assert data["engines"]["cache"]["label"] == "cache (locmem)"
    assert data["engines"]["db"]["label"] == "db (SQLite)"
    mongo = {name: data["operations"][name]["mongo_sessions"]["commands"] for name in OPERATIONS}
    assert mongo == {
        "create": ["insert"],
        "load": ["find"],
        "load-modify-save": ["find", "update"],
        "cycle_key": ["insert"],  # the old document goes at the next save
        "delete": ["delete"],
        "load unknown key": ["find"],
    }
    for name in OPERATIONS:
        for engine in ("mongo_sessions", "cache", "db"):
            assert data["operations"][name][engine]["cpu_us_median"] > 0

    text = (out / "ops.md").read_text()
    for heading in (
        "## Commands to the store per call",
        "## Median client CPU per call",
        "## Full request cycle (load, modify, save)",
    ):
        assert heading in text and heading in proc.stdout
    for name in OPERATIONS:
        assert f"| {name} " in text
