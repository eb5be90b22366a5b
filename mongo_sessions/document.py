"""The document format: a session stored as a BSON sub-document that MongoDB can query.

With ``MONGO_SESSIONS_FORMAT = "document"`` the session is the ``data`` field
of its document as a sub-document (``{"cart": {"apple": 2}, "_auth_user_id":
"42"}``), which ``mongosh``, queries and aggregations read, instead of a signed
string. It is neither signed nor serialized: no JSON, zlib, base64 or HMAC on
a save or a load.

What it accepts is what Django's ``JSONSerializer`` accepts, and it loads
back what that serializer would load back: string keys, and keys that JSON
turns into strings (``1`` into ``"1"``, ``True`` into ``"true"``, ``None``
into ``"null"``, ``1.5`` into ``"1.5"``); ``None``, booleans, integers,
floats (NaN and infinities too), strings, lists and tuples (loaded as lists),
dicts, and subclasses of those as their base type. Anything else raises
:class:`NotStorable` naming where it is (``session['cart'][2]``) and what it
is, never its value, and so does what BSON cannot hold: an integer outside
MongoDB's 64-bit range, a string that is not valid Unicode (a lone surrogate),
a circular reference, and data nested deeper than :data:`MAX_DEPTH` levels
(MongoDB refuses documents nested deeper than 100 levels; the session is two
of them).

Keys that MongoDB cannot store or query as they are (empty, starting with
``$``, holding a ``.`` or a NUL) and keys starting with ``%`` are stored
escaped: ``%`` followed by the key with ``%``, ``.``, ``$`` and NUL written as
``%25``, ``%2E``, ``%24`` and ``%00`` (``"a.b"`` is stored as ``"%a%2Eb"``).
Loads undo it. Every other key is stored as it is, so ``data.cart.apple`` is a
field path that queries use directly.
"""

from __future__ import annotations

import math
import re
from typing import Any

from . import driver

#: Levels of nesting the session's data may have: MongoDB stores documents nested
#: up to 100 levels, and the session document and its data field take two.
MAX_DEPTH = 98
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_ESCAPES = {"%": "%25", ".": "%2E", "$": "%24", "\x00": "%00"}
_UNESCAPES = {value: key for key, value in _ESCAPES.items()}
_TO_ESCAPE = re.compile(r"[%.$\x00]")
_ESCAPED = re.compile(r"%(?:25|2E|24|00)")
_NONE_TYPE = type(None)


class NotStorable(ValueError):
    """Raise when session data is not what the document format stores; says where and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        # The keys and indexes leading to the value, outermost first (filled on the way out).
        self.path: list[Any] = []

    def __str__(self) -> str:
        where = "".join(f"[{step!r}]" for step in self.path)
        return f"session{where}: {self.reason}"


def _escaped(key: str) -> str:
    """Return ``key`` as it is stored: one MongoDB cannot take as it is (see the module's
    docstring) escaped."""
    return "%" + _TO_ESCAPE.sub(lambda match: _ESCAPES[match.group()], key)


def _unescaped(key: str) -> str:
    """Return the key that ``key``, as stored, stands for."""
    if key[:1] != "%":
        return key
    return _ESCAPED.sub(lambda match: _UNESCAPES[match.group()], key[1:])


def _json_key(key: Any) -> str:
    """Return ``key`` as JSON turns a dict key into a string (json.dumps's rules)."""
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, float):
        if key != key:
            return "NaN"
        if math.isinf(key):
            return "Infinity" if key > 0 else "-Infinity"
        return float.__repr__(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    raise NotStorable(
        f"a key must be a str, int, float, bool or None (as for JSON), not {type(key).__name__}"
    )


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise NotStorable(
                "a string that is not valid Unicode (a lone surrogate) cannot be stored in BSON"
            ) from None


_OUT_OF_RANGE = f"an integer outside MongoDB's 64-bit range ({INT64_MIN} to {INT64_MAX})"
_TOO_DEEP = (
    f"the data is nested more than {MAX_DEPTH} levels deep, deeper than MongoDB stores "
    "documents (100 levels, the session's own included)"
)


class _Walk:
    """One conversion of session data to its stored form; counts an upper bound of its size."""

    __slots__ = ("bound", "containers")

    def __init__(self) -> None:
        # An upper bound of the BSON size in bytes (4 bytes per character, 16 per element).
        self.bound = 0
        # The ids of the containers on the current path (JSON's circular reference check).
        self.containers: set[int] = set()

    def enter(self, container: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise NotStorable(_TOO_DEEP)
        marker = id(container)
        if marker in self.containers:
            raise NotStorable("a circular reference (JSON cannot encode it)")
        self.containers.add(marker)
        return marker

    def mapping(self, value: dict[Any, Any], depth: int) -> dict[str, Any]:
        marker = self.enter(value, depth)
        stored: dict[str, Any] = {}
        bound = 0
        for key, item in value.items():
            try:
                if type(key) is not str:
                    key = _json_key(key)
                if not key.isascii():
                    _check_text(key)
                bound += 4 * len(key) + 16
                name = key
                if not key or key[0] in "$%" or "." in key or "\x00" in key:
                    name = _escaped(key)
                # The common values here, without a call; containers and the rest below.
                kind = type(item)
                if kind is str:
                    if not item.isascii():
                        _check_text(item)
                    bound += 4 * len(item)
                elif kind is int:
                    if not INT64_MIN <= item <= INT64_MAX:
                        raise NotStorable(_OUT_OF_RANGE)
                elif not (kind is bool or kind is float or kind is _NONE_TYPE):
                    item = self.value(item, depth)
                stored[name] = item
            except NotStorable as e:
                e.path.insert(0, key)
                raise
        self.bound += bound
        self.containers.discard(marker)
        return stored

    def sequence(self, value: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        marker = self.enter(value, depth)
        stored = []
        index = 0
        try:
            for item in value:
                self.bound += 24  # the element's type, its index as key, its value
                stored.append(self.value(item, depth))
                index += 1
        except NotStorable as e:
            e.path.insert(0, index)
            raise
        self.containers.discard(marker)
        return stored

    def value(self, value: Any, depth: int) -> Any:
        kind = type(value)
        # The common types first, by identity; subclasses below, as JSON encodes them.
        if kind is str:
            _check_text(value)
            self.bound += 4 * len(value)
            return value
        if kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                raise NotStorable(_OUT_OF_RANGE)
            return value
        if kind is bool or kind is float or kind is _NONE_TYPE:
            return value
        if kind is dict:
            return self.mapping(value, depth + 1)
        if kind is list or kind is tuple:
            return self.sequence(value, depth + 1)
        return self.subclass(value, depth)

    def subclass(self, value: Any, depth: int) -> Any:
        """Store an instance of a subclass of a JSON type as JSON would: as that type."""
        if isinstance(value, str):
            return self.value(str.__str__(value), depth)
        if isinstance(value, int):  # an IntEnum, say (bool cannot be subclassed)
            return self.value(int.__int__(value), depth)
        if isinstance(value, float):
            return float.__float__(value)
        if isinstance(value, list | tuple):
            return self.sequence(value, depth + 1)
        if isinstance(value, dict):
            return self.mapping(value, depth + 1)
        raise NotStorable(
            f"a {type(value).__name__} is not what Django's JSONSerializer stores "
            "(str, int, float, bool, None, list, tuple or dict)"
        )


def to_document(data: dict[Any, Any]) -> tuple[dict[str, Any], int]:
    """Return the stored form of the session ``data`` and an upper bound of its BSON size.

    The size is in bytes. Raises NotStorable for data the format does not store
    (see the module's docstring), RecursionError when the caller's stack is too
    deep to walk it.
    """
    walk = _Walk()
    stored = walk.mapping(data, 1)
    return stored, walk.bound


def from_document(stored: dict[str, Any]) -> dict[str, Any]:
    """Return the session that ``stored`` (a ``data`` sub-document, as decoded) holds.

    A new dict: ``stored`` is left as it is. Raises NotStorable when it holds
    what the format never writes (a date, an ObjectId, a key such as ``$gt``...
    written by another program), so that such a session is treated like one
    whose signature does not match.
    """
    return _restore_mapping(stored)


def _foreign(kind: type) -> NotStorable:
    return NotStorable(f"a {kind.__name__}, which the document format never stores")


def _restored_key(key: str) -> str:
    """Return the session's key for a stored one; raise NotStorable for one never written."""
    if key[:1] == "%":
        return _unescaped(key)
    # The format escapes these: a stored one was written by another program.
    raise NotStorable("a key that is empty, starts with '$' or holds a '.' or a NUL")


def _restore_mapping(stored: dict[str, Any]) -> dict[str, Any]:
    restored: dict[str, Any] = {}
    for key, item in stored.items():
        if not key or key[0] in "$%" or "." in key or "\x00" in key:
            key = _restored_key(key)
        kind = type(item)
        if kind is dict:
            item = _restore_mapping(item)
        elif kind is list:
            item = _restore_sequence(item)
        elif not (
            kind is str or kind is int or kind is float or kind is bool or kind is _NONE_TYPE
        ):
            if kind is not driver.bson.Int64:  # pymongo decodes a BSON int64 as Int64
                raise _foreign(kind)
            item = int(item)
        restored[key] = item
    return restored


def _restore_sequence(stored: list[Any]) -> list[Any]:
    restored = []
    for item in stored:
        kind = type(item)
        if kind is dict:
            item = _restore_mapping(item)
        elif kind is list:
            item = _restore_sequence(item)
        elif not (
            kind is str or kind is int or kind is float or kind is bool or kind is _NONE_TYPE
        ):
            if kind is not driver.bson.Int64:  # pymongo decodes a BSON int64 as Int64
                raise _foreign(kind)
            item = int(item)
        restored.append(item)
    return restored
