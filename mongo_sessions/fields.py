"""The fields of a session's document: its data, expiry, owner and device, within 16 MiB.

Part of ``SessionStore`` (see ``session.py``).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from django.contrib.auth import SESSION_KEY as AUTH_USER_ID_KEY

from . import devices, driver
from .encoding import EncodingMixin
from .exceptions import SessionDataError
from .expiry import ExpiryMixin
from .key_change import REPLACES_FIELD, provisional
from .validation import DOCUMENT

# MongoDB's limit on one document, in bytes (BSONObjMaxUserSize).
MAX_DOCUMENT_SIZE = 16 * 1024 * 1024
# Below this many bytes of data and user id, a document cannot come near the
# limit (the other fields are small): the exact BSON size is computed only above it.
_SIZE_CHECK_FROM = MAX_DOCUMENT_SIZE - 4096
# A random value each insert writes, so that a create whose reply was lost and
# whose retry ran into its own document recognises it (see SessionStore.save).
CREATE_ID_FIELD = "create_id"


def check_document_size(document: dict[str, Any], operation: str) -> None:
    """Raise SessionDataError if ``document`` is over MongoDB's 16 MiB limit.

    ``operation`` names the operation in the message (``"save"``, ``"convert"``).
    """
    size = len(driver.bson.encode(document))
    if size > MAX_DOCUMENT_SIZE:
        raise SessionDataError(
            operation,
            f"the session would be a document of {size:,} bytes, larger than MongoDB's "
            f"16 MB document limit ({MAX_DOCUMENT_SIZE:,} bytes)",
        )


class FieldsMixin(EncodingMixin, ExpiryMixin):
    """The stored fields of a session, for SessionStore's inserts and updates."""

    # Set by cycle_key() for its create() (see key_change.py).
    _creating_replacement: list[str] | None
    _provisional_key: str | None

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

    def _check_size(self, fields: dict[str, Any], data_bytes: int) -> None:
        """Raise SessionDataError if the document would be over MongoDB's 16 MiB limit.

        ``data_bytes`` is an upper bound of the data's size: below the limit with
        room to spare, the exact BSON size is not computed.
        """
        if data_bytes + 4 * len(fields.get("user_id", "")) < _SIZE_CHECK_FROM:
            return
        # The whole document as stored (created_at is a date, like expire_date).
        check_document_size(
            {"_id": self._session_key, **fields, "created_at": fields["expire_date"]}, "save"
        )

    def _new_document(
        self, session_key: str, data: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        """Return the document to insert for a session created at ``now``.

        ``now`` is the caller's one clock read: the expiry counts from the creation.
        """
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


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
