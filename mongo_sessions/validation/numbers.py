"""The TTL, the timeout, the auto-index switch and the batch settings (E009, E013, E014, E018)."""

from __future__ import annotations

from typing import Any

from ..conf import conf
from .problem import Problem


def numbers_problems() -> list[Problem]:
    """Return the problems of the TTL, the timeout and the auto-index switch."""
    problems = [
        problem
        for problem in (
            ttl_problem(conf.MONGO_SESSIONS_TTL),
            timeout_problem(conf.MONGO_SESSIONS_TIMEOUT),
        )
        if problem is not None
    ]
    if not isinstance(conf.MONGO_SESSIONS_AUTO_INDEX, bool):
        problems.append(
            Problem(
                id="mongo_sessions.E014",
                setting="MONGO_SESSIONS_AUTO_INDEX",
                message="MONGO_SESSIONS_AUTO_INDEX must be True or False, not "
                f"{conf.MONGO_SESSIONS_AUTO_INDEX!r}",
                hint="Set False when the account lacks the createIndex privilege, and run "
                "'manage.py mongo_sessions_setup' with one that has it.",
            )
        )
    return problems


def ttl_problem(ttl: Any) -> Problem | None:
    """Return E009 if ``ttl`` is not a positive whole number of seconds."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        return Problem(
            id="mongo_sessions.E009",
            setting="MONGO_SESSIONS_TTL",
            message=f"MONGO_SESSIONS_TTL must be a positive integer number of seconds, not {ttl!r}",
            hint="Leave it unset to use SESSION_COOKIE_AGE.",
        )
    return None


def timeout_problem(timeout: Any) -> Problem | None:
    """Return E013 if ``timeout`` is not a positive, finite number of seconds."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < float("inf")
    ):
        return Problem(
            id="mongo_sessions.E013",
            setting="MONGO_SESSIONS_TIMEOUT",
            message="MONGO_SESSIONS_TIMEOUT must be a positive, finite number of seconds, "
            f"not {timeout!r}",
            hint="It bounds every MongoDB call of a request; the default is 5.",
        )
    return None


def batch_problems() -> list[Problem]:
    """Return E018 for each batch setting of ``clear_expired()`` that cannot work."""
    size, timeout = conf.MONGO_SESSIONS_BATCH_SIZE, conf.MONGO_SESSIONS_BATCH_TIMEOUT
    problems: list[Problem] = []
    # bool is an int in Python: True is no batch size.
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        problems.append(
            Problem(
                id="mongo_sessions.E018",
                setting="MONGO_SESSIONS_BATCH_SIZE",
                message="MONGO_SESSIONS_BATCH_SIZE must be a positive integer (documents per "
                f"batch), not {size!r}",
                hint="It is how many expired sessions clearsessions deletes per batch; "
                "the default is 5000.",
            )
        )
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < float("inf")
    ):
        problems.append(
            Problem(
                id="mongo_sessions.E018",
                setting="MONGO_SESSIONS_BATCH_TIMEOUT",
                message="MONGO_SESSIONS_BATCH_TIMEOUT must be a positive, finite number of "
                f"seconds, not {timeout!r}",
                hint="It bounds each batch of clearsessions; the default is 60.",
            )
        )
    return problems
