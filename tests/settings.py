"""Django settings for the test suite; the MongoDB URL comes from tests/conftest.py."""

from __future__ import annotations

SECRET_KEY = "tests-only-not-secret"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "mongo_sessions",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
SESSION_ENGINE = "mongo_sessions.session"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
MONGO_SESSIONS_COLLECTION = "sessions_under_test"
# MONGO_SESSIONS_URL and MONGO_DB_NAME are set by conftest.py once the server is up.
LOGGING_CONFIG = None
# Fast hashing: the tests create users, they do not test password storage.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
