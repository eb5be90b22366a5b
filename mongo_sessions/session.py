"""Django session engine storing each session as one MongoDB document."""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
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
from pymongo.errors import DuplicateKeyError

from . import devices, signals, signed, touch
from . import document as document_format
from .clock import to_utc, utc_after, utc_now
from .conf import conf
from .connection import aget_collection, get_collection
from .exceptions import SessionDataError, SessionStoreError, chain_cause
from .indexes import blocking_index_error, is_key_collision
from .operation import mongo_operation
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


class SessionStore(SessionBase):
    """Store sessions in MongoDB, one document per session."""

    #: The format this store writes sessions in, ``"signed"`` or ``"document"``;
    #: None (the default) follows ``MONGO_SESSIONS_FORMAT``. Loads read both.
    session_format: ClassVar[str | None] = None

    _session_cache: dict[str, Any]

    def _validate_session_key(self, key: Any) -> bool:
        return isinstance(key, str) and SESSION_KEY_PATTERN.fullmatch(key) is not None

    def _get_new_session_key(self) -> str:
        # No exists() check: the insert's duplicate-key error decides (see create).
        return get_random_string(32, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

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

    # Reading.

    def load(self) -> dict[str, Any]:
        session_key = self.session_key
        if session_key is None:
            return {}
        with mongo_operation("load", session_key):
            collection = get_collection()
            document = _deep_safe(collection.find_one, _live(session_key), projection=_DATA_ONLY)
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
                    _deep_safe(collection.insert_one, document)
                except DuplicateKeyError as e:
                    if not is_key_collision(e):
                        raise blocking_index_error("create", e) from chain_cause(e, session_key)
                    raise CreateError from e
            signals.send_session_created(self)
        else:
            if touch.touched(self, session_key, data):  # unmodified: expiry only, or nothing
                return None
            update = self._update(data)
            with mongo_operation("save", session_key):
                collection = get_collection()
                try:
                    result = _deep_safe(collection.update_one, {"_id": session_key}, update)
                except DuplicateKeyError as e:
                    raise blocking_index_error("save", e) from chain_cause(e, session_key)
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
                    if not is_key_collision(e):
                        raise blocking_index_error("create", e) from chain_cause(e, session_key)
                    raise CreateError from e
            await signals.asend_session_created(self)
        else:
            if await touch.atouched(self, session_key, data):  # unmodified: expiry only, or nothing
                return None
            update = self._update(data)
            with mongo_operation("save", session_key):
                collection = await aget_collection()
                try:
                    result = await collection.update_one({"_id": session_key}, update)
                except DuplicateKeyError as e:
                    raise blocking_index_error("save", e) from chain_cause(e, session_key)
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
        return {"_id": session_key, **self._fields(data, now), "created_at": now}

    def _update(self, data: dict[str, Any]) -> dict[str, Any]:
        fields = self._fields(data, utc_now())
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


# expire_date too: the touch rule (MONGO_SESSIONS_TOUCH_AFTER) compares with it.
_DATA_ONLY = {"_id": False, "data": True, "expire_date": True}
_ID_ONLY = {"_id": True}


def _live(session_key: str) -> dict[str, Any]:
    """Match the session unless it has expired but the TTL monitor has not removed it yet."""
    return {"_id": session_key, "expire_date": {"$gt": utc_now()}}
