"""Constants, markers and helpers shared by the test modules (never imported from conftest.py)."""

from __future__ import annotations

import os

import django
import pytest
from pymongo import monitoring

# Set to run the suite against a real mongod instead of the SecantusDB stand-in.
TEST_URL = os.environ.get("MONGO_SESSIONS_TEST_URL")
# The database the package's collections live in during the tests.
TEST_DB = "mongo_sessions_tests"
# A second database, for the settings that name one (MONGO_DB_NAME, MONGO_CLIENT's).
OTHER_DB = "mongo_sessions_tests_other"
# SessionBase has its async API (aget, aset, acycle_key...) from Django 5.1 on.
requires_async_api = pytest.mark.skipif(
    django.VERSION < (5, 1), reason="Django < 5.1 has no async session API"
)


class StartedCommands(monitoring.CommandListener):
    """A command listener that looks at the commands sent only, not at their outcome."""

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class AllCommands(StartedCommands):
    """Record every command name (CommandCounter leaves out the index creation's)."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(event.command_name)
