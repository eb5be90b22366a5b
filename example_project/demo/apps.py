"""The demo app: pages, templates and the rundemo / demo_setup commands."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _sqlite_wal(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Several gunicorn workers write the user table (last_login) at once:
    # write-ahead logging lets readers and one writer share the SQLite file.
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")


class DemoConfig(AppConfig):
    name = "demo"
    verbose_name = "django-mongo-sessions demo"

    def ready(self) -> None:
        connection_created.connect(_sqlite_wal, dispatch_uid="demo-sqlite-wal")
