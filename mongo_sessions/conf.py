"""Settings of mongo_sessions, read lazily from django.conf.settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    # pymongo waits 30 s for a server by default: far longer than a request
    # should hang when MongoDB is gone.
    "serverSelectionTimeoutMS": 5000,
    "connectTimeoutMS": 5000,
    "appname": "django-mongo-sessions",
}


class Settings:
    """Expose every setting as a property so override_settings() is honoured."""

    @property
    def MONGO_CLIENT(self) -> Any:
        return getattr(settings, "MONGO_CLIENT", None)

    @property
    def MONGO_SESSIONS_ASYNC_CLIENT(self) -> Any:
        return getattr(settings, "MONGO_SESSIONS_ASYNC_CLIENT", None)

    @property
    def MONGO_SESSIONS_URL(self) -> str | None:
        return getattr(settings, "MONGO_SESSIONS_URL", None)

    @property
    def MONGO_DB_NAME(self) -> str:
        return getattr(settings, "MONGO_DB_NAME", "test")

    @property
    def MONGO_SESSIONS_COLLECTION(self) -> str:
        return getattr(settings, "MONGO_SESSIONS_COLLECTION", "mongo_sessions")

    @property
    def MONGO_HOST(self) -> str:
        return getattr(settings, "MONGO_HOST", "localhost")

    @property
    def MONGO_PORT(self) -> int:
        return getattr(settings, "MONGO_PORT", 27017)

    @property
    def MONGO_DB_USER(self) -> str | bool:
        return getattr(settings, "MONGO_DB_USER", False)

    @property
    def MONGO_DB_PASSWORD(self) -> str | bool:
        return getattr(settings, "MONGO_DB_PASSWORD", False)

    @property
    def MONGO_SESSIONS_CLIENT_OPTIONS(self) -> dict[str, Any]:
        return getattr(settings, "MONGO_SESSIONS_CLIENT_OPTIONS", {})

    @property
    def MONGO_SESSIONS_TTL(self) -> int:
        ttl: int = getattr(settings, "MONGO_SESSIONS_TTL", settings.SESSION_COOKIE_AGE)
        return ttl

    @property
    def MONGO_SESSIONS_TIMEOUT(self) -> float:
        return getattr(settings, "MONGO_SESSIONS_TIMEOUT", 5.0)

    @property
    def MONGO_SESSIONS_BATCH_SIZE(self) -> int:
        size: int = getattr(settings, "MONGO_SESSIONS_BATCH_SIZE", 5000)
        return size

    @property
    def MONGO_SESSIONS_BATCH_TIMEOUT(self) -> float:
        return getattr(settings, "MONGO_SESSIONS_BATCH_TIMEOUT", 60.0)

    @property
    def MONGO_SESSIONS_AUTO_INDEX(self) -> bool:
        return getattr(settings, "MONGO_SESSIONS_AUTO_INDEX", True)

    # Settings of the optional features (mongo_sessions.database_alias, .touch, .devices).

    @property
    def MONGO_SESSIONS_DATABASE_ALIAS(self) -> str | None:
        return getattr(settings, "MONGO_SESSIONS_DATABASE_ALIAS", None)

    @property
    def MONGO_SESSIONS_TOUCH_AFTER(self) -> float | None:
        return getattr(settings, "MONGO_SESSIONS_TOUCH_AFTER", None)

    @property
    def MONGO_SESSIONS_RECORD_DEVICES(self) -> bool:
        return getattr(settings, "MONGO_SESSIONS_RECORD_DEVICES", False)

    @property
    def MONGO_SESSIONS_DEVICE_ADDRESS(self) -> str:
        return getattr(settings, "MONGO_SESSIONS_DEVICE_ADDRESS", "truncate")

    def is_set(self, name: str) -> bool:
        """Return whether the project's settings define ``name`` explicitly."""
        return hasattr(settings, name)


conf = Settings()

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
