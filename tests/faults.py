"""Fault injection for the tests: the server's failCommand failpoint, for the package's client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from pymongo.errors import PyMongoError


class FailCommand:
    """Arm and disarm the server's ``failCommand`` failpoint for one client application.

    The failpoint is server-wide; ``appName`` in its data restricts it to the
    clients created with ``appname=app_name`` (the package's, in the tests), so
    the tests' own client can always turn it off again.
    """

    def __init__(self, client: pymongo.MongoClient[Any], app_name: str) -> None:
        self.admin = client.admin
        self.app_name = app_name

    def refusal(self) -> str | None:
        """Return why the server refuses configureFailPoint, or None if it accepts it."""
        try:
            self.off()
        except PyMongoError as e:
            return f"the server refuses configureFailPoint (start it with test commands): {e}"
        return None

    def arm(
        self,
        commands: list[str],
        mode: str | dict[str, int] = "alwaysOn",
        **data: object,
    ) -> None:
        """Make ``commands`` of this application fail as ``data`` says (errorCode, ...)."""
        self.admin.command(
            "configureFailPoint",
            "failCommand",
            mode=mode,
            data={"failCommands": commands, "appName": self.app_name, **data},
        )

    def off(self) -> None:
        self.admin.command("configureFailPoint", "failCommand", mode="off")


def is_replica_set(client: pymongo.MongoClient[Any]) -> bool:
    """Whether the server is a replica-set member: retryable writes need one."""
    return "setName" in client.admin.command("hello")


def own_app_name(settings: Any, prefix: str) -> str:
    """Give the package's client an application name of this test's own, and return it.

    The name is ``prefix``, a dash and 10 random hex digits; a failpoint armed
    for it fails the package's commands only.
    """
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"appname": name}
    return name


def failpoint_for(client: pymongo.MongoClient[Any], app_name: str) -> Iterator[FailCommand]:
    """Yield the failCommand failpoint of ``app_name``'s clients, for a fixture.

    Skips the test if the server refuses configureFailPoint; the failpoint is
    always off after the test.
    """
    failpoint = FailCommand(client, app_name)
    reason = failpoint.refusal()
    if reason is not None:
        pytest.skip(reason)
    yield failpoint
    failpoint.off()
