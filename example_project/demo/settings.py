"""Settings of the django-mongo-sessions demo site.

Everything an adopter needs for the session store is in the "Sessions in
MongoDB" block below; the rest is an ordinary small Django site. The load
tests run this site with settings of their own built on these
(``loadtests/demo_settings.py`` starts with ``from demo.settings import *``).

Environment variables read here:

``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG``, ``DJANGO_ALLOWED_HOSTS``
    The usual Django knobs.
``MONGO_SESSIONS_URL``
    Address of the MongoDB server (default ``mongodb://127.0.0.1:27017/demo``).
``MONGO_SESSIONS_STYLE``
    Which of the package's connection styles the site uses:
    ``url`` (default), ``client``, ``database``, ``client-path``,
    ``database-path``, ``host`` or ``database-alias`` (django-mongodb-backend).
``MONGO_SESSIONS_TIMEOUT``
    Seconds to wait for the server before a session operation fails (default 5).
``MONGO_SESSIONS_TOUCH_AFTER``
    Seconds between two extensions of a session's expiry by read-only requests
    (default 300; empty: off).
``DEMO_DATA_DIR``
    Folder of the demo's SQLite user table (``rundemo --data-dir`` sets it);
    without it the file is ``example_project/db.sqlite3``.
``DEMO_USERNAME``, ``DEMO_PASSWORD``
    The demo account that ``manage.py demo_setup`` creates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent  # example_project/


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# WARNING: this default key is public (it is in the repository) and exists only so
# that the demo runs out of the box. Set DJANGO_SECRET_KEY to a long random value
# for anything reachable by other people: the key signs the session data.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    "django-insecure-demo-only-key-do-not-use-in-production-7c1f0b9e",
)
DEBUG = _env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "mongo_sessions",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The package's session middleware: Django's, plus async load/save under ASGI,
    # the touch rule (MONGO_SESSIONS_TOUCH_AFTER) and device recording.
    "mongo_sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"
ASGI_APPLICATION = "demo.asgi.application"  # rundemo --asgi: uvicorn

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The user table (only the demo account) lives in SQLite; sessions do not.
DEMO_DATA_DIR = os.environ.get("DEMO_DATA_DIR", "")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": (Path(DEMO_DATA_DIR) if DEMO_DATA_DIR else BASE_DIR) / "db.sqlite3",
        # Several gunicorn workers share the file: wait for a lock instead of failing.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DEMO_USERNAME = os.environ.get("DEMO_USERNAME", "demo")
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "demo-password")

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"pymongo": {"level": "WARNING"}},
}


# ---------------------------------------------------------------------------
# Sessions in MongoDB
# ---------------------------------------------------------------------------
# This is the part to copy. Pick ONE of the connection styles below; the demo
# chooses with MONGO_SESSIONS_STYLE so that each of them can be run and tested.

SESSION_ENGINE = "mongo_sessions.session"
# Ordinary Django session settings keep working, for instance:
SESSION_COOKIE_AGE = 60 * 60 * 24 * 14  # two weeks, Django's default
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Set these two to True when the site is served over HTTPS:
SESSION_COOKIE_SECURE = _env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# Where the sessions go (optional: these are the defaults).
MONGO_SESSIONS_COLLECTION = "mongo_sessions"
# Fail a request after this many seconds without an answer from MongoDB.
MONGO_SESSIONS_TIMEOUT = float(os.environ.get("MONGO_SESSIONS_TIMEOUT", "5"))
# Sliding expiry without a write per request: a read-only request extends the
# expiry (one small write of the date) when the last extension is older than
# this many seconds. Empty in the environment: off.
_TOUCH_AFTER = os.environ.get("MONGO_SESSIONS_TOUCH_AFTER", "300").strip()
MONGO_SESSIONS_TOUCH_AFTER = float(_TOUCH_AFTER) if _TOUCH_AFTER else None
# Record each session's browser, approximate address (the /24 or /48 network) and
# last activity, for the "Your sessions" page (account/sessions/).
MONGO_SESSIONS_RECORD_DEVICES = True
MONGO_SESSIONS_DEVICE_ADDRESS = "truncate"

# The one address all styles below are built from, so the demo can be pointed at
# any server. In your own settings you would write the value in place.
DEMO_MONGO_URL = os.environ.get("MONGO_SESSIONS_URL", "mongodb://127.0.0.1:27017/demo")
MONGO_SESSIONS_STYLE = os.environ.get("MONGO_SESSIONS_STYLE", "url").strip().lower()


def _database_in_url(url: str, default: str = "demo") -> str:
    """The database named in a mongodb:// URL's path ("demo" when there is none)."""
    return unquote(urlsplit(url).path.lstrip("/")) or default


MONGO_CLIENT: Any  # (for type checkers: a client, a database or a dotted path below)

if MONGO_SESSIONS_STYLE == "url":
    # Style "url" (the simplest): one mongodb:// URL. The database is the URL's
    # path; credentials, replica set and TLS options go in the URL as usual, e.g.
    # "mongodb://user:secret@db1,db2/sessions?replicaSet=rs0&authSource=admin".
    MONGO_SESSIONS_URL = DEMO_MONGO_URL

elif MONGO_SESSIONS_STYLE == "client":
    # Style "client": hand over a MongoClient you build yourself (any pymongo
    # options), plus the database to use in it. connect=False lets gunicorn fork
    # its workers before the client opens connections.
    import pymongo

    MONGO_CLIENT = pymongo.MongoClient(DEMO_MONGO_URL, connect=False, serverSelectionTimeoutMS=5000)
    MONGO_DB_NAME = _database_in_url(DEMO_MONGO_URL)
    # With MONGO_CLIENT, the async session methods (ASGI, async views) need a function
    # that returns a new AsyncMongoClient: one per event loop (see demo/mongo.py).
    MONGO_SESSIONS_ASYNC_CLIENT = "demo.mongo.async_client"

elif MONGO_SESSIONS_STYLE == "database":
    # Style "database": hand over a pymongo Database; the client and the database
    # name both come from it, so MONGO_DB_NAME is not needed. (tz_aware=True is
    # fine too: the package copes with either kind of client.)
    import pymongo

    MONGO_CLIENT = pymongo.MongoClient(
        DEMO_MONGO_URL, connect=False, serverSelectionTimeoutMS=5000, tz_aware=True
    )[_database_in_url(DEMO_MONGO_URL)]
    MONGO_SESSIONS_ASYNC_CLIENT = "demo.mongo.async_client"  # as in style "client"

elif MONGO_SESSIONS_STYLE == "client-path":
    # Style "client-path": a dotted path to a MongoClient that your project
    # already has (here example_project/demo/mongo.py), imported on first use,
    # so the site shares one client with the rest of its code.
    MONGO_CLIENT = "demo.mongo.client"
    MONGO_DB_NAME = _database_in_url(DEMO_MONGO_URL)
    MONGO_SESSIONS_ASYNC_CLIENT = "demo.mongo.async_client"  # as in style "client"

elif MONGO_SESSIONS_STYLE == "database-path":
    # Style "database-path": a dotted path to a pymongo Database object.
    MONGO_CLIENT = "demo.mongo.db"
    MONGO_SESSIONS_ASYNC_CLIENT = "demo.mongo.async_client"  # as in style "client"

elif MONGO_SESSIONS_STYLE == "host":
    # Style "host": the separate settings of older session engines. Here they are
    # taken apart from the URL; in your settings you would write them out, e.g.
    #   MONGO_HOST = "db.internal"; MONGO_PORT = 27017; MONGO_DB_NAME = "sessions"
    _parts = urlsplit(DEMO_MONGO_URL)
    MONGO_HOST = _parts.hostname or "localhost"
    MONGO_PORT = _parts.port or 27017
    MONGO_DB_NAME = _database_in_url(DEMO_MONGO_URL)
    # Credentials only when there are some (the package's default is False).
    MONGO_DB_USER = os.environ.get("MONGO_DB_USER") or unquote(_parts.username or "") or False
    MONGO_DB_PASSWORD = (
        os.environ.get("MONGO_DB_PASSWORD") or unquote(_parts.password or "") or False
    )

elif MONGO_SESSIONS_STYLE == "database-alias":
    # Style "database-alias": MongoDB configured once, in DATABASES, served by
    # django-mongodb-backend (pip install django-mongodb-backend; its version
    # follows Django's). Sessions use that connection's client and database. A
    # site on MongoDB would name "default"; the demo keeps its users in SQLite.
    DATABASES["mongodb"] = {
        "ENGINE": "django_mongodb_backend",
        "HOST": DEMO_MONGO_URL,
        "NAME": _database_in_url(DEMO_MONGO_URL),
    }
    MONGO_SESSIONS_DATABASE_ALIAS = "mongodb"

else:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"MONGO_SESSIONS_STYLE={MONGO_SESSIONS_STYLE!r}: use one of "
        "url, client, database, client-path, database-path, host, database-alias"
    )
