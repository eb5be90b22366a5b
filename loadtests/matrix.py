"""The load test's engine matrix: the session engines the demo runs on, by short name.

Read by ``python -m loadtests run`` (``--engines``), by the demo's load-test
settings (``loadtests/demo_settings.py``, ``DEMO_SESSION_ENGINE``) and by the
Locust users (``--session-engine``, which decides what they can check).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

#: Short name -> Django's SESSION_ENGINE.
SESSION_ENGINES: dict[str, str] = {
    "mongo_sessions": "mongo_sessions.session",
    "cache": "django.contrib.sessions.backends.cache",
    "db": "django.contrib.sessions.backends.db",
    "signed_cookies": "django.contrib.sessions.backends.signed_cookies",
}
#: The engine the others are compared with.
BASELINE = "mongo_sessions"
#: Engines that keep sessions on the server, so a deleted or cycled key is dead.
#: With signed_cookies the whole session is in the cookie: an old cookie stays
#: valid until it expires, which is that engine's documented limitation.
SERVER_SIDE = frozenset({"mongo_sessions", "cache", "db"})


def postgres_database(url: str) -> dict[str, Any]:
    """Django's DATABASES entry for a postgres:// URL (DATABASE_URL).

    Raises ImproperlyConfigured for another scheme.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


def redis_cache(url: str, **options: Any) -> dict[str, Any]:
    """Django's CACHES entry for a redis:// URL (REDIS_URL); ``options`` such as KEY_PREFIX."""
    return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, **options}
