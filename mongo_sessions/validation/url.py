"""MONGO_SESSIONS_URL: the connection string's syntax, SRV rules and credentials (E004, E016).

Nothing here does network I/O: a ``mongodb+srv://`` URL is validated without
its DNS lookup.
"""

from __future__ import annotations

import re

from .. import driver
from ..conf import conf
from .names import DB_NAME_HINT, invalid_db_name
from .problem import Problem, a_type, option_problem

SRV_SCHEME = "mongodb+srv://"
SCHEMES = ("mongodb://", SRV_SCHEME)
# A user name or password in a URL: unreserved and sub-delimiter characters, or %XX.
_ESCAPED_USERINFO = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")


def url_problems() -> list[Problem]:
    """Return the first problem of MONGO_SESSIONS_URL, if it is set and wrong."""
    url = conf.MONGO_SESSIONS_URL
    if url is None:
        return []
    if url == "":
        # What os.environ.get("NAME", "") gives: never read as "unset", which
        # would silently connect to localhost:27017 and the database "test".
        return [
            Problem(
                id="mongo_sessions.E004",
                setting="MONGO_SESSIONS_URL",
                message="MONGO_SESSIONS_URL is an empty string",
                hint="Leave MONGO_SESSIONS_URL unset (or None) to use the host settings, or "
                "give a mongodb:// or mongodb+srv:// URL.",
            )
        ]
    if not isinstance(url, str):
        return [url_problem(f"it is {a_type(url)}, not a string")]
    if not url.startswith(SCHEMES):
        return [url_problem("it must start with mongodb:// or mongodb+srv://")]
    credentials = _unescaped_credentials(url)
    if credentials is not None:
        return [credentials]
    try:
        parsed = driver.uri_parser.parse_uri(without_srv(url), validate=True, warn=False)
    except Exception as e:  # InvalidURI, ConfigurationError, ValueError, OSError (tlsCAFile)
        return [option_problem("MONGO_SESSIONS_URL", e, url_problem)]
    if url.startswith(SRV_SCHEME):
        if len(parsed["nodelist"]) != 1:
            return [url_problem("a mongodb+srv:// URL names exactly one host")]
        if url[len(SRV_SCHEME) :].split("/")[0].split("@")[-1].count(":"):
            return [url_problem("a mongodb+srv:// URL has no port number")]
        if parsed["options"].get("directConnection"):
            return [url_problem("directConnection=true cannot be used with mongodb+srv://")]
    database = parsed["database"]
    if database is not None:
        # pymongo reads "/my.project" as database "my", collection "project":
        # the sessions would silently go to "my". Judge the whole path instead.
        if parsed["collection"] is not None:
            database = f"{database}.{parsed['collection']}"
        reason = invalid_db_name(database)
        if reason:
            return [
                Problem(
                    id="mongo_sessions.E004",
                    setting="MONGO_SESSIONS_URL",
                    message=f"MONGO_SESSIONS_URL is not a valid MongoDB connection string: the "
                    f"database {database!r} in its path is not a valid database name: {reason}",
                    hint=f"{DB_NAME_HINT} The collection is MONGO_SESSIONS_COLLECTION.",
                )
            ]
    return []


def without_srv(url: str) -> str:
    """Return ``url`` as a plain mongodb:// URL, so pymongo parses it without the SRV lookup.

    The lookup of a mongodb+srv:// URL is network I/O. Its TLS options still
    turn TLS on, as mongodb+srv:// does by default.
    """
    return "mongodb://" + url[len(SRV_SCHEME) :] if url.startswith(SRV_SCHEME) else url


def effective_database() -> str | None:
    """Return the database named in the URL's path, if the URL is the connection style."""
    url = conf.MONGO_SESSIONS_URL
    if conf.MONGO_CLIENT is not None or not isinstance(url, str) or not url.startswith(SCHEMES):
        return None
    path = url.split("://", 1)[1].split("?", 1)[0]
    _, slash, database = path.partition("/")
    return database.split(".", 1)[0] or None if slash else None


def url_problem(reason: str) -> Problem:
    """Return E004 (not a valid connection string) for ``reason``."""
    return Problem(
        id="mongo_sessions.E004",
        setting="MONGO_SESSIONS_URL",
        message=f"MONGO_SESSIONS_URL is not a valid MongoDB connection string: {reason}",
        hint="Use mongodb://[user:password@]host[:port][/database][?options] or "
        "mongodb+srv://[user:password@]host[/database][?options].",
    )


def _unescaped_credentials(url: str) -> Problem | None:
    """Return a problem if the URL's user name or password is not percent-escaped."""
    rest = url.split("://", 1)[1]
    if "@" not in rest:
        return None
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    # An "@" past the first "/" or "?": a "/" or "?" of the password ended the host
    # part early (the rest would be read as a database name or options).
    misplaced = "@" not in authority
    userinfo = rest[: rest.rfind("@")]
    user, _, password = userinfo.partition(":")
    if misplaced or not all(_ESCAPED_USERINFO.fullmatch(part) for part in (user, password)):
        return Problem(
            id="mongo_sessions.E016",
            setting="MONGO_SESSIONS_URL",
            message="MONGO_SESSIONS_URL has a user name or password that is not percent-escaped "
            "(a ':', '/', '?', '#', '[', ']', '@' or '%' must be written %XX)",
            hint="Build the URL with urllib.parse.quote_plus(user) and "
            "quote_plus(password), or give them as 'username' and 'password' in "
            "MONGO_SESSIONS_CLIENT_OPTIONS.",
        )
    return None
