"""System checks for the mongo_sessions settings and, with --deploy, the server.

The settings are validated by the ``validation`` package, which the connection also runs
before it builds a client; this module turns its findings into check messages.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import ERROR, CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured

from . import driver
from .conf import conf
from .feature_checks import check_feature_settings
from .validation import Problem, settings_problems
from .validation.write_concern import unacknowledged_problem

UNAUTHORIZED_CODE = 13
AUTHENTICATION_FAILED_CODE = 18


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report invalid or contradictory mongo_sessions settings."""
    messages: list[CheckMessage] = []
    messages += _check_client()
    messages += [_message(problem) for problem in settings_problems()]
    messages += _check_error_page()
    messages += check_feature_settings()  # database alias, touch rule, devices (E040-E049)
    return messages


def _message(problem: Problem) -> CheckMessage:
    kind = Warning if problem.level == "warning" else Error
    return kind(f"{problem.message}.", hint=problem.hint, id=problem.id)


def _check_client() -> list[CheckMessage]:
    # The connection's own resolver: check and run time accept the same values.
    from .target import ClientSettingError, resolve_async_client_factory, resolve_mongo_client

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
                    id="mongo_sessions.W003",
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
    try:
        client = resolve_mongo_client(given)[0]
    except ClientSettingError as e:
        messages.append(Error(e.message, hint=e.hint, id=e.check_id))
    else:
        # A client given with w=0 cannot work, and is never changed here (E019).
        problem = unacknowledged_problem(client, "MONGO_CLIENT")
        if problem is not None:
            messages.append(_message(problem))
    try:
        resolve_async_client_factory(async_factory)
    except ClientSettingError as e:
        messages.append(Error(e.message, hint=e.hint, id=e.check_id))
    return messages


def _check_error_page() -> list[CheckMessage]:
    from .debug import FILTER_PATH, filter_in_use
    from .passwords import configured_passwords

    if not settings.DEBUG or filter_in_use():
        return []
    given = conf.MONGO_CLIENT
    # A dotted path's module is imported on first use only: until then, whether
    # its client holds a password cannot be known, so warn as if it did.
    unknown = isinstance(given, str) and given.rpartition(".")[0] not in sys.modules
    if not unknown and not configured_passwords():
        return []
    return [
        Warning(
            "DEBUG is True and Django's error page would show the MongoDB password held by "
            "the mongo_sessions settings (Django hides only settings named like PASSWORD, "
            "never a password inside a URL or a local variable).",
            hint=f"Set DEFAULT_EXCEPTION_REPORTER_FILTER = {FILTER_PATH!r} (or a subclass).",
            id="mongo_sessions.W002",
        )
    ]


def check_server(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """With --deploy: ping the server and verify the collection's indexes.

    Never raises: a server that cannot be reached or resolved (DNS) is E101, a
    refused authentication E105, a missing privilege E104.
    """
    if any(message.level >= ERROR for message in check_settings()):
        return []  # The settings errors say it all; connecting would only add noise.
    from .connection import get_target
    from .exceptions import SessionStoreError
    from .index_changes import plan_index_changes, seed_ttl_index
    from .operation import mongo_operation

    try:
        with mongo_operation("deploy check"):
            collection = get_target().collection
            collection.database.command("ping")
            actions = plan_index_changes(collection)
            seed_index = seed_ttl_index(collection)
    except (SessionStoreError, ImproperlyConfigured) as e:
        return [_server_error(e)]
    messages: list[CheckMessage] = []
    blocking = [action for action in actions if action.kind in ("drop", "replace")]
    for action in blocking:
        messages.append(
            Error(
                f"The sessions collection {collection.full_name} has a {action.blocking}.",
                hint="Run 'manage.py mongo_sessions_setup' (it drops the index, or replaces a "
                "unique one on expire_date by the TTL index); until then new sessions fail.",
                id="mongo_sessions.E103",
            )
        )
    others = [action for action in actions if action not in blocking]
    if others:
        messages.append(
            Error(
                f"The sessions collection {collection.full_name} needs index changes: "
                + "; ".join(action.description for action in others),
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


def _server_error(error: Exception) -> CheckMessage:
    """Return the check message for a deploy check that could not talk to the server."""
    cause = error.__cause__
    if (
        isinstance(cause, driver.errors.OperationFailure)
        and cause.code == AUTHENTICATION_FAILED_CODE
    ):
        return Error(
            str(error),  # it says the credentials were refused and which settings hold them
            hint="Check the user name, the password and the authSource (the database the "
            "user was created in).",
            id="mongo_sessions.E105",
        )
    if isinstance(cause, driver.errors.OperationFailure) and cause.code == UNAUTHORIZED_CODE:
        return Error(
            f"The MongoDB user lacks a privilege the sessions need: {error}",
            hint="Grant find, insert, update, remove and listIndexes on the sessions "
            "collection (the readWrite role has them; createIndex too, unless "
            "MONGO_SESSIONS_AUTO_INDEX is False), or give credentials if none are set.",
            id="mongo_sessions.E104",
        )
    hint = "Check the connection settings and that the server is up."
    if isinstance(cause, driver.errors.ConfigurationError) or "DNS" in str(error):
        hint = (
            "The host name could not be resolved: a mongodb+srv:// URL needs DNS SRV and TXT "
            "records for its host. Check the name and this machine's DNS, or use a "
            "mongodb:// URL listing the hosts."
        )
    return Error(f"MongoDB cannot be reached: {error}", hint=hint, id="mongo_sessions.E101")
