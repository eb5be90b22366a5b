"""Exceptions raised by mongo_sessions."""

from __future__ import annotations


class SessionStoreError(Exception):
    """Raise when a session operation against MongoDB fails."""

    def __init__(self, operation: str, message: str) -> None:
        self.operation = operation
        super().__init__(f"mongo_sessions: session {operation} failed: {message}")


class SessionStoreUnavailable(SessionStoreError):
    """Raise when MongoDB cannot be reached or answered too late."""


class SessionDataError(SessionStoreError, ValueError):
    """Raise when session data cannot be stored: not serializable, or too large."""
