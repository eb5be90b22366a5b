"""The bound on every MongoDB call: a time limit, and driver errors as the package's own."""

from __future__ import annotations

from types import TracebackType

import pymongo
from bson.errors import InvalidDocument
from pymongo.errors import DocumentTooLarge, PyMongoError

from .exceptions import SessionDataError, chain_cause, translate
from .redaction import redact
from .validation import timeout_seconds


class mongo_operation:  # lower case: used like the function it was, in a with statement
    """Bound the enclosed MongoDB calls in time and wrap driver errors.

    ``with mongo_operation("load", session_key):`` runs the block under
    ``pymongo.timeout(timeout or MONGO_SESSIONS_TIMEOUT)`` (seconds), and turns
    a driver error raised in it into the package's exception for
    ``operation``, with ``session_key`` redacted from its message. A class
    rather than a ``@contextmanager`` generator: it runs on every session
    operation, and a generator costs more to create, start and finish.
    """

    __slots__ = ("_bound", "operation", "seconds", "session_key", "timeout")

    def __init__(
        self, operation: str, session_key: str | None = None, timeout: float | None = None
    ) -> None:
        self.operation = operation
        self.session_key = session_key
        self.timeout = timeout

    def __enter__(self) -> None:
        self.seconds = self.timeout or timeout_seconds()
        self._bound = pymongo.timeout(self.seconds)
        self._bound.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        self._bound.__exit__(exc_type, error, traceback)
        if error is None or not isinstance(error, PyMongoError | InvalidDocument):
            return None  # nothing to translate (a CreateError, a SessionStoreError...)
        operation, session_key = self.operation, self.session_key
        if isinstance(error, DocumentTooLarge):
            raise SessionDataError(
                operation, "the session is larger than MongoDB's 16 MB document limit"
            ) from error
        if isinstance(error, InvalidDocument):
            raise SessionDataError(operation, redact(str(error), session_key)) from chain_cause(
                error, session_key
            )
        raise translate(operation, error, session_key, self.seconds) from chain_cause(
            error, session_key
        )
