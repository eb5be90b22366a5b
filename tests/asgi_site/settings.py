"""Settings of the ASGI test site; MongoDB URL, collection and SQLite file come from the env."""

from __future__ import annotations

import os

from mongo_sessions.testing import CommandCounter

SECRET_KEY = "tests-only-not-secret"
USE_TZ = True
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "mongo_sessions",
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["ASGI_SITE_SQLITE"]}
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ROOT_URLCONF = "tests.asgi_site.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
# ASGI_SITE_DJANGO_MIDDLEWARE=1: Django's own SessionMiddleware, for comparison.
_SESSION_MIDDLEWARE = (
    "django.contrib.sessions.middleware.SessionMiddleware"
    if os.environ.get("ASGI_SITE_DJANGO_MIDDLEWARE") == "1"
    else "mongo_sessions.middleware.SessionMiddleware"
)
MIDDLEWARE = [_SESSION_MIDDLEWARE, "django.contrib.auth.middleware.AuthenticationMiddleware"]

SESSION_ENGINE = "mongo_sessions.session"
MONGO_SESSIONS_URL = os.environ["ASGI_SITE_MONGO_URL"]
MONGO_SESSIONS_COLLECTION = os.environ["ASGI_SITE_COLLECTION"]
MONGO_SESSIONS_TOUCH_AFTER = 300
MONGO_SESSIONS_RECORD_DEVICES = True
SESSION_SAVE_EVERY_REQUEST = os.environ.get("ASGI_SITE_SAVE_EVERY_REQUEST") == "1"

# One counter per client: the package's sync MongoClient and its AsyncMongoClient.
SYNC_COMMANDS = CommandCounter(client="sync")
ASYNC_COMMANDS = CommandCounter(client="async")
MONGO_SESSIONS_CLIENT_OPTIONS = {"event_listeners": [SYNC_COMMANDS, ASYNC_COMMANDS]}
