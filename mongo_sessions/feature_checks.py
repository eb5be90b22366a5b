"""System checks of the optional features: database alias, touch rule, devices (ids E040-E049).

``checks.check_settings`` calls ``check_feature_settings()``; nothing here opens
a connection.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from .conf import conf
from .database_alias import CHECK_ID as ALIAS_CHECK_ID
from .database_alias import HINT as ALIAS_HINT
from .database_alias import SETTING as ALIAS_SETTING
from .database_alias import engine_problem
from .devices import ADDRESS_MODES

MIDDLEWARE = "mongo_sessions.middleware.SessionMiddleware"
# Settings that decide the connection on their own: none may be set with the alias.
CONNECTION_STYLE_SETTINGS = (
    "MONGO_CLIENT",
    "MONGO_SESSIONS_URL",
    "MONGO_HOST",
    "MONGO_PORT",
    "MONGO_DB_NAME",
    "MONGO_DB_USER",
    "MONGO_DB_PASSWORD",
    "MONGO_SESSIONS_CLIENT_OPTIONS",
)


def check_feature_settings() -> list[CheckMessage]:
    """Report invalid or contradictory settings of the optional features."""
    return [*_check_alias(), *_check_touch(), *_check_devices()]


def _check_alias() -> list[CheckMessage]:
    alias = conf.MONGO_SESSIONS_DATABASE_ALIAS
    if alias is None:
        return []
    messages: list[CheckMessage] = []
    problem = engine_problem(alias)
    if problem is not None:
        messages.append(
            Error(
                f"{ALIAS_SETTING} = {alias!r} cannot be used: {problem}.",
                hint=ALIAS_HINT,
                id=ALIAS_CHECK_ID,
            )
        )
    contradicting = [name for name in CONNECTION_STYLE_SETTINGS if _given(name)]
    if contradicting:
        messages.append(
            Error(
                f"{ALIAS_SETTING} is set together with {', '.join(contradicting)}; the "
                f"DATABASES entry decides the client and the database on its own.",
                hint=f"Remove {', '.join(contradicting)}, or put their values (address, "
                "credentials, options, database NAME) in the DATABASES entry.",
                id="mongo_sessions.E041",
            )
        )
    return messages


def _given(name: str) -> bool:
    # Set to a value that means something: the 0.x defaults False/None count as unset.
    return conf.is_set(name) and getattr(settings, name) not in (None, False, {}, "")


def _check_touch() -> list[CheckMessage]:
    value = conf.MONGO_SESSIONS_TOUCH_AFTER
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return [
            Error(
                "MONGO_SESSIONS_TOUCH_AFTER must be None or a number of seconds >= 0, "
                f"not {value!r}.",
                hint="For example 300: a read-only request extends the expiry at most once "
                "every 5 minutes.",
                id="mongo_sessions.E042",
            )
        ]
    if MIDDLEWARE not in settings.MIDDLEWARE and not settings.SESSION_SAVE_EVERY_REQUEST:
        return [
            Warning(
                "MONGO_SESSIONS_TOUCH_AFTER has no effect: Django's SessionMiddleware saves "
                "unmodified sessions only with SESSION_SAVE_EVERY_REQUEST.",
                hint=f"Use {MIDDLEWARE!r} in MIDDLEWARE instead of Django's.",
                id="mongo_sessions.W040",
            )
        ]
    return []


def _check_devices() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    record = conf.MONGO_SESSIONS_RECORD_DEVICES
    if not isinstance(record, bool):
        messages.append(
            Error(
                f"MONGO_SESSIONS_RECORD_DEVICES must be True or False, not {record!r}.",
                hint="It turns on the recording of user agent, address and last activity.",
                id="mongo_sessions.E043",
            )
        )
    mode = conf.MONGO_SESSIONS_DEVICE_ADDRESS
    if mode not in ADDRESS_MODES:
        messages.append(
            Error(
                f"MONGO_SESSIONS_DEVICE_ADDRESS must be one of {', '.join(ADDRESS_MODES)}, "
                f"not {mode!r}.",
                hint="'truncate' keeps the network (/24, /48), 'hash' a keyed hash, "
                "'none' nothing.",
                id="mongo_sessions.E044",
            )
        )
    if record is True and MIDDLEWARE not in settings.MIDDLEWARE:
        messages.append(
            Warning(
                "MONGO_SESSIONS_RECORD_DEVICES is on, but nothing is recorded without the "
                "package's session middleware.",
                hint=f"Use {MIDDLEWARE!r} in MIDDLEWARE instead of Django's.",
                id="mongo_sessions.W041",
            )
        )
    return messages
