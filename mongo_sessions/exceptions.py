"""Exceptions raised by mongo_sessions."""

from __future__ import annotations

from pymongo.errors import ConnectionFailure, ExecutionTimeout, OperationFailure, PyMongoError

from .conf import conf
from .redaction import redact


class SessionStoreError(Exception):
    """Raise when a session operation against MongoDB fails."""

    def __init__(self, operation: str, message: str) -> None:
        self.operation = operation
        super().__init__(f"mongo_sessions: session {operation} failed: {message}")


class SessionStoreUnavailable(SessionStoreError):
    """Raise when MongoDB cannot be reached or answered too late."""


class SessionDataError(SessionStoreError, ValueError):
    """Raise when session data cannot be stored: not serializable, or too large."""


def chain_cause(error: Exception, session_key: str | None) -> Exception | None:
    """Return the driver error to chain, or None when its text holds the session key.

    Log handlers print chained exceptions in full, and a server error can name the
    document's _id (a validator's errInfo.failingDocumentId): that text is kept
    only in the package's own message, where the key is redacted.
    """
    if session_key and session_key in str(error):
        return None
    return error


def translate(operation: str, error: PyMongoError, session_key: str | None) -> SessionStoreError:
    """Return the package's exception for a driver error, without the session key."""
    detail = redact(str(error), session_key)
    if "certificate verify failed" in detail.lower():
        # Otherwise reported as a timeout: say what the operator must fix.
        return SessionStoreUnavailable(
            operation,
            f"the server's TLS certificate is not trusted (check tlsCAFile): "
            f"{type(error).__name__}: {detail}",
        )
    if isinstance(error, ConnectionFailure | ExecutionTimeout) or error.timeout:
        return SessionStoreUnavailable(
            operation,
            f"MongoDB did not answer in time or dropped the connection "
            f"(timeout {conf.MONGO_SESSIONS_TIMEOUT} s; {type(error).__name__}: {detail})",
        )
    if isinstance(error, OperationFailure):
        return SessionStoreError(operation, f"MongoDB refused it (code {error.code}): {detail}")
    return SessionStoreError(operation, f"{type(error).__name__}: {detail}")
