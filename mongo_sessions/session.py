"""Django session engine storing each session as one MongoDB document."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar

from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)
from django.utils.crypto import get_random_string

from . import batches, driver, signals, touch
from .clock import utc_now
from .conf import conf
from .connection import aget_collection, get_collection
from .encoding import serializer_class
from .exceptions import SessionStoreError, SessionStoreUnavailable, chain_cause
from .fields import CREATE_ID_FIELD, FieldsMixin
from .fresh_stack import deep_safe
from .key_change import REPLACES_FIELD, KeyChangeMixin, abandoned_documents
from .operation import mongo_operation
from .redaction import SessionKey
from .unique_indexes import blocking_index_error, is_key_collision

# Keys are made of Django's key alphabet only, so a cookie value can never be
# read as a query operator, contain a NUL, a "$" or a ".", or be huge.
SESSION_KEY_PATTERN = re.compile(r"[a-z0-9]{8,64}")
# A random 32-character key colliding is not expected in the lifetime of the
# universe; a loop that keeps failing means something else is wrong.
MAX_CREATE_ATTEMPTS = 10


class SessionStore(FieldsMixin, KeyChangeMixin, SessionBase):
    """Store sessions in MongoDB, one document per session.

    Its parts: ``encoding.py``, ``expiry.py``, ``fields.py``, ``key_change.py``.
    """

    #: The format this store writes sessions in, ``"signed"`` or ``"document"``;
    #: None (the default) follows ``MONGO_SESSIONS_FORMAT``. Loads read both.
    session_format: ClassVar[str | None] = None

    _session_cache: dict[str, Any]

    def __init__(self, session_key: str | None = None) -> None:
        if _init_between(type(self)):
            # A subclass's base after SessionStore defines __init__: let the chain run.
            super().__init__(session_key)
        # SessionBase.__init__'s attributes, set here: Django's imports the
        # serializer through the settings for every store, one per request;
        # serializer_class() imports it once per SESSION_SERIALIZER.
        # (tests/test_hot_path.py checks that Django's sets nothing else.)
        self._session_key = session_key
        self.accessed = False
        self.modified = False
        self.serializer = serializer_class(conf.SESSION_SERIALIZER)
        # The first error by which MongoDB did not answer this store. From then
        # on the store raises at once instead of waiting again: Django makes one
        # store per request, and the auth middleware, the session middleware and
        # the debug page each touch it after a failure.
        self._no_answer: SessionStoreError | None = None
        # The state of a key change (see key_change.py).
        self._replaced_keys = None
        self._creating_replacement = None
        self._provisional_key = None

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

    def _operation(self, operation: str, session_key: str | None) -> _StoreOperation:
        """Run MongoDB calls under mongo_operation(); fail at once if MongoDB stopped answering."""
        return _StoreOperation(self, operation, session_key)

    # Reading.

    def load(self) -> dict[str, Any]:
        session_key = self.session_key
        if session_key is None:
            return {}
        with self._operation("load", session_key):
            collection = get_collection()
            document = deep_safe(
                collection.find_one, _live(session_key, utc_now()), projection=_LOADED_FIELDS
            )
        data = self._loaded(document)
        if document is not None and document.get(REPLACES_FIELD):
            self._complete_key_change(session_key, document[REPLACES_FIELD], data, True)
        if abandoned_documents:  # a failed login left a document (key_change.py)
            self.delete_abandoned()
        return data

    async def aload(self) -> dict[str, Any]:
        session_key = self.session_key
        if session_key is None:
            return {}
        with self._operation("load", session_key):
            collection = await aget_collection()
            document = await collection.find_one(
                _live(session_key, utc_now()), projection=_LOADED_FIELDS
            )
        data = self._loaded(document)
        if document is not None and document.get(REPLACES_FIELD):
            await self._acomplete_key_change(session_key, document[REPLACES_FIELD], data, True)
        if abandoned_documents:
            await self.adelete_abandoned()
        return data

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
        if session_key in (self._replaced_keys or ()):
            # Replaced by this session's cycle_key(): kept only until the save.
            return False
        session_key = SessionKey(session_key)
        with self._operation("exists", session_key):
            collection = get_collection()
            found = collection.find_one(_live(session_key, utc_now()), projection=_ID_ONLY)
            return found is not None

    async def aexists(self, session_key: str) -> bool:
        if not self._validate_session_key(session_key):
            return False
        if session_key in (self._replaced_keys or ()):
            return False
        session_key = SessionKey(session_key)
        with self._operation("exists", session_key):
            collection = await aget_collection()
            found = await collection.find_one(_live(session_key, utc_now()), projection=_ID_ONLY)
            return found is not None

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
            document = self._new_document(session_key, data, utc_now())
            with self._operation("create", session_key):
                collection = get_collection()
                try:
                    deep_safe(collection.insert_one, document)
                except driver.errors.DuplicateKeyError as e:
                    if not is_key_collision(e):
                        raise blocking_index_error("create", e) from chain_cause(e, session_key)
                    if not _is_own_document(collection.with_options(**_primary()), document):
                        raise CreateError from e
            signals.send_session_created(self)
            return None
        replaced = self._replaced_keys
        # Unmodified and no key change under way: the expiry alone, or nothing.
        if replaced is None and touch.touched(self, session_key, data):
            return None
        now = utc_now()  # one clock read: the match of a live session, and the expiry
        update = self._update(data, now, key_change=replaced is not None)
        try:
            with self._operation("save", session_key):
                collection = get_collection()
                try:
                    result = deep_safe(collection.update_one, _live(session_key, now), update)
                except driver.errors.DuplicateKeyError as e:
                    raise blocking_index_error("save", e) from chain_cause(e, session_key)
        except SessionStoreError:
            if replaced is not None:  # the login fails: the new key never reaches the browser
                self._abandon(session_key)
            raise
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
            document = self._new_document(session_key, data, utc_now())
            with self._operation("create", session_key):
                collection = await aget_collection()
                try:
                    await collection.insert_one(document)
                except driver.errors.DuplicateKeyError as e:
                    if not is_key_collision(e):
                        raise blocking_index_error("create", e) from chain_cause(e, session_key)
                    own = await _ais_own_document(collection.with_options(**_primary()), document)
                    if not own:
                        raise CreateError from e
            await signals.asend_session_created(self)
            return None
        replaced = self._replaced_keys
        if replaced is None and await touch.atouched(self, session_key, data):
            return None
        now = utc_now()
        update = self._update(data, now, key_change=replaced is not None)
        try:
            with self._operation("save", session_key):
                collection = await aget_collection()
                try:
                    result = await collection.update_one(_live(session_key, now), update)
                except driver.errors.DuplicateKeyError as e:
                    raise blocking_index_error("save", e) from chain_cause(e, session_key)
        except SessionStoreError:
            if replaced is not None:
                await self._aabandon(session_key)
            raise
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
                result = collection.delete_one({"_id": key})
            signals.send_session_deleted(self, key, result.deleted_count)

    async def adelete(self, session_key: str | None = None) -> None:
        keys = self._keys_to_delete(session_key)
        session_key = None  # the SessionKey forms in keys are what a traceback may show
        for key in keys:
            with self._operation("delete", key):
                collection = await aget_collection()
                result = await collection.delete_one({"_id": key})
            await signals.asend_session_deleted(self, key, result.deleted_count)

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


class _StoreOperation(mongo_operation):
    """mongo_operation() for one store, which remembers the first time MongoDB did not answer.

    From then on the store raises at once instead of waiting again. A subclass
    rather than a wrapper around one: it runs on every operation.
    """

    __slots__ = ("store",)

    def __init__(self, store: SessionStore, operation: str, session_key: str | None) -> None:
        super().__init__(operation, session_key)
        self.store = store

    def __enter__(self) -> None:
        first = self.store._no_answer
        if first is not None:
            raise SessionStoreUnavailable(
                self.operation,
                f"not sent: MongoDB did not answer this session's {first.operation} "
                f"a moment ago ({first.detail})",
            ) from first
        super().__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        if isinstance(error, SessionStoreError) and error.no_answer:
            self.store._no_answer = error
        try:
            return super().__exit__(exc_type, error, traceback)
        except SessionStoreError as e:
            if e.no_answer:
                self.store._no_answer = e
            raise


# expire_date too: the touch rule (MONGO_SESSIONS_TOUCH_AFTER) compares with it;
# what a key change replaces: the load completes an unfinished one.
_LOADED_FIELDS = {"_id": False, "data": True, "expire_date": True, REPLACES_FIELD: True}
_ID_ONLY = {"_id": True}


def _primary() -> dict[str, Any]:
    """The check of a duplicate key reads what the insert wrote: on the primary."""
    return {"read_preference": driver.pymongo.ReadPreference.PRIMARY}


@functools.cache
def _init_between(cls: type) -> bool:
    """Whether a class between SessionStore and SessionBase in ``cls``'s MRO defines __init__.

    ``class MyStore(SessionStore, AuditMixin)`` with ``AuditMixin(SessionBase)``
    puts AuditMixin there: its ``__init__`` runs only if SessionStore's calls
    ``super().__init__()``.
    """
    mro = cls.__mro__
    between = mro[mro.index(SessionStore) + 1 : mro.index(SessionBase)]
    return any("__init__" in vars(base) for base in between)


def _live(session_key: str, now: datetime) -> dict[str, Any]:
    """Match the session unless it has expired (at ``now``) but the TTL monitor has not
    removed it yet."""
    return {"_id": session_key, "expire_date": {"$gt": now}}


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
