"""The signed format: Django's ``signing.dumps``/``loads`` of a session, with less work.

A session stored as a string is what Django's database engine stores:
``django.core.signing.dumps(session, salt=key_salt, serializer=serializer,
compress=True)``, a ``TimestampSigner`` signature (HMAC-SHA256 with a key
derived from ``SECRET_KEY`` and the salt) over the base64 of the serialized,
maybe zlib-compressed data, then a base62 timestamp. :func:`loads` accepts
exactly what Django's accepts (``SECRET_KEY_FALLBACKS`` included) and raises
``BadSignature`` where it does; what :func:`dumps` returns, Django's
``signing.loads`` reads back. Sessions move between this package and
Django's engines unchanged either way.

Two differences in what is stored, both readable by Django as they are:

* Serialized data shorter than ``MONGO_SESSIONS_COMPRESS_MIN_LENGTH`` bytes
  (512 by default) is not compressed: the string is then Django's
  ``signing.dumps(..., compress=False)`` byte for byte. Compressing a few
  hundred bytes saves a few dozen (WiredTiger compresses the collection on
  disk anyway) and was the costliest step of the signed format's save and
  load. ``0`` compresses whenever it makes the data shorter, as Django does.
* Compressed data is a valid zlib stream like Django's, made with an 8 KiB
  window and about 48 KB of compressor memory instead of zlib's defaults
  (32 KiB and 256 KB): allocating and releasing those 256 KB on every save
  made ``zlib.compress()`` the most expensive step of a save.

What else makes them faster, on every load and save: the key derived from
``SECRET_KEY`` and the salt is computed once per salt and secret (Django's
``salted_hmac`` derives it on each call), and the HMAC's inner and outer
hash states with it; ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` are read
through the package's kept settings; no ``Signer`` object is built; with
Django's ``JSONSerializer`` one JSON encoder and decoder are reused. Any other
serializer is called as Django calls it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import zlib
from typing import Any

from django.core.signing import BadSignature, JSONSerializer, b62_encode
from django.utils.encoding import force_bytes

from .conf import conf
from .validation import compress_min_length

# Django's JSONSerializer.dumps: json.dumps(obj, separators=(",", ":")), as an encoder
# built once; its loads: json.loads() of the latin-1 text.
_json_encode = json.JSONEncoder(separators=(",", ":")).encode
_json_decode = json.JSONDecoder().decode


# zlib's compressor with a 2**13-byte window and memLevel 5 (see the module's docstring).
_WBITS, _MEM_LEVEL = 13, 5
# HMAC's inner and outer pads (RFC 2104), as bytes.translate() tables.
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
# Django's b62_decode() accepts these timestamps and raises for any other.
_TIMESTAMP = re.compile(r"-?[0-9A-Za-z]*")


@functools.lru_cache(maxsize=64)
def _hmac_pads(salt: str, secret: str | bytes) -> tuple[Any, Any]:
    """Return the inner and outer SHA-256 states of Django's HMAC for ``salt`` and ``secret``.

    Django's ``Signer.signature``: ``salted_hmac(salt + "signer", value, secret,
    algorithm="sha256")``, an HMAC-SHA256 whose key is ``sha256(key_salt +
    secret)``. HMAC (RFC 2104) is ``H((K ^ opad) + H((K ^ ipad) + value))``;
    the two states after hashing ``K ^ ipad`` and ``K ^ opad`` are kept and
    copied for each signature, as the standard library's ``hmac`` does without
    OpenSSL's HMAC: copying two ``hashlib`` states cost the client less than
    copying an OpenSSL HMAC context (``tests/test_signed_format.py`` checks every
    signature against ``hmac``).
    """
    key = hashlib.sha256(force_bytes(salt + "signer") + force_bytes(secret)).digest()
    key = key.ljust(hashlib.sha256().block_size, b"\0")
    inner = hashlib.sha256(key.translate(_IPAD))
    outer = hashlib.sha256(key.translate(_OPAD))
    return inner, outer


def _signature(salt: str, secret: str | bytes, value: bytes) -> bytes:
    """Return Django's signature of ``value``: urlsafe base64 of the HMAC, unpadded."""
    inner_state, outer_state = _hmac_pads(salt, secret)
    inner = inner_state.copy()
    inner.update(value)
    outer = outer_state.copy()
    outer.update(inner.digest())
    return base64.urlsafe_b64encode(outer.digest()).rstrip(b"=")


@functools.lru_cache(maxsize=4)
def _b62(timestamp: int) -> str:
    """Return Django's b62_encode() of ``timestamp`` (the same second is signed often)."""
    return b62_encode(timestamp)


def _compressed(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, _WBITS, _MEM_LEVEL)
    return compressor.compress(data) + compressor.flush()


def dumps(obj: Any, salt: str, serializer: Any, timestamp: int) -> str:
    """Return the session ``obj`` signed as ``signing.dumps(obj, salt=salt,
    serializer=serializer, compress=True)`` signs it.

    ``timestamp`` is the signing time in whole seconds since the epoch (Django's
    ``int(time.time())``). Raises what the serializer raises for ``obj``.
    """
    if serializer is JSONSerializer:
        data = _json_encode(obj).encode("latin-1")
    else:
        data = serializer().dumps(obj)
    prefix = b""
    if len(data) >= compress_min_length():
        compressed = _compressed(data)
        if len(compressed) < len(data) - 1:  # Django's rule: compressed only when shorter
            data, prefix = compressed, b"."
    value = b"%s%s:%s" % (
        prefix,
        base64.urlsafe_b64encode(data).rstrip(b"="),
        _b62(timestamp).encode(),
    )
    return (value + b":" + _signature(salt, conf.SECRET_KEY, value)).decode()


def loads(signed: str, salt: str, serializer: Any) -> Any:
    """Return ``signing.loads(signed, salt=salt, serializer=serializer)``.

    Raises BadSignature when no key of ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``
    signed it, and what Django's would raise for a malformed value.
    """
    value, sep, signature = signed.rpartition(":")
    if not sep:
        raise BadSignature('No ":" found in value')
    # Both halves of a str: what force_bytes() would do, without its type checks.
    given, raw = signature.encode(), value.encode()
    for secret in (conf.SECRET_KEY, *conf.SECRET_KEY_FALLBACKS):
        if hmac.compare_digest(given, _signature(salt, secret, raw)):
            break
    else:
        raise BadSignature(f'Signature "{signature}" does not match')
    # TimestampSigner.unsign: the timestamp is decoded (so checked) even without max_age.
    base64d, timestamp = value.rsplit(":", 1)
    if not timestamp or not _TIMESTAMP.fullmatch(timestamp):
        raise ValueError(f"not a base62 timestamp: {timestamp!r}")
    encoded = base64d.encode()
    decompress = encoded[:1] == b"."
    if decompress:
        encoded = encoded[1:]
    data = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    if decompress:
        data = zlib.decompress(data)
    if serializer is JSONSerializer:
        return _json_decode(data.decode("latin-1"))
    return serializer().loads(data)
