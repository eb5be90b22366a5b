"""The bound on every MongoDB call: a time limit, and driver errors as the package's own."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

import pymongo
from bson.errors import InvalidDocument
from pymongo.errors import DocumentTooLarge, PyMongoError

from .exceptions import SessionDataError, chain_cause, translate
from .redaction import redact
from .validation import timeout_seconds

# time.monotonic() by which the innermost mongo_operation() ends; 0.0 outside one.
_deadline: ContextVar[float] = ContextVar("mongo_sessions_deadline", default=0.0)


@contextlib.contextmanager
def mongo_operation(
    operation: str, session_key: str | None = None, timeout: float | None = None
) -> Iterator[None]:
    """Bound the enclosed MongoDB calls in time and wrap driver errors.

    ``timeout`` (seconds) defaults to ``MONGO_SESSIONS_TIMEOUT``; it covers
    server selection, connection checkout, retries and the server's answer,
    as ``pymongo.timeout()`` does. Raises ``SessionDataError`` for data MongoDB
    cannot store, and the ``SessionStoreError`` of ``translate()`` for any other
    driver error.
    """
    bound = timeout or timeout_seconds()
    outer = _deadline.get()
    deadline = time.monotonic() + bound
    token = _deadline.set(min(outer, deadline) if outer else deadline)
    try:
        with pymongo.timeout(bound):
            yield
    except DocumentTooLarge as e:
        raise SessionDataError(
            operation, "the session is larger than MongoDB's 16 MB document limit"
        ) from e
    except InvalidDocument as e:
        raise SessionDataError(operation, redact(str(e), session_key)) from chain_cause(
            e, session_key
        )
    except PyMongoError as e:
        raise translate(operation, e, session_key, bound) from chain_cause(e, session_key)
    finally:
        _deadline.reset(token)


def operation_deadline() -> float:
    """Return the ``time.monotonic()`` by which the enclosing operation ends, 0.0 outside one."""
    return _deadline.get()
