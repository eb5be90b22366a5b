"""The MongoDB passwords held by the settings, and their removal from text and values."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote_plus

from . import driver
from .conf import conf

if TYPE_CHECKING:
    from pymongo import MongoClient

REDACTED = "********"
# Keys of MongoClient options that hold a secret (compared in lower case).
SECRET_OPTION_KEYS = frozenset({"password", "tlscertificatekeyfilepassword", "aws_session_token"})
# Parts of a password at least this long are removed too, for a message that
# quotes only the piece of an unescaped password that pymongo took for a host,
# port or database name.
MIN_FRAGMENT = 4
_URL_RESERVED = re.compile(r"[:/?#\[\]@]")


def url_password(url: str) -> str | None:
    """Return the password written in a mongodb:// URL, even a malformed one, or None.

    The user information runs from the scheme to the *last* "@", so that a
    password with an unescaped "@", "/" or ":" is still found whole.
    """
    _, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return None
    userinfo = rest[: rest.rfind("@")]
    _, colon, password = userinfo.partition(":")
    return password if colon and password else None


def configured_passwords() -> set[str]:
    """Return every password (and secret option) the package's settings hold.

    Read from MONGO_SESSIONS_URL, MONGO_DB_PASSWORD, MONGO_HOST (pymongo accepts
    a URL there), MONGO_SESSIONS_CLIENT_OPTIONS (password-like keys and URL
    values) and MONGO_CLIENT (a client or database object, or the object behind
    a dotted path whose module is already imported: nothing is imported here).
    Never raises.
    """
    found: set[str] = set()
    # A redaction helper runs while an error is reported: it must not fail.
    with contextlib.suppress(Exception):
        _collect(found)
    return {secret for secret in found if secret}


def _collect(found: set[str]) -> None:
    for value in (conf.MONGO_SESSIONS_URL, conf.MONGO_HOST):
        if isinstance(value, str):
            _add_url(found, value)
    password = conf.MONGO_DB_PASSWORD
    if isinstance(password, str):
        found.add(password)
    options = conf.MONGO_SESSIONS_CLIENT_OPTIONS
    if isinstance(options, dict):
        _add_options(found, options)
    given = conf.MONGO_CLIENT
    if isinstance(given, str):
        module_name, _, attribute = given.rpartition(".")
        module = sys.modules.get(module_name)
        given = getattr(module, attribute, None) if module is not None else None
    if isinstance(given, driver.database.Database):
        given = given.client
    if isinstance(given, driver.pymongo.MongoClient):
        _add_client(found, given)


def _add_url(found: set[str], url: str) -> None:
    password = url_password(url)
    if password:
        found.add(password)
        found.add(unquote_plus(password))


def _add_options(found: set[str], options: dict[Any, Any]) -> None:
    for key, value in options.items():
        if isinstance(value, dict):
            _add_options(found, value)
        elif isinstance(value, str):
            if str(key).lower() in SECRET_OPTION_KEYS:
                found.add(value)
            else:
                _add_url(found, value)


def _add_client(found: set[str], client: MongoClient[Any]) -> None:
    # pymongo keeps the credentials in private attributes only: read them
    # defensively, a future pymongo may move them.
    credentials = getattr(getattr(client.options, "pool_options", None), "_credentials", None)
    password = getattr(credentials, "password", None)
    if isinstance(password, str):
        found.add(password)
    init_kwargs = getattr(client, "_init_kwargs", None)
    if isinstance(init_kwargs, dict):
        hosts = init_kwargs.get("host")
        for host in hosts if isinstance(hosts, list | tuple) else [hosts]:
            if isinstance(host, str):
                _add_url(found, host)
        _add_options(found, {k: v for k, v in init_kwargs.items() if k != "host"})


def _forms(secrets: Iterable[str]) -> list[str]:
    """Return each secret as written raw and URL-escaped, and its long fragments."""
    forms: set[str] = set()
    for secret in secrets:
        forms.update({secret, quote_plus(secret), quote(secret, safe="")})
        forms.update(part for part in _URL_RESERVED.split(secret) if len(part) >= MIN_FRAGMENT)
    # Longest first, so that a secret is replaced before a fragment of it.
    return sorted((form for form in forms if form), key=len, reverse=True)


def scrub_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """Return ``text`` with every configured password (or ``secrets``) replaced by stars."""
    for form in _forms(configured_passwords() if secrets is None else secrets):
        text = text.replace(form, REDACTED)
    return text


def contains_secret(text: str, secrets: Iterable[str]) -> bool:
    """Return whether ``text`` holds one of ``secrets`` in any of its forms."""
    return any(form in text for form in _forms(secrets))
