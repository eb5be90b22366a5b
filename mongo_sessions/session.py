"""Django session engine storing each session as one MongoDB document."""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import bson
from bson.errors import InvalidBSON
from django.contrib.auth import SESSION_KEY as AUTH_USER_ID_KEY
from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)
from django.core import signing
from django.utils.crypto import get_random_string
from pymongo import ReadPreference
from pymongo.errors import DuplicateKeyError

from . import batches, devices, signals, signed, touch
from . import document as document_format
from .clock import to_utc, utc_after, utc_now
from .conf import conf
from .connection import aget_collection, get_collection
from .exceptions import SessionDataError, SessionStoreError, SessionStoreUnavailable, chain_cause
from .indexes import blocking_index_error, is_key_collision
from .key_change import REPLACES_FIELD, KeyChangeMixin, abandoned_documents, provisional
from .operation import mongo_operation
from .redaction import SessionKey
from .validation import DOCUMENT, SIGNED, session_format, ttl_seconds

suspicious_logger = logging.getLogger("django.security.SuspiciousSession")

# Keys are made of Django's key alphabet only, so a cookie value can never be
# read as a query operator, contain a NUL, a "$" or a ".", or be huge.
SESSION_KEY_PATTERN = re.compile(r"[a-z0-9]{8,64}")
# A random 32-character key colliding is not expected in the lifetime of the
# universe; a loop that keeps failing means something else is wrong.
MAX_CREATE_ATTEMPTS = 10
# MongoDB's limit on one document, in bytes (BSONObjMaxUserSize).
MAX_DOCUMENT_SIZE = 16 * 1024 * 1024
# Below this many bytes of data and user id, a document cannot come near the
# limit (the other fields are small): the exact BSON size is computed only above it.
_SIZE_CHECK_FROM = MAX_DOCUMENT_SIZE - 4096

_T = TypeVar("_T")
# A random value each insert writes, so that a create whose reply was lost and
# whose retry ran into its own document recognises it (see save).
CREATE_ID_FIELD = "create_id"


class SessionStore(KeyChangeMixin, SessionBase):
    """Store sessions in MongoDB, one document per session."""

    #: The format this store writes sessions in, ``"signed"`` or ``"document"``;
    #: None (the default) follows ``MONGO_SESSIONS_FORMAT``. Loads read both.
    session_format: ClassVar[str | None] = None

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

    def decode(self, session_data: Any) -> dict[str, Any]:
        """Return the session stored as ``session_data``, or {} if it cannot be trusted.

        ``session_data`` is the ``data`` field in either format: a signed string
        (Django's encoding) or a sub-document (``MONGO_SESSIONS_FORMAT =
        "document"``), whatever the format sessions are written in now, so that
        switching formats logs nobody out. Data nested deeper than the
        serializer can follow from the caller's stack (it was saved from a
        shallower one) is decoded again on an empty stack, so whether a session
        loads never depends on where it is loaded from.
        """
        try:
            try:
                decoded = self._decoded(session_data)
            except RecursionError:
                decoded = _on_fresh_stack(self._decoded, session_data)
        except signing.BadSignature:
            suspicious_logger.warning("Session data corrupted")
        except document_format.NotStorable as e:
            # Written by another program (a date, an ObjectId...): no session of ours.
            suspicious_logger.warning("Session document holds what no session stores (%s)", e)
        except Exception as e:
            # Truncated, written by another serializer, or not a string at all.
            suspicious_logger.warning("Session data could not be decoded (%s)", type(e).__name__)
        else:
            if isinstance(decoded, dict):
                return decoded
            suspicious_logger.warning("Session data is not a mapping")
        return {}

    def _decoded(self, session_data: Any) -> Any:
        if type(session_data) is dict:
            return document_format.from_document(session_data)
        return signed.loads(session_data, self.key_salt, self.serializer)

    def encode(self, session_dict: dict[str, Any]) -> str:
        """Return ``session_dict`` encoded and signed, as Django's database engine stores it.

        The same string as Django's ``SessionBase.encode()`` (see ``signed.py``).
        """
        return signed.dumps(session_dict, self.key_salt, self.serializer, int(time.time()))

    def _encode_at(self, data: dict[str, Any], now: datetime) -> str:
        """Encode ``data`` signed at ``now`` (the operation's one clock read)."""
        if type(self).encode is not SessionStore.encode:
            return self.encode(data)  # a subclass's own encoding decides
        return signed.dumps(data, self.key_salt, self.serializer, int(now.timestamp()))

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
            document = _deep_safe(
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
            document = self._new_document(session_key, data)
            with self._operation("create", session_key):
                collection = get_collection()
                try:
                    _deep_safe(collection.insert_one, document)
                except DuplicateKeyError as e:
                    if not is_key_collision(e):
                        raise blocking_index_error("create", e) from chain_cause(e, session_key)
                    if not _is_own_document(collection.with_options(**_PRIMARY), document):
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
                    result = _deep_safe(collection.update_one, _live(session_key, now), update)
                except DuplicateKeyError as e:
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
            document = self._new_document(session_key, data)
            with self._operation("create", session_key):
                collection = await aget_collection()
                try:
                    await collection.insert_one(document)
                except DuplicateKeyError as e:
                    if not is_key_collision(e):
                        raise blocking_index_error("create", e) from chain_cause(e, session_key)
                    own = await _ais_own_document(collection.with_options(**_PRIMARY), document)
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
                except DuplicateKeyError as e:
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

    # The document.

    def _fields(self, data: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Return the stored fields for ``data``, saved at ``now``.

        Raises SessionDataError, before anything is sent, when the data cannot be
        serialized, its expiry cannot be stored, or the document would be over
        MongoDB's 16 MiB limit: the stored version stays as it was.
        """
        stored: dict[str, Any] | str
        if self._write_format() == DOCUMENT:
            stored, data_bytes = self._document(data)
        else:
            stored = self._encoded(data, now)
            data_bytes = 4 * len(stored)  # 4 bytes per character at most, in UTF-8
        fields: dict[str, Any] = {"data": stored, "expire_date": self._expire_date(data, now)}
        user_id = data.get(AUTH_USER_ID_KEY)
        if user_id is not None:
            user_id = str(user_id)
            # BSON strings are UTF-8: a lone surrogate cannot be one. No real
            # primary key has one, and the data itself keeps the value anyway.
            if _is_utf8(user_id):
                fields["user_id"] = user_id
        fields.update(devices.stored_fields(self, now))  # when MONGO_SESSIONS_RECORD_DEVICES is on
        self._check_size(fields, data_bytes)
        return fields

    def _write_format(self) -> str:
        """Return the format to write: ``session_format``, else ``MONGO_SESSIONS_FORMAT``.

        Raises ImproperlyConfigured for a format that is none of the two, or the
        document format with a serializer other than Django's JSONSerializer.
        """
        name = self.session_format or conf.MONGO_SESSIONS_FORMAT
        if name == SIGNED:
            return name
        return session_format(name, self.serializer)

    def _document(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Return ``data`` as a sub-document, and an upper bound of its size in bytes.

        Raises SessionDataError for data the document format does not store.
        """
        try:
            try:
                return document_format.to_document(data)
            except RecursionError:
                # The caller's stack is too deep to walk the data: walk it on an empty one.
                return _on_fresh_stack(document_format.to_document, data)
        except document_format.NotStorable as e:
            raise SessionDataError(
                "save", f"the session data cannot be serialized as a document: {e}"
            ) from e

    def _encoded(self, data: dict[str, Any], now: datetime) -> str:
        """Serialize and sign ``data``, raising SessionDataError if the serializer cannot."""
        try:
            try:
                encoded: str = self._encode_at(data, now)
            except RecursionError:
                # Deeper than the serializer can follow from this caller's stack:
                # try on an empty stack, so that whether a session can be stored
                # depends on its data only, never on where save() is called from.
                encoded = _on_fresh_stack(self._encode_at, data, now)
        except RecursionError as e:
            raise SessionDataError(
                "save",
                "the session data is nested too deeply for the session serializer "
                f"({getattr(self.serializer, '__name__', type(self.serializer).__name__)})",
            ) from e
        except Exception as e:
            # TypeError/ValueError from JSON, PicklingError or AttributeError from pickle...
            raise SessionDataError(
                "save", f"the session data cannot be serialized: {type(e).__name__}: {e}"
            ) from e
        return encoded

    def _check_size(self, fields: dict[str, Any], data_bytes: int) -> None:
        """Raise SessionDataError if the document would be over MongoDB's 16 MiB limit.

        ``data_bytes`` is an upper bound of the data's size: below the limit with
        room to spare, the exact BSON size is not computed.
        """
        if data_bytes + 4 * len(fields.get("user_id", "")) < _SIZE_CHECK_FROM:
            return
        # The whole document as stored (created_at is a date, like expire_date).
        document = {"_id": self._session_key, **fields, "created_at": fields["expire_date"]}
        size = len(bson.encode(document))
        if size > MAX_DOCUMENT_SIZE:
            raise SessionDataError(
                "save",
                f"the session would be a document of {size:,} bytes, larger than MongoDB's "
                f"16 MB document limit ({MAX_DOCUMENT_SIZE:,} bytes)",
            )

    def _new_document(self, session_key: str, data: dict[str, Any]) -> dict[str, Any]:
        now = utc_now()  # one clock read: the expiry counts from the creation
        document = {
            "_id": session_key,
            **self._fields(data, now),
            "created_at": now,
            CREATE_ID_FIELD: secrets.token_hex(8),
        }
        replaced = self._creating_replacement
        if replaced is not None:
            self._provisional_key = session_key
            document["expire_date"] = provisional(document["expire_date"])
            if replaced:
                document[REPLACES_FIELD] = replaced
        return document

    def _update(
        self, data: dict[str, Any], now: datetime, key_change: bool = False
    ) -> dict[str, Any]:
        fields = self._fields(data, now)
        if key_change:
            # Lasting only once the replaced documents are gone (_complete_key_change).
            fields["expire_date"] = provisional(fields["expire_date"])
        update: dict[str, Any] = {"$set": fields}
        if "user_id" not in fields:
            update["$unset"] = {"user_id": ""}
        return update

    def _expire_date(self, data: dict[str, Any], now: datetime | None = None) -> datetime:
        """Return the instant (aware, UTC) from which the session is dead on the server.

        Ages count from ``now`` (default: the current time).

        Django's hooks decide, in this order:

        1. a subclass's ``get_expiry_date()``, as Django's database engine stores it;
        2. else a subclass's ``get_expiry_age()``, in seconds from now, as Django's
           cache engine stores it (and as SessionMiddleware sets the cookie);
        3. else the expiry given to ``set_expiry()``: seconds, or a datetime read
           as Django reads it (see ``clock.to_utc``);
        4. else (no expiry, or 0 for browser-close) ``get_session_cookie_age()``
           seconds from now, with ``MONGO_SESSIONS_TTL``, when set, in place of
           ``SESSION_COOKIE_AGE`` (a subclass's ``get_session_cookie_age()`` that
           returns another value for this session still decides).

        The sync hooks are called from save() and asave() alike: they only read the
        loaded session. An instant beyond year 9999 (or before year 1) is stored as
        that year's end (or start). Raises SessionDataError for an expiry that is
        not a number of seconds or a datetime.
        """
        expiry = data.get("_session_expiry")
        cls = type(self)
        try:
            if cls.get_expiry_date is not SessionBase.get_expiry_date:
                return to_utc(self.get_expiry_date())
            if cls.get_expiry_age is not SessionBase.get_expiry_age:
                return utc_after(self.get_expiry_age(), now)
            if not expiry:
                return utc_after(self._server_lifetime(), now)
            if isinstance(expiry, str):
                expiry = datetime.fromisoformat(expiry)
            if isinstance(expiry, datetime):
                return to_utc(expiry)
            return utc_after(expiry, now)
        except (TypeError, ValueError) as e:
            raise SessionDataError(
                "save", f"the session expiry {expiry!r} cannot be stored: {type(e).__name__}: {e}"
            ) from e

    def _server_lifetime(self) -> int:
        """Return the seconds a session without an explicit expiry lives on the server."""
        age = self.get_session_cookie_age()
        if age == conf.SESSION_COOKIE_AGE:
            return ttl_seconds()
        return int(age)


class _StoreOperation:
    """mongo_operation() for one store, which remembers the first time MongoDB did not answer.

    From then on the store raises at once instead of waiting again. A class, like
    mongo_operation itself, rather than a generator: it runs on every operation.
    """

    __slots__ = ("bound", "operation", "session_key", "store")

    def __init__(self, store: SessionStore, operation: str, session_key: str | None) -> None:
        self.store = store
        self.operation = operation
        self.session_key = session_key

    def __enter__(self) -> None:
        first = self.store._no_answer
        if first is not None:
            raise SessionStoreUnavailable(
                self.operation,
                f"not sent: MongoDB did not answer this session's {first.operation} "
                f"a moment ago ({first.detail})",
            ) from first
        self.bound = mongo_operation(self.operation, self.session_key)
        self.bound.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        if isinstance(error, SessionStoreError) and error.no_answer:
            self.store._no_answer = error
        try:
            return self.bound.__exit__(exc_type, error, traceback)
        except SessionStoreError as e:
            if e.no_answer:
                self.store._no_answer = e
            raise


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _on_fresh_stack(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run ``function(*args, **kwargs)`` in a new thread, whose stack starts empty; wait for it.

    The thread runs in a copy of the caller's context, so the time bound of the
    enclosing mongo_operation() (pymongo.timeout's context variables) holds there too.
    """
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["value"] = context.run(function, *args, **kwargs)
        except BaseException as e:
            outcome["error"] = e

    thread = threading.Thread(target=run, name="mongo_sessions-deep-data")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: _T = outcome["value"]
    return value


def _deep_safe(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Make a driver call; on a RecursionError, make it again on an empty stack.

    pymongo encodes and decodes nested documents recursively: a session in the
    document format nested a few dozen levels deep, saved or loaded from a
    caller's stack already near Python's recursion limit, fails in the driver.
    Encoding comes before anything is sent, and a load is a read, so making the
    call again changes nothing on the server.
    """
    try:
        return call(*args, **kwargs)
    except RecursionError:
        return _on_fresh_stack(call, *args, **kwargs)
    except InvalidBSON as e:
        if "recursion" not in str(e):  # pymongo's decoder reports its RecursionError so
            raise
        return _on_fresh_stack(call, *args, **kwargs)


# expire_date too: the touch rule (MONGO_SESSIONS_TOUCH_AFTER) compares with it;
# what a key change replaces: the load completes an unfinished one.
_LOADED_FIELDS = {"_id": False, "data": True, "expire_date": True, REPLACES_FIELD: True}
_ID_ONLY = {"_id": True}
# The check of a duplicate key reads what the insert wrote: on the primary.
_PRIMARY: dict[str, Any] = {"read_preference": ReadPreference.PRIMARY}


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
