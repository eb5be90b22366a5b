"""Start, wait for and stop every server of the demo, the tests and the load tests.

One module for the processes that ``manage.py rundemo``, ``screenshot.py``,
the test suite (``tests/servers.py``) and the load tests (``loadtests/``)
start: SecantusDB, gunicorn or uvicorn, the demo itself, Redis and PostgreSQL. Each
one is a :class:`ChildProcess`:

* it runs on 127.0.0.1, with its output appended to a log file (a file, not
  a pipe: nobody reads a pipe while it runs, and a full pipe blocks it);
* it is ready when a probe answers (a MongoDB ``ping``, a Redis ``PING``,
  ``pg_isready``, an HTTP answer from the demo's ``/health/``), never when a
  line shows up in its log; the wait is bounded and ends early, with the log's
  last lines, when the process exits;
* it is stopped by its own process id: its stop signal, then SIGKILL after a
  bounded wait.

It is built on :mod:`subprocess` rather than on mirakuru, which was tried:
mirakuru starts every child from a copy of ``os.environ`` (the tests must give
the demo an environment without the developer's ``MONGO_SESSIONS_*`` and
``DJANGO_*`` variables), sets ``preexec_fn`` itself (rundemo's children get a
parent-death signal), and stops a child by its process group and by a sweep of
every process that carries its marker variable rather than by the child's PID.
Free ports come from port-for, which picks them outside the kernel's ephemeral
range (where an outgoing connection could take a port between pick and bind).

The package has one job per module: ``base`` (constants, errors, ports, URL
redaction and probes), ``process`` (:class:`ChildProcess`) and ``servers``
(what to start: SecantusDB, gunicorn, uvicorn, the demo, Redis, PostgreSQL).
Import every name from ``demo.harness``.
"""

from __future__ import annotations

from .base import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEMO_API,
    HEALTH_PATH,
    LOOPBACK,
    MANAGE_PY,
    POLL_INTERVAL,
    PROJECT_DIR,
    START_TIMEOUT,
    STOP_TIMEOUT,
    HarnessError,
    Interrupted,
    MongoProbe,
    free_port,
    http_status,
    redact_url,
    tcp_answers,
    wait_for_ping,
    wait_until,
)
from .process import (
    ChildProcess,
)
from .servers import (
    POSTGRES_DIRS,
    demo_server,
    find_executable,
    gunicorn_flags,
    http_child,
    mongo_server,
    postgres_server,
    redis_server,
    web_server,
)

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "DEMO_API",
    "HEALTH_PATH",
    "LOOPBACK",
    "MANAGE_PY",
    "POLL_INTERVAL",
    "POSTGRES_DIRS",
    "PROJECT_DIR",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "ChildProcess",
    "HarnessError",
    "Interrupted",
    "MongoProbe",
    "demo_server",
    "find_executable",
    "free_port",
    "gunicorn_flags",
    "http_child",
    "http_status",
    "mongo_server",
    "postgres_server",
    "redact_url",
    "redis_server",
    "tcp_answers",
    "wait_for_ping",
    "wait_until",
    "web_server",
]
