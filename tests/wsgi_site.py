"""The settings of the one-module WSGI sites a test writes and serves with gunicorn.

The site's module (its views, ``urlpatterns`` and ``application``) calls
``configure()`` first; ``tests.servers.one_module_site`` writes it into the
test's folder and serves it, with the test's MongoDB settings in
``SITE_MONGO_URL`` and ``SITE_COLLECTION``. Imported in the gunicorn process:
Django and the package only.
"""

from __future__ import annotations

import os

import django
from django.conf import settings


def configure(secret_key: str, urlconf: str) -> None:
    """Configure Django for a site whose URLs are in the module ``urlconf``, and set it up."""
    settings.configure(
        SECRET_KEY=secret_key,
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=urlconf,
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "mongo_sessions"],
        DATABASES={},
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="mongo_sessions.session",
        MONGO_SESSIONS_URL=os.environ["SITE_MONGO_URL"],
        MONGO_SESSIONS_COLLECTION=os.environ["SITE_COLLECTION"],
    )
    django.setup()
