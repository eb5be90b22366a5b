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
anything authenticated), and a new document whose key never reached the
browser expires on its own.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from . import signals
from .clock import utc_now
from .connection import aget_collection, get_collection
from .exceptions import SessionStoreError
from .redaction import SessionKey

logger = logging.getLogger("mongo_sessions")

# How long the document made by cycle_key() lives until the session is saved
# under its new key: if that save fails, the new key never reaches the browser
# and its document must not outlive the request by long.
PROVISIONAL_LIFETIME = timedelta(minutes=10)
# On a document made by cycle_key(), until the key change is complete: the keys
# of the documents it replaces, deleted once it is saved.
REPLACES_FIELD = "replaces"


class KeyChangeMixin(SessionBase):
    """cycle_key() and the completion of a key change, for SessionStore.

    The three methods below that raise NotImplementedError are SessionStore's.
    """

    # After cycle_key(), until the session is saved under its new key: the keys
    # it replaces (kept, so a failed save leaves the old session usable).
    _replaced_keys: list[str] | None
    # Set by cycle_key() for its create(): the keys the new document replaces.
    _creating_replacement: list[str] | None

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
        try:
            self.create()
        finally:
            self._creating_replacement = None
        self._replaced_keys = replaced
        self._session_cache = data

    async def acycle_key(self) -> None:
        """Give the session a new key, keeping its data, from async code (see cycle_key)."""
        data = await self._aget_session()  # type: ignore[attr-defined]
        replaced = self._keys_replaced_by_next_key()
        self._creating_replacement = replaced
        try:
            await self.acreate()
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
