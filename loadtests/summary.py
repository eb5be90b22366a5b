"""The summary of ``python -m loadtests run``: Markdown (summary.md) and JSON (summary.json).

Every figure comes from Locust's own statistics (``locust_stats.csv``) and the
verdict the locustfile writes beside them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import report
from .matrix import BASELINE
from .results import git_revision, machine
from .stores import Store


@dataclass
class EngineResult:
    """One engine's run: where it was measured, Locust's statistics and verdict, sessions left."""

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


RESULT_HEADERS = [
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
]


def summarize(results: list[EngineResult], args: argparse.Namespace, folder: Path) -> str:
    """The whole summary: setup, one row per engine, the ratios, each engine's requests."""
    lines = [
        *_setup(results, args, folder),
        "## Results",
        "",
        report.markdown_table(RESULT_HEADERS, [_result_row(r) for r in results]),
        "",
        "Stores:",
    ]
    for r in results:
        if r.store:
            lines.append(f"- {r.engine}: {r.store.long}")
        if r.sessions_note:
            lines.append(f"  - sessions left: {r.sessions_note}")
    lines += _comparison(results)
    for r in results:
        lines += _engine_section(r)
    return "\n".join(lines) + "\n"


def _setup(results: list[EngineResult], args: argparse.Namespace, folder: Path) -> list[str]:
    first = next((r.verdict for r in results if r.verdict), {})
    return [
        f"# Load test {folder.name}",
        "",
        f"- Scenario: loadtests/locustfile.py, {first.get('users', '?')} users "
        f"(spawn rate {first.get('spawn_rate', '?')}/s), {first.get('run_time', '?')} s per "
        f"engine, {_think(first.get('think_time'))}",
        f"- Server: the demo site (example_project) under "
        f"{'uvicorn (ASGI)' if args.asgi else 'gunicorn'}, {args.workers} "
        f"{'worker processes' if args.asgi else 'sync workers'} on 127.0.0.1; "
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
    ]


def _think(value: Any) -> str:
    if not value:
        return "no think time (each user sends its next request when the last one is answered)"
    return f"think time 0-{value:g} s between tasks"


def _result_row(r: EngineResult) -> list[Any]:
    t = r.total
    if r.sessions_after is None:
        sessions = "n/a"
    elif r.sessions_before:
        sessions = f"{r.sessions_after:,} (+{r.sessions_after - r.sessions_before:,})"
    else:
        sessions = f"{r.sessions_after:,}"
    verdict = "ERROR" if r.error else "pass" if r.exit_code == 0 else f"FAIL (exit {r.exit_code})"
    return [
        r.engine,
        r.store.short if r.store else "n/a",
        t.requests if t else None,
        round(t.rps, 1) if t else None,
        report.ms(t.p("50%")) if t else None,
        report.ms(t.p("95%")) if t else None,
        report.ms(t.p("99%")) if t else None,
        report.ms(t.max_ms) if t else None,
        f"{t.failures} ({t.fail_ratio:.2%})" if t else "n/a",
        sessions,
        verdict,
    ]


def _comparison(results: list[EngineResult]) -> list[str]:
    """Throughput and p95 of every engine as a ratio to the baseline's (when both ran)."""
    base = next((r for r in results if r.engine == BASELINE and r.total), None)
    others = [r for r in results if r is not base and r.total]
    if base is None or base.total is None or not others:
        return []
    rows = []
    for r in [base, *others]:
        t = r.total
        assert t is not None
        rows.append(
            [
                r.engine,
                r.store.short if r.store else "n/a",
                round(t.rps, 1),
                report.ratio(t.rps, base.total.rps),
                report.ms(t.p("95%")),
                report.ratio(t.p("95%"), base.total.p("95%")),
            ]
        )
    headers = ["Engine", "Measured against", "Req/s", "Throughput ratio", "p95 ms", "p95 ratio"]
    return [
        "",
        f"## Compared with {BASELINE}",
        "",
        f"Throughput ratio: engine req/s ÷ {BASELINE} req/s (above 1: more requests served). "
        f"p95 ratio: engine p95 ÷ {BASELINE} p95 (above 1: slower). Side by side: "
        "comparison.png.",
        "",
        report.markdown_table(headers, rows),
    ]


def _engine_section(r: EngineResult) -> list[str]:
    """One engine: errors, thresholds missed, Locust's rows per request, failures, files."""
    lines = ["", f"## {r.engine}", ""]
    if r.error:
        lines += [f"Error: {r.error}", ""]
    if r.verdict.get("problems"):
        lines += [f"Thresholds not met: {'; '.join(r.verdict['problems'])}", ""]
    if r.stats:
        headers = ["Request", "Count", "Failures", "p50 ms", "p95 ms", "p99 ms", "Req/s"]
        rows = [
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
        ]
        lines.append(report.markdown_table(headers, rows))
    for f in r.failures[:10]:
        lines.append(
            f"- {f.get('Occurrences')} x {f.get('Method')} {f.get('Name')}: {f.get('Error')}"
        )
    lines += [
        "",
        f"Files: {r.engine}/report.html (Locust's report, with its charts over time), "
        "locust_stats.csv, locust_failures.csv, locust_verdict.json, locust.log, demo.log",
    ]
    return lines


def summary_json(results: list[EngineResult]) -> list[dict[str, Any]]:
    """One object per engine: store, exit code, Locust's totals and percentiles, sessions."""
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
