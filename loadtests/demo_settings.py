"""Settings of the demo under load: the demo's own settings plus the engine matrix.

``python -m loadtests run`` starts the demo with
``DJANGO_SETTINGS_MODULE=loadtests.demo_settings``, so that this same site runs
on Django's own session engines too and the engines are compared on one site.
Environment variables read here:

``DEMO_SESSION_ENGINE``
    mongo_sessions (default), cache (on Redis when REDIS_URL is set, else
    per-process local memory, which gunicorn workers do not share), db
    (django.contrib.sessions' table in the default database), signed_cookies.
``REDIS_URL``
    redis://host:port/db: Django's Redis cache as the default cache.
``DATABASE_URL``
    postgres://user:password@host:port/name makes PostgreSQL the default
    database (users, and sessions with the db engine) instead of SQLite.
``DEMO_SESSION_SAVE_EVERY_REQUEST=1``
    SESSION_SAVE_EVERY_REQUEST = True.
``DEMO_FAST_PASSWORD_HASHER=1``
    Hash passwords with MD5, as test suites do, so that the load test's logins
    measure the session store rather than PBKDF2.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from demo.settings import *  # noqa: F403
from demo.settings import DATABASES, INSTALLED_APPS
from loadtests.matrix import SESSION_ENGINES, postgres_database, redis_cache


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


DEMO_SESSION_ENGINE = os.environ.get("DEMO_SESSION_ENGINE", "mongo_sessions").strip().lower()
if DEMO_SESSION_ENGINE not in SESSION_ENGINES:
    raise ImproperlyConfigured(
        f"DEMO_SESSION_ENGINE={DEMO_SESSION_ENGINE!r}: use one of " + ", ".join(SESSION_ENGINES)
    )
SESSION_ENGINE = SESSION_ENGINES[DEMO_SESSION_ENGINE]
SESSION_SAVE_EVERY_REQUEST = _flag("DEMO_SESSION_SAVE_EVERY_REQUEST")
if DEMO_SESSION_ENGINE == "db" and "django.contrib.sessions" not in INSTALLED_APPS:
    INSTALLED_APPS.append("django.contrib.sessions")  # its migration creates django_session

if os.environ.get("REDIS_URL"):
    CACHES = {"default": redis_cache(os.environ["REDIS_URL"])}
if os.environ.get("DATABASE_URL"):
    DATABASES["default"] = {
        **postgres_database(os.environ["DATABASE_URL"]),
        # One connection per worker, kept between requests, as production sites do.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }

if _flag("DEMO_FAST_PASSWORD_HASHER"):
    PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
