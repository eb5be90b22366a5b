"""Validation of the mongo_sessions settings, shared by the system checks and the connection.

``settings_problems()`` lists everything wrong, each under a stable check id;
``checks.py`` reports them all. At run time ``validate_connection_settings()``
(called before the client is built), ``require_acknowledged_writes()`` (called
once it is built, before any write), ``timeout_seconds()``, ``ttl_seconds()``
and ``batch_settings()`` raise ``ImproperlyConfigured`` for a value that cannot
work, naming the setting and its check id. No message holds a password: text that comes from pymongo
goes through ``passwords.scrub_text``. Nothing here does network I/O (a
``mongodb+srv://`` URL is validated without its DNS lookup).

This module decides which checks apply to the connection style in use and in
what order ``check`` reports them; each check lives in the module of its
settings: ``url`` (MONGO_SESSIONS_URL), ``host`` (MONGO_HOST, MONGO_PORT and the
credentials), ``options`` (MONGO_SESSIONS_CLIENT_OPTIONS), ``names`` (database
and collection), ``numbers`` (TTL, timeout, auto-index, batches),
``write_concern`` (w=0) and ``formats`` (MONGO_SESSIONS_FORMAT). ``problem``
holds the ``Problem`` type they all return.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .. import driver
from ..conf import conf
from .formats import DOCUMENT, SIGNED, compress_problem, format_problem, format_problems
from .host import credentials_problems, host_problems
from .names import names_problems
from .numbers import batch_problems, numbers_problems, timeout_problem, ttl_problem
from .options import client_options_problems
from .problem import Problem, a_type
from .url import effective_database, url_problems
from .write_concern import own_client_problems, own_client_setting, unacknowledged_problem

_INFINITY = float("inf")

__all__ = [
    "DOCUMENT",
    "SIGNED",
    "Problem",
    "a_type",
    "batch_settings",
    "compress_min_length",
    "own_client_setting",
    "require_acknowledged_writes",
    "session_format",
    "settings_problems",
    "timeout_seconds",
    "ttl_seconds",
    "validate_connection_settings",
]


def settings_problems() -> list[Problem]:
    """Return every problem of the settings, in the order `check` reports them.

    MONGO_CLIENT itself is checked by ``checks._check_client``.
    """
    problems: list[Problem] = []
    for check in _CHECKS:
        problems += check()
    return problems


def validate_connection_settings() -> None:
    """Raise ImproperlyConfigured for the first setting of the connection that cannot work."""
    for problem in _connection_problems():
        if problem.fatal and problem.level == "error":
            raise ImproperlyConfigured(problem.as_error_text())


def timeout_seconds() -> float:
    """Return MONGO_SESSIONS_TIMEOUT in seconds; raise ImproperlyConfigured if it cannot work."""
    timeout = conf.MONGO_SESSIONS_TIMEOUT
    if type(timeout) is float and 0 < timeout < _INFINITY:
        return timeout  # every session operation asks: the common case without a call
    problem = timeout_problem(timeout)
    if problem is not None:
        raise ImproperlyConfigured(problem.as_error_text())
    return float(timeout)


def compress_min_length() -> int:
    """Return MONGO_SESSIONS_COMPRESS_MIN_LENGTH in bytes; raise ImproperlyConfigured (E052)
    if it cannot work."""
    length = conf.MONGO_SESSIONS_COMPRESS_MIN_LENGTH
    if type(length) is int and length >= 0:
        return length  # every signed save asks: the common case without a call
    problem = compress_problem(length)
    if problem is not None:
        raise ImproperlyConfigured(problem.as_error_text())
    return int(length)  # an int subclass: what compress_problem() accepts


def session_format(name: Any, serializer: Any) -> str:
    """Return the session format ``name``; raise ImproperlyConfigured if it cannot work.

    ``serializer`` is the store's SESSION_SERIALIZER class (E051: the document
    format needs Django's JSONSerializer).
    """
    problem = format_problem(name, serializer)
    if problem is not None:
        raise ImproperlyConfigured(problem.as_error_text())
    return str(name)


def batch_settings() -> tuple[int, float]:
    """Return (documents per batch, seconds per batch) of ``clear_expired()``.

    :raises ImproperlyConfigured: naming the setting and E018 when
        MONGO_SESSIONS_BATCH_SIZE is not a positive integer or
        MONGO_SESSIONS_BATCH_TIMEOUT not a positive, finite number of seconds.
    """
    for problem in batch_problems():
        raise ImproperlyConfigured(problem.as_error_text())
    return conf.MONGO_SESSIONS_BATCH_SIZE, float(conf.MONGO_SESSIONS_BATCH_TIMEOUT)


def require_acknowledged_writes(client: Any, setting: str) -> None:
    """Raise ImproperlyConfigured (E019) naming ``setting`` if ``client`` writes with w=0.

    Run before any write: with w=0 a save cannot tell whether it matched a session.
    """
    problem = unacknowledged_problem(client, setting)
    if problem is not None:
        raise ImproperlyConfigured(problem.as_error_text())


def ttl_seconds() -> int:
    """Return MONGO_SESSIONS_TTL in seconds; raise ImproperlyConfigured if it cannot work."""
    ttl = conf.MONGO_SESSIONS_TTL
    if type(ttl) is int and ttl > 0:
        return ttl  # every save without an explicit expiry asks: the common case without a call
    problem = ttl_problem(ttl)
    if problem is not None:
        raise ImproperlyConfigured(problem.as_error_text())
    return ttl


def _connection_problems() -> list[Problem]:
    """Return the problems of the settings the configured connection style uses."""
    problems: list[Problem] = []
    given = conf.MONGO_CLIENT
    uses_db_name = True
    if given is None:
        if conf.MONGO_SESSIONS_URL is not None:  # "" is an error, not "unset"
            problems += url_problems()
            uses_db_name = effective_database() is None
        else:
            problems += host_problems()
            problems += credentials_problems()
        problems += client_options_problems()
    elif isinstance(given, driver.database.Database):
        uses_db_name = False
    problems += [p for p in _names_problems() if uses_db_name or p.id != "mongo_sessions.E007"]
    problems += numbers_problems()
    return problems


def _contradiction_problems() -> list[Problem]:
    """Settings the chosen connection style ignores: errors for `check`, not at run time."""
    problems: list[Problem] = []
    overridden = conf.MONGO_CLIENT is not None or bool(conf.MONGO_SESSIONS_URL)
    user, password = conf.MONGO_DB_USER, conf.MONGO_DB_PASSWORD
    if overridden and (user or password):
        problems.append(
            Problem(
                id="mongo_sessions.E012",
                setting="MONGO_DB_USER",
                message="MONGO_DB_USER / MONGO_DB_PASSWORD are set together with MONGO_CLIENT or "
                "MONGO_SESSIONS_URL, which decide the connection on their own",
                hint="Put the credentials in the URL or the client, or in "
                "MONGO_SESSIONS_CLIENT_OPTIONS as username and password.",
                fatal=False,
            )
        )
    explicit = [name for name in ("MONGO_HOST", "MONGO_PORT") if conf.is_set(name)]
    if overridden and explicit:
        problems.append(
            Problem(
                id="mongo_sessions.W001",
                setting=explicit[0],
                message=f"{' and '.join(explicit)} {'is' if len(explicit) == 1 else 'are'} "
                "ignored because MONGO_CLIENT or MONGO_SESSIONS_URL is set",
                hint="Remove them, or put the address in the client or URL you give.",
                fatal=False,
                level="warning",
            )
        )
    if conf.MONGO_CLIENT is not None and conf.MONGO_SESSIONS_CLIENT_OPTIONS:
        problems.append(
            Problem(
                id="mongo_sessions.E011",
                setting="MONGO_SESSIONS_CLIENT_OPTIONS",
                message="MONGO_SESSIONS_CLIENT_OPTIONS is set together with MONGO_CLIENT; "
                "mongo_sessions never changes a client you give it",
                hint="Pass these options to your own MongoClient instead.",
                fatal=False,
            )
        )
    return problems


def _checked_url_problems() -> list[Problem]:
    return url_problems()


def _checked_host_problems() -> list[Problem]:
    """MONGO_HOST/MONGO_PORT and the credentials, as `check` reports them (any style)."""
    problems = host_problems() + credentials_problems()
    if conf.MONGO_CLIENT is not None or conf.MONGO_SESSIONS_URL:
        # The host style is not in use: only report what is wrong in itself.
        problems = [p for p in problems if p.id != "mongo_sessions.E006"]
    return problems


def _checked_write_concern_problems() -> list[Problem]:
    """E019 for the client the package would build (MONGO_CLIENT's: checks._check_client)."""
    if conf.MONGO_CLIENT is not None or conf.MONGO_SESSIONS_DATABASE_ALIAS is not None:
        return []
    if url_problems() or client_options_problems():
        return []  # the client cannot be built: those problems say why
    if conf.MONGO_SESSIONS_URL is None and host_problems():
        return []
    return own_client_problems()


def _names_problems() -> list[Problem]:
    return names_problems(effective_database())


# The order in which `check` reports (MONGO_CLIENT's own checks come first, in checks.py).
_CHECKS: list[Callable[[], list[Problem]]] = [
    _checked_url_problems,
    _checked_host_problems,
    _contradiction_problems,
    _names_problems,
    numbers_problems,
    client_options_problems,
    _checked_write_concern_problems,
    batch_problems,
    format_problems,
]
