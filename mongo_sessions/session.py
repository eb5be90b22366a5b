"""Django session engine storing each session as one MongoDB document."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import Iterator
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
from pymongo import ReadPreference
from pymongo.errors import DuplicateKeyError

from . import batches
from .clock import utc_now
from .conf import conf
from .connection import aget_collection, get_collection
from .exceptions import SessionDataError, SessionStoreError, SessionStoreUnavailable
from .key_change import REPLACES_FIELD, KeyChangeMixin, provisional
from .operation import mongo_operation
from .redaction import SessionKey

suspicious_logger = logging.getLogger("django.security.SuspiciousSession")

# Keys are made of Django's key alphabet only, so a cookie value can never be
# read as a query operator, contain a NUL, a "$" or a ".", or be huge.
SESSION_KEY_PATTERN = re.compile(r"[a-z0-9]{8,64}")
# A random 32-character key colliding is not expected in the lifetime of the
# universe; a loop that keeps failing means something else is wrong.
MAX_CREATE_ATTEMPTS = 10
# A random value each insert writes, so that a create whose reply was lost and
# whose retry ran into its own document recognises it (see save).
CREATE_ID_FIELD = "create_id"


class SessionStore(KeyChangeMixin, SessionBase):
    """Store sessions in MongoDB, one document per session."""

    _session_cache: dict[str, Any]

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        # The first error by which MongoDB did not answer this store. From then
        # on the store raises at once instead of waiting again: Django makes one
        # store per request, and the auth middleware, the session middleware and
        # the debug page each touch it after a failure.
        self._no_answer: SessionStoreError | None = None
        # The state of a key change (see key_change.py).
        self._replaced_keys = None
        self._creating_replacement = None

    def _set_session_key(self, value: str | None) -> None:
        # Kept as a SessionKey: a traceback's variables show its hash, not the key.
        super()._set_session_key(SessionKey(value) if isinstance(value, str) else value)

    _session_key = property(SessionBase._get_session_key, _set_session_key)

    def _validate_session_key(self, key: Any) -> bool:
        return isinstance(key, str) and SESSION_KEY_PATTERN.fullmatch(key) is not None

    def _get_new_session_key(self) -> str:
        # No exists() check: the insert's duplicate-key error decides (see create).
        return get_random_string(32, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

    if not hasattr(SessionBase, "_aget_session"):  # Django < 5.1: no async session API

        async def _aget_session(self, no_load: bool = False) -> dict[str, Any]:
            """Return the session cache, loading it first, as Django 5.1's own does."""
            self.accessed = True
            try:
                return self._session_cache
            except AttributeError:
                if self.session_key is None or no_load:
                    self._session_cache = {}
                else:
                    self._session_cache = await self.aload()
            return self._session_cache

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

    @contextlib.contextmanager
    def _operation(self, operation: str, session_key: str | None) -> Iterator[None]:
        """Run MongoDB calls under mongo_operation(); fail at once if MongoDB stopped answering."""
        first = self._no_answer
        if first is not None:
            raise SessionStoreUnavailable(
                operation,
                f"not sent: MongoDB did not answer this session's {first.operation} "
                f"a moment ago ({first.detail})",
            ) from first
        try:
            with mongo_operation(operation, session_key):
                yield
        except SessionStoreError as e:
            if e.no_answer:
                self._no_answer = e
            raise

    # Reading.

    def load(self) -> dict[str, Any]:
        session_key = self.session_key
        if session_key is None:
            return {}
        with self._operation("load", session_key):
            collection = get_collection()
            document = collection.find_one(_live(session_key), projection=_LOADED_FIELDS)
        data = self._loaded(document)
        if document is not None and document.get(REPLACES_FIELD):
            self._complete_key_change(session_key, document[REPLACES_FIELD], data, True)
        return data

    async def aload(self) -> dict[str, Any]:
        session_key = self.session_key
        if session_key is None:
            return {}
        with self._operation("load", session_key):
            collection = await aget_collection()
            document = await collection.find_one(_live(session_key), projection=_LOADED_FIELDS)
        data = self._loaded(document)
        if document is not None and document.get(REPLACES_FIELD):
            await self._acomplete_key_change(session_key, document[REPLACES_FIELD], data, True)
        return data

    def _loaded(self, document: dict[str, Any] | None) -> dict[str, Any]:
        if document is None:
            # Unknown or expired: forget the key so that a write creates a new one.
            self._session_key = None
            return {}
        return self.decode(document.get("data"))

    def exists(self, session_key: str) -> bool:
        if not self._validate_session_key(session_key):
            return False
        if session_key in (self._replaced_keys or ()):
            # Replaced by this session's cycle_key(): kept only until the save.
            return False
        session_key = SessionKey(session_key)
        with self._operation("exists", session_key):
            collection = get_collection()
            return collection.find_one(_live(session_key), projection=_ID_ONLY) is not None

    async def aexists(self, session_key: str) -> bool:
        if not self._validate_session_key(session_key):
            return False
        if session_key in (self._replaced_keys or ()):
            return False
        session_key = SessionKey(session_key)
        with self._operation("exists", session_key):
            collection = await aget_collection()
            return await collection.find_one(_live(session_key), projection=_ID_ONLY) is not None

    # Writing.

    def create(self) -> None:
        previous = self._session_key
        for _ in range(MAX_CREATE_ATTEMPTS):
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            except BaseException:
                # Nothing was stored under the new key: keep the one the store had.
                self._session_key = previous
                raise
            self.modified = True
            return
        self._session_key = previous
        raise SessionStoreError("create", f"no unique key after {MAX_CREATE_ATTEMPTS} attempts")

    async def acreate(self) -> None:
        previous = self._session_key
        for _ in range(MAX_CREATE_ATTEMPTS):
            self._session_key = await self._aget_new_session_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            except BaseException:
                self._session_key = previous
                raise
            self.modified = True
            return
        self._session_key = previous
        raise SessionStoreError("create", f"no unique key after {MAX_CREATE_ATTEMPTS} attempts")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        session_key = self.session_key
        if session_key is None:
            # The load found it expired or deleted: never bring the key back.
            raise UpdateError
        if must_create:
            document = self._new_document(session_key, data)
            with self._operation("create", session_key):
                collection = get_collection()
                try:
                    collection.insert_one(document)
                except DuplicateKeyError as e:
                    if not _is_own_document(collection.with_options(**_PRIMARY), document):
                        raise CreateError from e
            return None
        replaced = self._replaced_keys
        update = self._update(data, key_change=replaced is not None)
        with self._operation("save", session_key):
            collection = get_collection()
            result = collection.update_one(_live(session_key), update)
        if result.matched_count == 0:
            # Deleted by another request (a logout), or expired: never bring it back.
            raise UpdateError
        if replaced is not None:
            self._replaced_keys = None
            self._complete_key_change(session_key, replaced, data, False)
        return None

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)
        session_key = self.session_key
        if session_key is None:
            raise UpdateError
        if must_create:
            document = self._new_document(session_key, data)
            with self._operation("create", session_key):
                collection = await aget_collection()
                try:
                    await collection.insert_one(document)
                except DuplicateKeyError as e:
                    own = await _ais_own_document(collection.with_options(**_PRIMARY), document)
                    if not own:
                        raise CreateError from e
            return None
        replaced = self._replaced_keys
        update = self._update(data, key_change=replaced is not None)
        with self._operation("save", session_key):
            collection = await aget_collection()
            result = await collection.update_one(_live(session_key), update)
        if result.matched_count == 0:
            raise UpdateError
        if replaced is not None:
            self._replaced_keys = None
            await self._acomplete_key_change(session_key, replaced, data, False)
        return None

    def delete(self, session_key: str | None = None) -> None:
        keys = self._keys_to_delete(session_key)
        session_key = None  # the SessionKey forms in keys are what a traceback may show
        for key in keys:
            with self._operation("delete", key):
                collection = get_collection()
                collection.delete_one({"_id": key})

    async def adelete(self, session_key: str | None = None) -> None:
        keys = self._keys_to_delete(session_key)
        session_key = None  # the SessionKey forms in keys are what a traceback may show
        for key in keys:
            with self._operation("delete", key):
                collection = await aget_collection()
                await collection.delete_one({"_id": key})

    @classmethod
    def clear_expired(cls) -> None:
        """Delete the expired sessions in batches (``manage.py clearsessions``).

        Each batch of ``MONGO_SESSIONS_BATCH_SIZE`` documents runs under
        ``MONGO_SESSIONS_BATCH_TIMEOUT`` seconds, so a large backlog (no TTL
        index) is removed however long it takes in all.
        """
        batches.delete_in_batches("clear_expired", _expired())

    @classmethod
    async def aclear_expired(cls) -> None:
        """Delete the expired sessions in batches, from async code (see clear_expired)."""
        await batches.adelete_in_batches("clear_expired", _expired())

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
        return fields

    def _new_document(self, session_key: str, data: dict[str, Any]) -> dict[str, Any]:
        document = {
            "_id": session_key,
            **self._fields(data),
            "created_at": utc_now(),
            CREATE_ID_FIELD: secrets.token_hex(8),
        }
        replaced = self._creating_replacement
        if replaced is not None:
            document["expire_date"] = provisional(document["expire_date"])
            if replaced:
                document[REPLACES_FIELD] = replaced
        return document

    def _update(self, data: dict[str, Any], key_change: bool = False) -> dict[str, Any]:
        fields = self._fields(data)
        if key_change:
            # Lasting only once the replaced documents are gone (_complete_key_change).
            fields["expire_date"] = provisional(fields["expire_date"])
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


_LOADED_FIELDS = {"_id": False, "data": True, REPLACES_FIELD: True}
_ID_ONLY = {"_id": True}
# The check of a duplicate key reads what the insert wrote: on the primary.
_PRIMARY: dict[str, Any] = {"read_preference": ReadPreference.PRIMARY}


def _live(session_key: str) -> dict[str, Any]:
    """Match the session unless it has expired but the TTL monitor has not removed it yet."""
    return {"_id": session_key, "expire_date": {"$gt": utc_now()}}


def _expired() -> dict[str, Any]:
    """Match the sessions that have expired by now."""
    return {"expire_date": {"$lte": utc_now()}}


def _is_own_document(collection: Any, document: dict[str, Any]) -> bool:
    """Whether the document under this key is the one ``document`` describes.

    A create whose first insert was applied but whose reply was lost is retried
    by pymongo; a server that does not recognise the retry answers it with a
    duplicate key. The create id, written only by this insert, tells it apart
    from a real collision.
    """
    stored = collection.find_one({"_id": document["_id"]}, projection={CREATE_ID_FIELD: True})
    return stored is not None and stored.get(CREATE_ID_FIELD) == document[CREATE_ID_FIELD]


async def _ais_own_document(collection: Any, document: dict[str, Any]) -> bool:
    """Whether the document under this key is the one ``document`` describes (async)."""
    stored = await collection.find_one({"_id": document["_id"]}, projection={CREATE_ID_FIELD: True})
    return stored is not None and stored.get(CREATE_ID_FIELD) == document[CREATE_ID_FIELD]
