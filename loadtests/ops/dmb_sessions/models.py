"""The session model of Django's database engine, stored by django-mongodb-backend."""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.base_session import AbstractBaseSession

#: The ``DATABASES`` alias of the MongoDB database.
ALIAS = "mongodb"


class MongoDBSession(AbstractBaseSession):
    """Django's ``Session``, the same fields, in the MongoDB database."""

    class Meta:
        app_label = "dmb_sessions"
        db_table = "django_session"


class SessionStore(DatabaseSessionStore):
    """Django's database engine, unchanged but for its model."""

    @classmethod
    def get_model_class(cls) -> Any:
        return MongoDBSession


class Router:
    """Send this app's model to the MongoDB database, and nothing else there."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return ALIAS if model._meta.app_label == "dmb_sessions" else None

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return (db == ALIAS) == (app_label == "dmb_sessions")
