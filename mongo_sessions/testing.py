"""Helpers for tests of sites using mongo_sessions: count what the store sends."""

from __future__ import annotations

import inspect

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
WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})


class CommandCounter(monitoring.CommandListener):
    """Record the name of each command a client sends, leaving out the driver's own.

    Give it to the package's clients with
    ``MONGO_SESSIONS_CLIENT_OPTIONS = {"event_listeners": [counter]}``. The
    package's sync ``MongoClient`` and async ``AsyncMongoClient`` get the same
    listeners; ``client="sync"`` or ``client="async"`` makes a counter count only
    the commands of that kind of client (told apart by the pymongo API,
    ``pymongo.synchronous`` or ``pymongo.asynchronous``, that sent them), so one
    counter per client shows which one a request used.
    """

    def __init__(self, client: str | None = None) -> None:
        if client not in (None, "sync", "async"):
            raise ValueError(f"client must be None, 'sync' or 'async', not {client!r}")
        self.client = client
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in DRIVER_COMMANDS:
            return
        if self.client is not None and _sending_client() != self.client:
            return
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


def _sending_client() -> str | None:
    """Return "sync" or "async": which pymongo API is publishing the current command."""
    frame = inspect.currentframe()
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith("pymongo.asynchronous."):
            return "async"
        if module.startswith("pymongo.synchronous."):
            return "sync"
        frame = frame.f_back
    return None
