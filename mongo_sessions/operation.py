"""The bound on every MongoDB call: a time limit, and driver errors as the package's own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pymongo
from bson.errors import InvalidDocument
from pymongo.errors import DocumentTooLarge, PyMongoError

from .exceptions import SessionDataError, chain_cause, translate
from .redaction import redact
from .validation import timeout_seconds


@contextlib.contextmanager
def mongo_operation(
    operation: str, session_key: str | None = None, timeout: float | None = None
) -> Iterator[None]:
    """Bound the enclosed MongoDB calls in time and wrap driver errors."""
    seconds = timeout or timeout_seconds()
    try:
        with pymongo.timeout(seconds):
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
        raise translate(operation, e, session_key, seconds) from chain_cause(e, session_key)
