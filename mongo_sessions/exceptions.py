"""Exceptions raised by mongo_sessions, and the translation of driver errors into them.

Three outcomes of a failed operation are told apart, because a caller (or a
person reading a log) must act differently on each:

* ``SessionStoreError`` (its own class): MongoDB answered and refused the
  operation. Nothing changed.
* ``SessionStoreUnavailable``: MongoDB could not be reached or did not answer
  in time. A read returned nothing; a write was never sent, so nothing changed.
* ``SessionStoreOutcomeUnknown``: a write was sent, but its result is not
  known. It may have been applied (a write-concern error: the primary applied
  it and the replicas did not confirm it in time; or the reply was lost).
"""

from __future__ import annotations

import re
import traceback
from typing import TYPE_CHECKING

from . import driver
from .conf import conf
from .redaction import redact

if TYPE_CHECKING:
    from pymongo.errors import PyMongoError

# The most characters of a server's errmsg (or of another driver error's text)
# quoted in a message: a driver's text can be megabytes (BulkWriteError's
# "full error" holds every refused document).
MAX_ERROR_TEXT = 300
# Of the codes of a BulkWriteError's write errors, how many are listed.
MAX_ERROR_CODES = 5
# MongoDB's code for refused credentials.
AUTHENTICATION_FAILED_CODE = 18
# What a duplicate key errmsg quotes after this is a value of the document.
_DUPLICATE_VALUE = re.compile(r"\s*dup key:.*", re.DOTALL)

# Operations that write: a timeout or a lost connection after the command may
# have reached the server leaves their outcome unknown.
WRITE_OPERATIONS = frozenset(
    {"create", "save", "delete", "cycle_key", "clear_expired", "revoke_user_sessions"}
)


class SessionStoreError(Exception):
    """Raise when a session operation against MongoDB fails.

    ``operation`` names the operation (``"load"``, ``"save"``...), ``detail``
    says why, without the session key. ``no_answer`` is True when MongoDB did
    not answer at all (unreachable, timed out, connection dropped): a store
    that saw such an error does not call MongoDB again (see ``session.py``).
    """

    no_answer = False

    def __init__(self, operation: str, message: str) -> None:
        self.operation = operation
        self.detail = message
        super().__init__(f"mongo_sessions: session {operation} failed: {message}")


class SessionStoreUnavailable(SessionStoreError):
    """Raise when MongoDB cannot be reached or answered too late.

    A write that raises this was never sent (pymongo could not select a server),
    so nothing changed.
    """

    no_answer = True


class SessionStoreOutcomeUnknown(SessionStoreError):
    """Raise when a write was sent but MongoDB did not confirm its result.

    The write may or may not have been applied: MongoDB answered with a
    write-concern error (the primary applied it, the majority did not confirm it
    in time: code 64, ``w: "majority"`` with ``wtimeout``), or the reply did not
    come within the timeout or the connection dropped after the command was sent.
    Read the session again to know which. ``no_answer`` is True in the second case.
    """

    def __init__(self, operation: str, message: str, *, no_answer: bool) -> None:
        self.operation = operation
        self.detail = message
        self.no_answer = no_answer
        Exception.__init__(self, f"mongo_sessions: session {operation} outcome unknown: {message}")


class SessionDataError(SessionStoreError, ValueError):
    """Raise when session data cannot be stored: not serializable, or too large."""


def chain_cause(error: Exception, session_key: str | None) -> Exception | None:
    """Return the driver error to chain, or None when its text holds the session key.

    Log handlers print chained exceptions in full, and a server error can name the
    document's _id (a validator's errInfo.failingDocumentId): that text is kept
    only in the package's own message, where the key is redacted. The variables
    of the driver's finished frames (commands, encoded messages: the key is in
    them) are cleared, as Django's DEBUG page and error trackers print them.
    """
    _clear_frame_variables(error)
    if isinstance(error, driver.errors.BulkWriteError):
        return None  # its text holds every refused document: keys and data
    if session_key and session_key in str(error):
        return None
    if isinstance(error, driver.errors.OperationFailure) and error.details:
        # Its text appends the server's whole reply ("full error: {...}"), which
        # can quote session data: chain a copy of the same class and code with
        # the short description only (what isinstance and .code tell survives).
        try:
            short = type(error)(describe_error(error), code=error.code)
        except Exception:  # a subclass with another signature: chain nothing
            return None
        short.__traceback__ = error.__traceback__
        return short
    return error


def describe_error(error: BaseException, session_key: str | None = None) -> str:
    """Return a short text for a driver error, without session keys or session data.

    A server's error (``OperationFailure`` and its subclasses) is described by its
    class, ``code``, ``codeName`` and the first :data:`MAX_ERROR_TEXT` characters
    of its ``errmsg``, never by pymongo's ``str()``, which appends the whole reply
    ("full error: {...}": a write error's ``op``, ``keyValue``, the filter hold the
    session key and its data). A ``BulkWriteError`` gives the number of write
    errors and their codes only. Any other error's text is cut to
    :data:`MAX_ERROR_TEXT` characters. ``session_key``, if given, is redacted.
    """
    name = type(error).__name__
    if isinstance(error, driver.errors.BulkWriteError):
        details = error.details if isinstance(error.details, dict) else {}
        codes = [e.get("code") for e in details.get("writeErrors", []) if isinstance(e, dict)]
        listed = ", ".join(str(c) for c in sorted(set(codes), key=str)[:MAX_ERROR_CODES])
        text = f"{name}: {len(codes)} write error(s) (code {listed})"
        concern = details.get("writeConcernErrors") or []
        if concern:
            text += f" and {len(concern)} write concern error(s)"
        return text
    if isinstance(error, driver.errors.OperationFailure):
        details = error.details if isinstance(error.details, dict) else {}
        errmsg = details.get("errmsg")
        if not isinstance(errmsg, str):
            errmsg = str(error).partition(", full error: ")[0]
        errmsg = _DUPLICATE_VALUE.sub(" (dup key value not shown)", errmsg)
        code_name = details.get("codeName")
        label = f"code {error.code}" + (f" {code_name}" if isinstance(code_name, str) else "")
        return f"{name} ({label}): {_bounded(redact(errmsg, session_key))}"
    return f"{name}: {_bounded(redact(str(error), session_key))}"


def _bounded(text: str) -> str:
    if len(text) <= MAX_ERROR_TEXT:
        return text
    return f"{text[:MAX_ERROR_TEXT]}... ({len(text):,} characters)"


def _clear_frame_variables(error: BaseException) -> None:
    """Clear the local variables of the finished frames of ``error`` and its causes."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        # Frames still running (the caller's) are left alone by clear_frames().
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


# Said for error code 18 (AuthenticationFailed), as check E105 does; never the password.
CREDENTIALS_REFUSED = (
    "MongoDB refused the credentials (code 18 AuthenticationFailed): check the user name, "
    "the password and the authSource (the database the user was created in) in "
    "MONGO_SESSIONS_URL, MONGO_DB_USER and MONGO_DB_PASSWORD, or "
    "MONGO_SESSIONS_CLIENT_OPTIONS, whichever the site sets"
)


def translate(
    operation: str,
    error: PyMongoError,
    session_key: str | None,
    timeout: float | None = None,
) -> SessionStoreError:
    """Return the package's exception for a driver error, without the session key.

    ``timeout`` is the bound the operation ran under, in seconds (default
    ``MONGO_SESSIONS_TIMEOUT``); it is quoted in the message.
    """
    seconds = timeout or conf.MONGO_SESSIONS_TIMEOUT
    cause = describe_error(error, session_key)
    if "certificate verify failed" in str(error).lower():
        # Otherwise reported as a timeout: say what the operator must fix.
        return SessionStoreUnavailable(
            operation, f"the server's TLS certificate is not trusted (check tlsCAFile): {cause}"
        )
    writes = operation in WRITE_OPERATIONS
    if writes and isinstance(error, driver.errors.WriteConcernError):
        # WTimeoutError included: the server answered, so this is not a timeout of ours.
        return SessionStoreOutcomeUnknown(
            operation,
            f"MongoDB applied the write but did not confirm its write concern "
            f"(code {error.code}), so it may or may not persist: {cause}",
            no_answer=False,
        )
    if isinstance(error, driver.errors.ServerSelectionTimeoutError):
        # pymongo raises this only when no attempt was sent (a retry that cannot
        # find a server re-raises the first attempt's error instead).
        return SessionStoreUnavailable(
            operation,
            f"MongoDB could not be reached (timeout {seconds} s); nothing was sent: {cause}",
        )
    if (
        isinstance(error, driver.errors.ConnectionFailure | driver.errors.ExecutionTimeout)
        or error.timeout
    ):
        if writes:
            # The command may have reached the server, which may apply it later
            # (a blocked server runs it once it resumes).
            return SessionStoreOutcomeUnknown(
                operation,
                f"the write may have been applied: it was sent, or may have been, and no reply "
                f"came (timeout {seconds} s; {cause})",
                no_answer=True,
            )
        return SessionStoreUnavailable(
            operation,
            f"MongoDB did not answer in time or dropped the connection "
            f"(timeout {seconds} s; {cause})",
        )
    if (
        isinstance(error, driver.errors.OperationFailure)
        and error.code == AUTHENTICATION_FAILED_CODE
    ):
        # Say what to fix (as check E105 does); the password itself is never quoted.
        return SessionStoreError(operation, f"{CREDENTIALS_REFUSED} ({cause})")
    if isinstance(error, driver.errors.OperationFailure):
        return SessionStoreError(operation, f"MongoDB refused it (code {error.code}): {cause}")
    return SessionStoreError(operation, cause)
