"""System checks for the mongo_sessions settings and, with --deploy, the server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Warning
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri

from .conf import DEFAULT_CLIENT_OPTIONS, conf

INVALID_DB_NAME_CHARS = frozenset('/\\. "$\x00')
MAX_DB_NAME_LENGTH = 63


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report invalid or contradictory mongo_sessions settings."""
    messages: list[CheckMessage] = []
    messages += _check_client()
    messages += _check_url()
    messages += _check_host_port()
    messages += _check_credentials()
    messages += _check_names()
    messages += _check_numbers()
    messages += _check_client_options()
    return messages


def _check_client() -> list[CheckMessage]:
    # The connection's own resolver: check and run time accept the same values.
    from .connection import ClientSettingError, resolve_async_client_factory, resolve_mongo_client

    given = conf.MONGO_CLIENT
    async_factory = conf.MONGO_SESSIONS_ASYNC_CLIENT
    messages: list[CheckMessage] = []
    if given is None:
        if async_factory is not None:
            messages.append(
                Warning(
                    "MONGO_SESSIONS_ASYNC_CLIENT is set without MONGO_CLIENT: it is ignored.",
                    hint="The async clients are built from MONGO_SESSIONS_URL or the host "
                    "settings; set MONGO_SESSIONS_ASYNC_CLIENT only with MONGO_CLIENT.",
                    id="mongo_sessions.W002",
                )
            )
        return messages
    if conf.MONGO_SESSIONS_URL:
        messages.append(
            Error(
                "MONGO_CLIENT and MONGO_SESSIONS_URL are both set.",
                hint="Set only one: MONGO_CLIENT to reuse your client, or MONGO_SESSIONS_URL "
                "to let mongo_sessions create one.",
                id="mongo_sessions.E003",
            )
        )
    for resolve, value in (
        (resolve_mongo_client, given),
        (resolve_async_client_factory, async_factory),
    ):
        try:
            resolve(value)
        except ClientSettingError as e:
            messages.append(Error(e.message, hint=e.hint, id=e.check_id))
    return messages


def _check_url() -> list[CheckMessage]:
    url = conf.MONGO_SESSIONS_URL
    if not url:
        return []
    if not isinstance(url, str):
        return [_invalid_url(f"it is a {type(url).__name__}, not a string")]
    # Parse mongodb+srv URLs as plain ones: an SRV lookup is network I/O.
    plain = "mongodb://" + url[len("mongodb+srv://") :] if url.startswith("mongodb+srv://") else url
    try:
        parse_uri(plain)
    except (PyMongoError, ValueError) as e:
        return [_invalid_url(str(e))]
    return []


def _invalid_url(reason: str) -> Error:
    return Error(
        f"MONGO_SESSIONS_URL is not a valid MongoDB connection string: {reason}",
        hint="Use mongodb://[user:password@]host[:port][/database][?options] or mongodb+srv://.",
        id="mongo_sessions.E004",
    )


def _check_host_port() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    host, port = conf.MONGO_HOST, conf.MONGO_PORT
    if not isinstance(host, str) or not host:
        messages.append(
            Error(
                f"MONGO_HOST must be a non-empty string, not {host!r}.",
                hint="Give a host name or address, for example 'localhost'.",
                id="mongo_sessions.E005",
            )
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        messages.append(
            Error(
                f"MONGO_PORT must be an integer between 1 and 65535, not {port!r}.",
                hint="MongoDB listens on 27017 by default.",
                id="mongo_sessions.E005",
            )
        )
    overridden = conf.MONGO_CLIENT is not None or bool(conf.MONGO_SESSIONS_URL)
    explicit = [name for name in ("MONGO_HOST", "MONGO_PORT") if conf.is_set(name)]
    if overridden and explicit:
        messages.append(
            Warning(
                f"{' and '.join(explicit)} are ignored because MONGO_CLIENT or "
                "MONGO_SESSIONS_URL is set.",
                hint="Remove them, or put the address in the client or URL you give.",
                id="mongo_sessions.W001",
            )
        )
    return messages


def _check_credentials() -> list[CheckMessage]:
    user, password = conf.MONGO_DB_USER, conf.MONGO_DB_PASSWORD
    if not user and not password:
        return []
    if conf.MONGO_CLIENT is not None or conf.MONGO_SESSIONS_URL:
        return [
            Error(
                "MONGO_DB_USER / MONGO_DB_PASSWORD are set together with MONGO_CLIENT or "
                "MONGO_SESSIONS_URL, which decide the connection on their own.",
                hint="Put the credentials in the URL or the client, or in "
                "MONGO_SESSIONS_CLIENT_OPTIONS as username and password.",
                id="mongo_sessions.E012",
            )
        ]
    if not (user and password):
        return [
            Error(
                "Only one of MONGO_DB_USER and MONGO_DB_PASSWORD is set.",
                hint="Set both to authenticate, or neither.",
                id="mongo_sessions.E006",
            )
        ]
    return []


def _check_names() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    db_name = conf.MONGO_DB_NAME
    if (
        not isinstance(db_name, str)
        or not db_name
        or len(db_name) > MAX_DB_NAME_LENGTH
        or INVALID_DB_NAME_CHARS & set(db_name)
    ):
        messages.append(
            Error(
                f"MONGO_DB_NAME {db_name!r} is not a valid MongoDB database name.",
                hint='Use 1 to 63 characters without / \\ . " $, spaces or NUL.',
                id="mongo_sessions.E007",
            )
        )
    name = conf.MONGO_SESSIONS_COLLECTION
    if (
        not isinstance(name, str)
        or not name
        or "$" in name
        or "\x00" in name
        or name.startswith("system.")
    ):
        messages.append(
            Error(
                f"MONGO_SESSIONS_COLLECTION {name!r} is not a valid MongoDB collection name.",
                hint="Use a non-empty name without $ or NUL that does not start with 'system.'.",
                id="mongo_sessions.E008",
            )
        )
    return messages


def _check_numbers() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    ttl = conf.MONGO_SESSIONS_TTL
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        messages.append(
            Error(
                f"MONGO_SESSIONS_TTL must be a positive number of seconds, not {ttl!r}.",
                hint="Leave it unset to use SESSION_COOKIE_AGE.",
                id="mongo_sessions.E009",
            )
        )
    timeout = conf.MONGO_SESSIONS_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        messages.append(
            Error(
                f"MONGO_SESSIONS_TIMEOUT must be a positive number of seconds, not {timeout!r}.",
                hint="It bounds every MongoDB call of a request; the default is 5.",
                id="mongo_sessions.E013",
            )
        )
    if not isinstance(conf.MONGO_SESSIONS_AUTO_INDEX, bool):
        messages.append(
            Error(
                "MONGO_SESSIONS_AUTO_INDEX must be True or False.",
                hint="Set False when the account lacks the createIndex privilege, and run "
                "'manage.py mongo_sessions_setup' with one that has it.",
                id="mongo_sessions.E014",
            )
        )
    return messages


def _check_client_options() -> list[CheckMessage]:
    options = conf.MONGO_SESSIONS_CLIENT_OPTIONS
    if not options:
        return []
    if not isinstance(options, dict):
        return [_invalid_options(f"it is a {type(options).__name__}, not a dict")]
    if conf.MONGO_CLIENT is not None:
        return [
            Error(
                "MONGO_SESSIONS_CLIENT_OPTIONS is set together with MONGO_CLIENT; mongo_sessions "
                "never changes a client you give it.",
                hint="Pass these options to your own MongoClient instead.",
                id="mongo_sessions.E011",
            )
        ]
    try:
        # connect=False: validates every option without any network I/O.
        MongoClient(
            "mongodb://localhost", connect=False, **{**DEFAULT_CLIENT_OPTIONS, **options}
        ).close()
    except (PyMongoError, TypeError, ValueError) as e:
        return [_invalid_options(str(e))]
    return []


def _invalid_options(reason: str) -> Error:
    return Error(
        f"MONGO_SESSIONS_CLIENT_OPTIONS is invalid: {reason}",
        hint="Give a dict of pymongo.MongoClient keyword arguments, for example "
        "{'serverSelectionTimeoutMS': 2000, 'tls': True}.",
        id="mongo_sessions.E010",
    )


def check_server(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """With --deploy: ping the server and verify the collection's indexes."""
    if check_settings():
        return []  # The settings errors say it all; connecting would only add noise.
    from .connection import get_target
    from .exceptions import SessionStoreError
    from .indexes import plan_index_changes, seed_ttl_index
    from .operation import mongo_operation

    try:
        target = get_target()
        collection = target.collection
        with mongo_operation("deploy check"):
            collection.database.command("ping")
            actions = plan_index_changes(collection)
            seed_index = seed_ttl_index(collection)
    except SessionStoreError as e:
        return [
            Error(
                f"MongoDB cannot be reached: {e}",
                hint="Check the connection settings and that the server is up.",
                id="mongo_sessions.E101",
            )
        ]
    messages: list[CheckMessage] = []
    if actions:
        messages.append(
            Error(
                f"The sessions collection {collection.full_name} needs index changes: "
                + "; ".join(action.description for action in actions),
                hint="Run 'manage.py mongo_sessions_setup'.",
                id="mongo_sessions.E102",
            )
        )
    if seed_index is not None:
        messages.append(
            Warning(
                f"{collection.full_name} still has the TTL index {seed_index['name']} of "
                "django-mongo-sessions 0.x: its documents are not read by this version.",
                hint="Run 'manage.py mongo_sessions_setup --migrate-seed'.",
                id="mongo_sessions.W101",
            )
        )
    return messages
