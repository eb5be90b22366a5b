"""Key changes (cycle_key(), at login) that a failed write cannot turn into a lost session.

Django's cycle_key() inserts the session under a new key and deletes the old
document at once; if the save that ends the login request then fails, the
pre-login session (a cart) is gone and the new document is an orphan. Here:

1. cycle_key() inserts the new document, expiring within PROVISIONAL_LIFETIME,
   with the old key(s) in its ``replaces`` field; the old document stays.
2. The next save (SessionMiddleware's, at the end of the request) writes the
   data to the new document, still provisional.
3. Then the old document is deleted, and the new one gets its lasting expiry
   and loses ``replaces``. If that fails, the login has still succeeded; the
   next load of the new session finishes the job.

So whichever write fails, the old key still holds the pre-login session (never
anything authenticated). A new document whose key never reached the browser
(the insert or the save failed, so the login failed) is deleted: at once if
MongoDB answered the failing request, else by this process's next successful
load (the next request with the old cookie, with one worker). It expires
within PROVISIONAL_LIFETIME in any case.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from . import signals
from .clock import utc_now
from .connection import aget_collection, get_collection
from .exceptions import SessionStoreError, SessionStoreOutcomeUnknown
from .operation import mongo_operation
from .redaction import SessionKey

logger = logging.getLogger("mongo_sessions")

# How long the document made by cycle_key() lives until the session is saved
# under its new key: if that save fails, the new key never reaches the browser
# and its document must not outlive the request by long.
PROVISIONAL_LIFETIME = timedelta(minutes=10)
# On a document made by cycle_key(), until the key change is complete: the keys
# of the documents it replaces, deleted once it is saved.
REPLACES_FIELD = "replaces"
# Documents of failed logins that the failing request could not delete (MongoDB
# did not answer it), by key: the next successful load in this process deletes
# them. Bounded: each expires within PROVISIONAL_LIFETIME anyway. Mutated in
# place, never rebound: session.py reads it on every load (a dict check, no I/O).
abandoned_documents: dict[str, None] = {}
ABANDONED_LIMIT = 1000
_abandoned_lock = threading.Lock()


class KeyChangeMixin(SessionBase):
    """cycle_key() and the completion of a key change, for SessionStore.

    The three methods below that raise NotImplementedError are SessionStore's.
    """

    # After cycle_key(), until the session is saved under its new key: the keys
    # it replaces (kept, so a failed save leaves the old session usable).
    _replaced_keys: list[str] | None
    # Set by cycle_key() for its create(): the keys the new document replaces.
    _creating_replacement: list[str] | None
    # The key of the last document cycle_key()'s create() tried to insert.
    _provisional_key: str | None
    _no_answer: SessionStoreError | None

    def _operation(self, operation: str, session_key: str | None) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _expire_date(self, data: dict[str, Any]) -> datetime:
        raise NotImplementedError

    def _validate_session_key(self, key: Any) -> bool:
        raise NotImplementedError

    def cycle_key(self) -> None:
        """Give the session a new key, keeping its data (Django's contract).

        The old document is deleted once the session is saved under the new key,
        not before: if that save fails, the old key still holds the session as
        it was. The new document lives PROVISIONAL_LIFETIME until then.
        """
        data = self._get_session()  # type: ignore[attr-defined]
        replaced = self._keys_replaced_by_next_key()
        self._creating_replacement = replaced
        self._provisional_key = None
        try:
            self.create()
        except SessionStoreOutcomeUnknown:
            # The insert may have been applied: its key never reaches the browser.
            if self._provisional_key is not None:
                self._abandon(self._provisional_key)
            raise
        finally:
            self._creating_replacement = None
        self._replaced_keys = replaced
        self._session_cache = data

    async def acycle_key(self) -> None:
        """Give the session a new key, keeping its data, from async code (see cycle_key)."""
        data = await self._aget_session()  # type: ignore[attr-defined]
        replaced = self._keys_replaced_by_next_key()
        self._creating_replacement = replaced
        self._provisional_key = None
        try:
            await self.acreate()
        except SessionStoreOutcomeUnknown:
            if self._provisional_key is not None:
                await self._aabandon(self._provisional_key)
            raise
        finally:
            self._creating_replacement = None
        self._replaced_keys = replaced
        self._session_cache = data

    def _keys_replaced_by_next_key(self) -> list[str]:
        """Return the stored keys a new key replaces: the current one and those it replaces.

        A second cycle_key() before the save replaces the first one's document too.
        """
        replaced = list(self._replaced_keys or ())
        if self.session_key is not None:
            replaced.append(self.session_key)
        return replaced

    def _complete_key_change(
        self, session_key: str, replaced: list[str], data: dict[str, Any], on_load: bool
    ) -> None:
        """Delete the replaced documents, then give the new one its lasting expiry.

        The session is already stored under its new key, so a failure here is
        logged, not raised: the next load of the session completes the change.
        """
        errors: list[SessionStoreError] = []
        remaining: list[str] = []
        for old_key in replaced:
            try:
                with self._operation("cycle_key", old_key):
                    result = get_collection().delete_one({"_id": old_key})
            except SessionStoreError as e:
                errors.append(e)
                remaining.append(old_key)
            else:
                signals.send_session_deleted(self, old_key, result.deleted_count)
        try:
            with self._operation("cycle_key", session_key):
                get_collection().update_one({"_id": session_key}, self._completed(remaining, data))
        except SessionStoreError as e:
            errors.append(e)
        if errors:
            _log_incomplete(errors[0], on_load)

    async def _acomplete_key_change(
        self, session_key: str, replaced: list[str], data: dict[str, Any], on_load: bool
    ) -> None:
        """Delete the replaced documents, then give the new one its lasting expiry (async)."""
        errors: list[SessionStoreError] = []
        remaining: list[str] = []
        for old_key in replaced:
            try:
                with self._operation("cycle_key", old_key):
                    collection = await aget_collection()
                    result = await collection.delete_one({"_id": old_key})
            except SessionStoreError as e:
                errors.append(e)
                remaining.append(old_key)
            else:
                await signals.asend_session_deleted(self, old_key, result.deleted_count)
        try:
            with self._operation("cycle_key", session_key):
                collection = await aget_collection()
                await collection.update_one({"_id": session_key}, self._completed(remaining, data))
        except SessionStoreError as e:
            errors.append(e)
        if errors:
            _log_incomplete(errors[0], on_load)

    def _abandon(self, new_key: str) -> None:
        """Delete the new document of a key change whose login failed, or leave it for later.

        Called when the insert or the save under the new key failed, on that
        failure's path only: the new key never reaches the browser. Deleted at
        once if MongoDB answered this store, else by the next successful load
        in this process (see delete_abandoned). Never raises.
        """
        if self._no_answer is None:
            try:
                with self._operation("cycle_key", new_key):
                    get_collection().delete_one(_abandoned_filter(new_key))
            except SessionStoreError:
                pass
            else:
                return
        _remember_abandoned(new_key)

    async def _aabandon(self, new_key: str) -> None:
        """Delete the new document of a key change whose login failed (async; see _abandon)."""
        if self._no_answer is None:
            try:
                with self._operation("cycle_key", new_key):
                    collection = await aget_collection()
                    await collection.delete_one(_abandoned_filter(new_key))
            except SessionStoreError:
                pass
            else:
                return
        _remember_abandoned(new_key)

    def delete_abandoned(self) -> None:
        """Delete the documents failed logins left in this process (after a successful load).

        A failure is not raised (the load succeeded), nor held against this
        store (``mongo_operation``, not the store's own): the keys are kept for
        the next load.
        """
        for key in _take_abandoned():
            try:
                with mongo_operation("cycle_key", key):
                    get_collection().delete_one(_abandoned_filter(key))
            except SessionStoreError:
                _remember_abandoned(key)

    async def adelete_abandoned(self) -> None:
        """Delete the documents failed logins left in this process (async; see delete_abandoned)."""
        for key in _take_abandoned():
            try:
                with mongo_operation("cycle_key", key):
                    collection = await aget_collection()
                    await collection.delete_one(_abandoned_filter(key))
            except SessionStoreError:
                _remember_abandoned(key)

    def _keys_to_delete(self, session_key: str | None) -> list[str]:
        """Return the valid keys delete(session_key) removes.

        Deleting the session itself (a logout, flush()) also deletes the keys it
        is replacing after a cycle_key() in the same request.
        """
        if session_key is None:
            if self.session_key is None:
                return []
            keys = [self.session_key, *(self._replaced_keys or ())]
            self._replaced_keys = None
        else:
            keys = [session_key]
            if self._replaced_keys and session_key in self._replaced_keys:
                self._replaced_keys.remove(session_key)
        return [SessionKey(key) for key in keys if self._validate_session_key(key)]

    def _completed(self, remaining: list[str], data: dict[str, Any]) -> dict[str, Any]:
        """Return the update giving the new document its lasting expiry.

        ``remaining`` are the replaced keys whose deletion failed: they stay
        recorded, and the next load deletes them.
        """
        update: dict[str, Any] = {"$set": {"expire_date": self._expire_date(data)}}
        if remaining:
            update["$set"][REPLACES_FIELD] = remaining
        else:
            update["$unset"] = {REPLACES_FIELD: ""}
        return update


def _abandoned_filter(key: str) -> dict[str, Any]:
    """Match the document of a failed login: still provisional (a completed key
    change has no ``replaces`` field), so a session in use is never deleted."""
    return {"_id": SessionKey(key), REPLACES_FIELD: {"$exists": True}}


def _remember_abandoned(key: str) -> None:
    with _abandoned_lock:
        if len(abandoned_documents) >= ABANDONED_LIMIT:
            # The oldest first: it is the nearest to expiring on its own.
            del abandoned_documents[next(iter(abandoned_documents))]
        abandoned_documents[SessionKey(key)] = None


def _take_abandoned() -> list[str]:
    with _abandoned_lock:
        keys = list(abandoned_documents)
        abandoned_documents.clear()
    return keys


def provisional(expire_date: datetime) -> datetime:
    """Return the expiry of a document made by cycle_key() until the session's save."""
    return min(expire_date, utc_now() + PROVISIONAL_LIFETIME)


def _log_incomplete(error: SessionStoreError, on_load: bool) -> None:
    """Log that a key change is left for a later load to complete (no key in the text)."""
    logger.warning(
        "A session's key change is not complete after its %s (%s); its next load "
        "completes it. Until then the old document, if still there, holds only the "
        "data from before the change.",
        "load" if on_load else "save",
        error,
    )
