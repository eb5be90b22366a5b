"""The bound on every MongoDB call: a time limit, and driver errors as the package's own."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType

from . import driver
from .exceptions import SessionDataError, chain_cause, translate
from .redaction import redact
from .validation import timeout_seconds

# time.monotonic() by which the innermost mongo_operation() ends; 0.0 outside one.
_deadline: ContextVar[float] = ContextVar("mongo_sessions_deadline", default=0.0)

# Called, without argument, after an operation found no server to send to
# (connection.py registers the check for a client that lost every member).
# Never on the normal path: only a ServerSelectionTimeoutError runs them.
no_server_hooks: list[Callable[[], None]] = []


class mongo_operation:  # lower case: used like the function it was, in a with statement
    """Bound the enclosed MongoDB calls in time and wrap driver errors.

    ``with mongo_operation("load", session_key):`` runs the block under
    ``pymongo.timeout(timeout)``; ``timeout`` (seconds) defaults to
    ``MONGO_SESSIONS_TIMEOUT``, and covers server selection, connection
    checkout, retries and the server's answer, as ``pymongo.timeout()`` does.
    Raises ``SessionDataError`` for data MongoDB cannot store, and the
    ``SessionStoreError`` of ``translate()`` for any other driver error, with
    ``session_key`` redacted. A class rather than a ``@contextmanager``
    generator: it runs on every session operation, and a generator costs more
    to create, start and finish.
    """

    __slots__ = ("_bound", "_token", "operation", "seconds", "session_key", "timeout")

    def __init__(
        self, operation: str, session_key: str | None = None, timeout: float | None = None
    ) -> None:
        self.operation = operation
        self.session_key = session_key
        self.timeout = timeout

    def __enter__(self) -> None:
        bound = self.seconds = self.timeout or timeout_seconds()
        outer = _deadline.get()
        deadline = time.monotonic() + bound
        self._token = _deadline.set(min(outer, deadline) if outer else deadline)
        self._bound = driver.pymongo.timeout(bound)
        self._bound.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        try:
            self._bound.__exit__(exc_type, error, traceback)
        finally:
            _deadline.reset(self._token)
        if error is None or not isinstance(
            error, driver.errors.PyMongoError | driver.bson_errors.InvalidDocument
        ):
            return None  # nothing to translate (a CreateError, a SessionStoreError...)
        operation, session_key = self.operation, self.session_key
        if isinstance(error, driver.errors.ServerSelectionTimeoutError):
            for hook in no_server_hooks:
                hook()
        if isinstance(error, driver.errors.DocumentTooLarge):
            raise SessionDataError(
                operation, "the session is larger than MongoDB's 16 MB document limit"
            ) from error
        if isinstance(error, driver.bson_errors.InvalidDocument):
            raise SessionDataError(operation, redact(str(error), session_key)) from chain_cause(
                error, session_key
            )
        raise translate(operation, error, session_key, self.seconds) from chain_cause(
            error, session_key
        )


def operation_deadline() -> float:
    """Return the ``time.monotonic()`` by which the enclosing operation ends, 0.0 outside one."""
    return _deadline.get()
