"""Fault injection for the tests: the server's failCommand failpoint."""

from __future__ import annotations

from typing import Any

import pymongo
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
