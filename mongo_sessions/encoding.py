"""Session data as stored: Django's signed string or a sub-document, both ways.

``decode()`` reads either format, whatever the format sessions are written in
now; the write side serializes in the format ``_write_format()`` names. Part of
``SessionStore`` (see ``session.py``).
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime
from typing import Any, ClassVar

from django.contrib.sessions.backends.base import SessionBase
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import document as document_format
from . import signed
from .conf import conf
from .exceptions import SessionDataError
from .fresh_stack import on_fresh_stack
from .validation import SIGNED, session_format

suspicious_logger = logging.getLogger("django.security.SuspiciousSession")


@functools.lru_cache(maxsize=8)
def serializer_class(path: str) -> Any:
    """Return the serializer class at the dotted ``path`` (``SESSION_SERIALIZER``).

    Imported once per path: Django's ``SessionBase.__init__`` imports it again
    for every store. Raises ImportError as Django's ``import_string()`` does.
    """
    return import_string(path)


class EncodingMixin(SessionBase):
    """decode() and encode(), and the data in the write format, for SessionStore."""

    #: See SessionStore.session_format.
    session_format: ClassVar[str | None]

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
                decoded = on_fresh_stack(self._decoded, session_data)
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
        if type(self).encode is not EncodingMixin.encode:
            return self.encode(data)  # a subclass's own encoding decides
        return signed.dumps(data, self.key_salt, self.serializer, int(now.timestamp()))

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
                return on_fresh_stack(document_format.to_document, data)
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
                encoded = on_fresh_stack(self._encode_at, data, now)
        except ImproperlyConfigured:
            raise  # a setting the signed format reads (E052), not the data
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
