"""MONGO_HOST, MONGO_PORT, MONGO_DB_USER and MONGO_DB_PASSWORD (E005, E006, E017)."""

from __future__ import annotations

from ..conf import conf
from .problem import Problem, a_type


def host_problems() -> list[Problem]:
    """Return the problems of MONGO_HOST and MONGO_PORT."""
    problems: list[Problem] = []
    host, port = conf.MONGO_HOST, conf.MONGO_PORT
    if not isinstance(host, str) or not host:
        problems.append(
            Problem(
                id="mongo_sessions.E005",
                setting="MONGO_HOST",
                message=f"MONGO_HOST must be a non-empty string, not {host!r}",
                hint="Give a host name or address, for example 'localhost'.",
            )
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(
            Problem(
                id="mongo_sessions.E005",
                setting="MONGO_PORT",
                message=f"MONGO_PORT must be an integer between 1 and 65535, not {port!r}",
                hint="MongoDB listens on 27017 by default.",
            )
        )
    return problems


def credentials_problems() -> list[Problem]:
    """Return the problems of MONGO_DB_USER and MONGO_DB_PASSWORD (strings, both or neither)."""
    user, password = conf.MONGO_DB_USER, conf.MONGO_DB_PASSWORD
    problems: list[Problem] = []
    for name, value in (("MONGO_DB_USER", user), ("MONGO_DB_PASSWORD", password)):
        if value not in (False, None, "") and not isinstance(value, str):
            problems.append(
                Problem(
                    id="mongo_sessions.E017",
                    setting=name,
                    message=f"{name} must be a string (or False), not {a_type(value)}",
                    hint="Give the user name and password as strings.",
                )
            )
    if problems or (not user and not password):
        return problems
    if not (user and password):
        return [
            Problem(
                id="mongo_sessions.E006",
                setting="MONGO_DB_USER" if not user else "MONGO_DB_PASSWORD",
                message="Only one of MONGO_DB_USER and MONGO_DB_PASSWORD is set",
                hint="Set both to authenticate, or neither.",
            )
        ]
    return []
