"""Settings of the all-MongoDB site; the server URL and database come from the environment.

``makemigrations`` writes the contrib apps' migrations (with ObjectId keys) to
the package ``mdb_migrations``, which the test puts in a temporary folder.
"""

from __future__ import annotations

import os

SECRET_KEY = "tests-only-not-secret"
USE_TZ = True
INSTALLED_APPS = [
    "tests.mongodb_site.apps.MongoAuthConfig",
    "tests.mongodb_site.apps.MongoContentTypesConfig",
    "mongo_sessions",
]
DATABASES = {
    "default": {
        "ENGINE": "django_mongodb_backend",
        "HOST": os.environ["MDB_SITE_URL"],
        "NAME": os.environ["MDB_SITE_DB"],
    }
}
DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
MIGRATION_MODULES = {"auth": "mdb_migrations.auth", "contenttypes": "mdb_migrations.contenttypes"}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ROOT_URLCONF = "tests.urls"
MIDDLEWARE = [
    "mongo_sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

# MongoDB is configured once, above: the sessions use the "default" connection.
SESSION_ENGINE = "mongo_sessions.session"
MONGO_SESSIONS_DATABASE_ALIAS = "default"
