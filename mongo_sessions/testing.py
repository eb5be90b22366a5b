"""Helpers for tests of sites using mongo_sessions: count what the store sends."""

from __future__ import annotations

from pymongo import monitoring

# Commands the driver sends on its own (handshakes, monitoring, auth, cleanup).
DRIVER_COMMANDS = frozenset(
    {
        "hello",
        "ismaster",
        "isMaster",
        "ping",
        "endSessions",
        "saslStart",
        "saslContinue",
        "buildInfo",
        "getLastError",
    }
)
# The automatic index creation's commands: it runs in a background thread, at a
# time of its own, never as part of a session operation.
HOUSEKEEPING_COMMANDS = frozenset({"listCollections", "createIndexes"})
_NOT_COUNTED = DRIVER_COMMANDS | HOUSEKEEPING_COMMANDS
WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})


class CommandCounter(monitoring.CommandListener):
    """Record the name of each command a client sends, but the driver's and the housekeeping's.

    Give it to the package's clients with
    ``MONGO_SESSIONS_CLIENT_OPTIONS = {"event_listeners": [counter]}``.
    """

    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in _NOT_COUNTED:
            self.commands.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def reset(self) -> None:
        self.commands.clear()

    @property
    def writes(self) -> list[str]:
        return [name for name in self.commands if name in WRITE_COMMANDS]
