"""MONGO_SESSIONS_CLIENT_OPTIONS, alone and with the URL, as pymongo sees them (E010, E015)."""

from __future__ import annotations

import warnings
from typing import Any

from .. import driver
from ..conf import DEFAULT_CLIENT_OPTIONS, conf
from .problem import Problem, a_type, option_problem
from .url import SCHEMES, url_problems, without_srv


def client_options_problems() -> list[Problem]:
    """Return the first problem pymongo finds in the client options, if any.

    No client built here connects: pymongo validates every option when a
    client is built with ``connect=False``.
    """
    options = conf.MONGO_SESSIONS_CLIENT_OPTIONS
    if not options:
        return []
    if not isinstance(options, dict):
        return [_invalid_options(f"it is {a_type(options)}, not a dict")]
    if conf.MONGO_CLIENT is not None:
        return []  # E011: the options are not used.
    merged = {**DEFAULT_CLIENT_OPTIONS, **options}
    hosts = ["mongodb://localhost"]
    # Together with the URL (options of both can contradict each other).
    url = conf.MONGO_SESSIONS_URL
    if isinstance(url, str) and url.startswith(SCHEMES) and not url_problems():
        hosts.append(without_srv(url))
    for host in hosts:
        try:
            _build_unconnected_client(host, merged)
        except Exception as e:  # ConfigurationError, TypeError, ValueError, OSError (tlsCAFile)
            return [option_problem("MONGO_SESSIONS_CLIENT_OPTIONS", e, _invalid_options)]
    return []


def _build_unconnected_client(host: str, options: dict[str, Any]) -> None:
    """Build and close a client that never connects: pymongo validates every option."""
    # The site's listeners would see this throwaway client's topology open and
    # close: leave them out (the real client validates them when it is built).
    options = {name: value for name, value in options.items() if name != "event_listeners"}
    with warnings.catch_warnings():
        # URL options are validated strictly by parse_uri; here they only warn.
        warnings.simplefilter("ignore")
        driver.pymongo.MongoClient(host, connect=False, **options).close()


def _invalid_options(reason: str) -> Problem:
    return Problem(
        id="mongo_sessions.E010",
        setting="MONGO_SESSIONS_CLIENT_OPTIONS",
        message=f"MONGO_SESSIONS_CLIENT_OPTIONS is invalid: {reason}",
        hint="Give a dict of pymongo.MongoClient keyword arguments, for example "
        "{'serverSelectionTimeoutMS': 2000, 'tls': True}.",
    )
