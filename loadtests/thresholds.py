"""The load test's own Locust options, and the thresholds that set Locust's exit code.

Imported by the locustfile, which registers these listeners with Locust:
``--session-engine``, ``--save-every-request``, ``--touch-after``, ``--max-fail-ratio``,
``--max-p95-ms`` and ``--think-time`` (also in locust.conf or as ``LOADTEST_*``
variables); at the end of a run the thresholds are checked against Locust's
own statistics and written, with the options in effect, to
``<csv prefix>_verdict.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment

from .matrix import SESSION_ENGINES

logger = logging.getLogger("loadtests")


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("django-mongo-sessions load test")
    group.add_argument(
        "--session-engine",
        choices=list(SESSION_ENGINES),
        default="mongo_sessions",
        env_var="LOADTEST_SESSION_ENGINE",
        help="session engine the demo runs (DEMO_SESSION_ENGINE): decides what can be checked",
    )
    group.add_argument(
        "--save-every-request",
        action="store_true",
        default=False,
        env_var="LOADTEST_SAVE_EVERY_REQUEST",
        help="the demo runs with SESSION_SAVE_EVERY_REQUEST = True: check that reads refresh",
    )
    group.add_argument(
        "--touch-after",
        type=float,
        default=0.0,
        env_var="LOADTEST_TOUCH_AFTER",
        help="the demo runs with MONGO_SESSIONS_TOUCH_AFTER = this (s): reads extend the "
        "stored expiry only past it (0: off)",
    )
    group.add_argument(
        "--max-fail-ratio",
        type=float,
        default=0.0,
        env_var="LOADTEST_MAX_FAIL_RATIO",
        help="exit with 1 when more than this ratio of requests failed (default 0: any failure)",
    )
    group.add_argument(
        "--max-p95-ms",
        type=float,
        default=2000.0,
        env_var="LOADTEST_MAX_P95_MS",
        help="exit with 1 when the 95th percentile response time exceeds this (ms)",
    )
    group.add_argument(
        "--think-time",
        type=float,
        default=0.0,
        env_var="LOADTEST_THINK_TIME",
        help="each user waits a random 0..this many seconds between tasks (default 0)",
    )


@events.quitting.add_listener
def _apply_thresholds(environment: Environment, **kwargs: Any) -> None:
    """Set the exit code from the thresholds: failures, p95, and errors in this file."""
    options = environment.parsed_options
    if options is None:  # run as a library, no command line
        return
    total = environment.stats.total
    problems: list[str] = []
    if total.num_requests == 0:
        problems.append("no request was made")
    if total.fail_ratio > options.max_fail_ratio:
        problems.append(
            f"failure ratio {total.fail_ratio:.4f} > {options.max_fail_ratio:g} "
            f"({total.num_failures} of {total.num_requests} requests)"
        )
    p95 = total.get_response_time_percentile(0.95) or 0
    if p95 > options.max_p95_ms:
        problems.append(f"p95 {p95:.0f} ms > {options.max_p95_ms:g} ms")
    runner = environment.runner
    if runner is not None and runner.exceptions:
        problems.append(f"{len(runner.exceptions)} exception(s) raised in the locustfile")
    _write_verdict(environment, total, p95, problems)
    if problems:
        logger.error("Thresholds not met: %s", "; ".join(problems))
        environment.process_exit_code = 1
    else:
        logger.info(
            "Thresholds met: failure ratio %.4f <= %g, p95 %.0f ms <= %g ms",
            total.fail_ratio,
            options.max_fail_ratio,
            p95,
            options.max_p95_ms,
        )
        environment.process_exit_code = 0


def _write_verdict(environment: Environment, total: Any, p95: float, problems: list[str]) -> None:
    """Next to the CSV files: the thresholds applied and the options in effect."""
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None)
    if options is None or not prefix:
        return
    verdict = {
        "passed": not problems,
        "problems": problems,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "fail_ratio": total.fail_ratio,
        "p95_ms": p95,
        "max_fail_ratio": options.max_fail_ratio,
        "max_p95_ms": options.max_p95_ms,
        "users": options.num_users,
        "spawn_rate": options.spawn_rate,
        "run_time": options.run_time,
        "think_time": options.think_time,
        "session_engine": options.session_engine,
        "save_every_request": options.save_every_request,
        "touch_after": options.touch_after,
        "host": environment.host,
    }
    Path(f"{prefix}_verdict.json").write_text(json.dumps(verdict, indent=2))
