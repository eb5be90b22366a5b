"""Settings of mongo_sessions, read from django.conf.settings on first use and kept."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    # pymongo waits 30 s for a server by default: far longer than a request
    # should hang when MongoDB is gone.
    "serverSelectionTimeoutMS": 5000,
    "connectTimeoutMS": 5000,
    # Poll the server every 500 ms (pymongo's minimum) instead of pymongo's
    # streaming monitor with a 10 s heartbeat: after a step-down error the
    # server is found again in about 0.5 s instead of about 9 s, and the
    # round-trip estimate that pymongo.timeout() checks every operation against
    # gets a fresh sample every 500 ms, so one taken while the server hung
    # (longer than the timeout: every operation refused at once) is soon
    # replaced. Measured: README, "Recovery after a hung server or a step-down".
    "serverMonitoringMode": "poll",
    "heartbeatFrequencyMS": 500,
    "appname": "django-mongo-sessions",
}


# Every setting of the package and its default (MONGO_SESSIONS_TTL's is
# SESSION_COOKIE_AGE, read when it is needed).
DEFAULTS: dict[str, Any] = {
    "MONGO_CLIENT": None,
    "MONGO_SESSIONS_ASYNC_CLIENT": None,
    "MONGO_SESSIONS_URL": None,
    "MONGO_DB_NAME": "test",
    "MONGO_SESSIONS_COLLECTION": "mongo_sessions",
    "MONGO_HOST": "localhost",
    "MONGO_PORT": 27017,
    "MONGO_DB_USER": False,
    "MONGO_DB_PASSWORD": False,
    "MONGO_SESSIONS_CLIENT_OPTIONS": {},
    "MONGO_SESSIONS_TTL": None,
    "MONGO_SESSIONS_TIMEOUT": 5.0,
    "MONGO_SESSIONS_BATCH_SIZE": 5000,
    "MONGO_SESSIONS_BATCH_TIMEOUT": 60.0,
    "MONGO_SESSIONS_AUTO_INDEX": True,
    "MONGO_SESSIONS_FORMAT": "signed",
    "MONGO_SESSIONS_COMPRESS_MIN_LENGTH": 512,
    # Settings of the optional features (mongo_sessions.database_alias, .touch, .devices).
    "MONGO_SESSIONS_DATABASE_ALIAS": None,
    "MONGO_SESSIONS_TOUCH_AFTER": None,
    "MONGO_SESSIONS_RECORD_DEVICES": False,
    "MONGO_SESSIONS_DEVICE_ADDRESS": "truncate",
}
# Django's own settings that the package reads on every session operation, kept
# the same way (they have no default here: Django's global settings give one).
DJANGO_SETTINGS = frozenset(
    {"SECRET_KEY", "SECRET_KEY_FALLBACKS", "SESSION_COOKIE_AGE", "SESSION_SERIALIZER"}
)
# Django settings a cached value depends on besides its own name.
_DEPENDS_ON = {"SESSION_COOKIE_AGE": ("MONGO_SESSIONS_TTL",)}


class Settings:
    """Every setting of mongo_sessions, read from Django's settings once, then kept.

    Also the few settings of Django's own that every session operation reads
    (``DJANGO_SETTINGS``).

    A setting is read on first use and kept as an attribute of this object, so
    the hot path never goes through Django's lazy settings object (a missing
    setting costs it an exception per lookup). Django's ``setting_changed``
    signal, sent by ``override_settings()`` and the test runner, drops the kept
    value of the setting it names, which is read again on next use. Assigning
    to ``django.conf.settings`` at run time sends no signal: use
    ``override_settings()``, as Django's own cached settings require.
    """

    MONGO_CLIENT: Any
    MONGO_SESSIONS_ASYNC_CLIENT: Any
    MONGO_SESSIONS_URL: str | None
    MONGO_DB_NAME: str
    MONGO_SESSIONS_COLLECTION: str
    MONGO_HOST: str
    MONGO_PORT: int
    MONGO_DB_USER: str | bool
    MONGO_DB_PASSWORD: str | bool
    MONGO_SESSIONS_CLIENT_OPTIONS: dict[str, Any]
    MONGO_SESSIONS_TTL: int
    MONGO_SESSIONS_TIMEOUT: float
    MONGO_SESSIONS_BATCH_SIZE: int
    MONGO_SESSIONS_BATCH_TIMEOUT: float
    MONGO_SESSIONS_AUTO_INDEX: bool
    MONGO_SESSIONS_FORMAT: str
    MONGO_SESSIONS_COMPRESS_MIN_LENGTH: int
    MONGO_SESSIONS_DATABASE_ALIAS: str | None
    MONGO_SESSIONS_TOUCH_AFTER: float | None
    MONGO_SESSIONS_RECORD_DEVICES: bool
    MONGO_SESSIONS_DEVICE_ADDRESS: str
    SECRET_KEY: str | bytes
    SECRET_KEY_FALLBACKS: list[str | bytes]
    SESSION_COOKIE_AGE: int
    SESSION_SERIALIZER: str

    def __getattr__(self, name: str) -> Any:
        # Only called for a setting not kept yet: read it, keep it.
        if name in DJANGO_SETTINGS:
            value = getattr(settings, name)
        else:
            try:
                default = DEFAULTS[name]
            except KeyError:
                raise AttributeError(f"{type(self).__name__!r} has no setting {name!r}") from None
            if name == "MONGO_SESSIONS_TTL":
                default = self.SESSION_COOKIE_AGE
            value = getattr(settings, name, default)
        self.__dict__[name] = value
        return value

    def refresh(self, name: str | None = None) -> None:
        """Drop the kept value of ``name`` (and of what depends on it), or of every setting."""
        if name is None:
            self.__dict__.clear()
            return
        for kept in (name, *_DEPENDS_ON.get(name, ())):
            self.__dict__.pop(kept, None)

    def is_set(self, name: str) -> bool:
        """Return whether the project's settings define ``name`` explicitly."""
        return hasattr(settings, name)


conf = Settings()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    conf.refresh(setting)


# Settings whose change invalidates the per-process client and collection.
CONNECTION_SETTINGS = frozenset(
    {
        "MONGO_CLIENT",
        "MONGO_SESSIONS_ASYNC_CLIENT",
        "MONGO_SESSIONS_URL",
        "MONGO_DB_NAME",
        "MONGO_SESSIONS_COLLECTION",
        "MONGO_HOST",
        "MONGO_PORT",
        "MONGO_DB_USER",
        "MONGO_DB_PASSWORD",
        "MONGO_SESSIONS_CLIENT_OPTIONS",
        "MONGO_SESSIONS_AUTO_INDEX",
        "MONGO_SESSIONS_DATABASE_ALIAS",
    }
)
