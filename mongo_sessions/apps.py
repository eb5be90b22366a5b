"""App configuration: registers the system checks, nothing else."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class MongoSessionsConfig(AppConfig):
    name = "mongo_sessions"
    verbose_name = "MongoDB sessions"

    def ready(self) -> None:
        from . import checks as mongo_checks

        checks.register(mongo_checks.check_settings)
        checks.register(mongo_checks.check_server, deploy=True)
