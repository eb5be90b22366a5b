"""Django session engine storing each session as one MongoDB document."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from django.contrib.auth import SESSION_KEY as AUTH_USER_ID_KEY
from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)
from django.core import signing
from django.utils import timezone as django_timezone
from django.utils.crypto import get_random_string
from pymongo.errors import DuplicateKeyError

from . import devices, signals, touch
from .clock import utc_now
from .conf import conf
from .connection import aget_collection, get_collection
from .exceptions import SessionDataError, SessionStoreError
from .operation import mongo_operation

suspicious_logger = logging.getLogger("django.security.SuspiciousSession")

# Keys are made of Django's key alphabet only, so a cookie value can never be
# read as a query operator, contain a NUL, a "$" or a ".", or be huge.
SESSION_KEY_PATTERN = re.compile(r"[a-z0-9]{8,64}")
# A random 32-character key colliding is not expected in the lifetime of the
# universe; a loop that keeps failing means something else is wrong.
MAX_CREATE_ATTEMPTS = 10


class SessionStore(SessionBase):
    """Store sessions in MongoDB, one document per session."""

    _session_cache: dict[str, Any]

    def _validate_session_key(self, key: Any) -> bool:
        return isinstance(key, str) and SESSION_KEY_PATTERN.fullmatch(key) is not None

    def _get_new_session_key(self) -> str:
        # No exists() check: the insert's duplicate-key error decides (see create).
        return get_random_string(32, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

    def decode(self, session_data: Any) -> dict[str, Any]:
        try:
            decoded = signing.loads(session_data, salt=self.key_salt, serializer=self.serializer)
        except signing.BadSignature:
            suspicious_logger.warning("Session data corrupted")
        except Exception as e:
            # Truncated, written by another serializer, or not a string at all.
            suspicious_logger.warning("Session data could not be decoded (%s)", type(e).__name__)
        else:
            if isinstance(decoded, dict):
                return decoded
            suspicious_logger.warning("Session data is not a mapping")
        return {}

    # Reading.

    def load(self) -> dict[str, Any]:
        session_key = self.session_key
        if session_key is None:
            return {}
        with mongo_operation("load", session_key):
            collection = get_collection()
            document = collection.find_one(_live(session_key), projection=_DATA_ONLY)
        return self._loaded(document)

    async def aload(self) -> dict[str, Any]:
        session_key = self.session_key
        if session_key is None:
            return {}
        with mongo_operation("load", session_key):
            collection = await aget_collection()
            document = await collection.find_one(_live(session_key), projection=_DATA_ONLY)
        return self._loaded(document)

    def _loaded(self, document: dict[str, Any] | None) -> dict[str, Any]:
        if document is None:
            # Unknown or expired: forget the key so that a write creates a new one.
            self._session_key = None
            return {}
        data = self.decode(document.get("data"))
        touch.remember_loaded(self, document, data)  # the touch rule compares with it
        return data

    def exists(self, session_key: str) -> bool:
        if not self._validate_session_key(session_key):
            return False
        with mongo_operation("exists", session_key):
            collection = get_collection()
            return collection.find_one(_live(session_key), projection=_ID_ONLY) is not None

    async def aexists(self, session_key: str) -> bool:
        if not self._validate_session_key(session_key):
            return False
        with mongo_operation("exists", session_key):
            collection = await aget_collection()
            return await collection.find_one(_live(session_key), projection=_ID_ONLY) is not None

    # Writing.

    def create(self) -> None:
        for _ in range(MAX_CREATE_ATTEMPTS):
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise SessionStoreError("create", f"no unique key after {MAX_CREATE_ATTEMPTS} attempts")

    async def acreate(self) -> None:
        for _ in range(MAX_CREATE_ATTEMPTS):
            self._session_key = await self._aget_new_session_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise SessionStoreError("create", f"no unique key after {MAX_CREATE_ATTEMPTS} attempts")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        session_key: str = self.session_key
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        if must_create:
            document = self._new_document(session_key, data)
            with mongo_operation("create", session_key):
                collection = get_collection()
                try:
                    collection.insert_one(document)
                except DuplicateKeyError as e:
                    raise CreateError from e
            signals.send_session_created(self)
        else:
            if touch.touched(self, session_key, data):  # unmodified: expiry only, or nothing
                return None
            update = self._update(data)
            with mongo_operation("save", session_key):
                collection = get_collection()
                result = collection.update_one({"_id": session_key}, update)
            if result.matched_count == 0:
                # Deleted by another request (a logout): never bring it back.
                raise UpdateError
        return None

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        session_key: str = self.session_key
        data = await self._asession_for_save(no_load=must_create)
        if must_create:
            document = self._new_document(session_key, data)
            with mongo_operation("create", session_key):
                collection = await aget_collection()
                try:
                    await collection.insert_one(document)
                except DuplicateKeyError as e:
                    raise CreateError from e
            await signals.asend_session_created(self)
        else:
            if await touch.atouched(self, session_key, data):  # unmodified: expiry only, or nothing
                return None
            update = self._update(data)
            with mongo_operation("save", session_key):
                collection = await aget_collection()
                result = await collection.update_one({"_id": session_key}, update)
            if result.matched_count == 0:
                raise UpdateError
        return None

    async def _asession_for_save(self, no_load: bool) -> dict[str, Any]:
        """Return the session cache, loading it first, like SessionBase._get_session."""
        try:
            return self._session_cache
        except AttributeError:
            if self.session_key is None or no_load:
                self._session_cache = {}
            else:
                self._session_cache = await self.aload()
        return self._session_cache

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        if not self._validate_session_key(session_key):
            return
        with mongo_operation("delete", session_key):
            collection = get_collection()
            result = collection.delete_one({"_id": session_key})
        signals.send_session_deleted(self, session_key, result.deleted_count)

    async def adelete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        if not self._validate_session_key(session_key):
            return
        with mongo_operation("delete", session_key):
            collection = await aget_collection()
            result = await collection.delete_one({"_id": session_key})
        await signals.asend_session_deleted(self, session_key, result.deleted_count)

    @classmethod
    def clear_expired(cls) -> None:
        with mongo_operation("clear_expired"):
            collection = get_collection()
            collection.delete_many({"expire_date": {"$lte": utc_now()}})

    @classmethod
    async def aclear_expired(cls) -> None:
        with mongo_operation("clear_expired"):
            collection = await aget_collection()
            await collection.delete_many({"expire_date": {"$lte": utc_now()}})

    # The document.

    def _fields(self, data: dict[str, Any]) -> dict[str, Any]:
        """Return the stored fields for ``data``, raising SessionDataError if unencodable."""
        try:
            encoded = self.encode(data)
        except (TypeError, ValueError) as e:
            raise SessionDataError("save", f"the session data cannot be serialized: {e}") from e
        fields: dict[str, Any] = {"data": encoded, "expire_date": self._expire_date(data)}
        user_id = data.get(AUTH_USER_ID_KEY)
        if user_id is not None:
            fields["user_id"] = str(user_id)
        fields.update(devices.stored_fields(self))  # when MONGO_SESSIONS_RECORD_DEVICES is on
        return fields

    def _new_document(self, session_key: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"_id": session_key, **self._fields(data), "created_at": utc_now()}

    def _update(self, data: dict[str, Any]) -> dict[str, Any]:
        fields = self._fields(data)
        update: dict[str, Any] = {"$set": fields}
        if "user_id" not in fields:
            update["$unset"] = {"user_id": ""}
        return update

    def _expire_date(self, data: dict[str, Any]) -> datetime:
        """Return the absolute UTC time at which the server may drop the session."""
        expiry = data.get("_session_expiry")
        if not expiry:
            # Not set, or 0 (browser-close): the server-side lifetime applies.
            return utc_now() + timedelta(seconds=conf.MONGO_SESSIONS_TTL)
        if isinstance(expiry, str):
            expiry = datetime.fromisoformat(expiry)
        if isinstance(expiry, datetime):
            if django_timezone.is_naive(expiry):
                expiry = django_timezone.make_aware(expiry)
            return expiry.astimezone(timezone.utc)
        return utc_now() + timedelta(seconds=expiry)


# expire_date too: the touch rule (MONGO_SESSIONS_TOUCH_AFTER) compares with it.
_DATA_ONLY = {"_id": False, "data": True, "expire_date": True}
_ID_ONLY = {"_id": True}


def _live(session_key: str) -> dict[str, Any]:
    """Match the session unless it has expired but the TTL monitor has not removed it yet."""
    return {"_id": session_key, "expire_date": {"$gt": utc_now()}}
