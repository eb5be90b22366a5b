"""Keep session keys out of logs and exception messages."""

from __future__ import annotations

import hashlib


def hash_session_key(session_key: str) -> str:
    """Return a short, stable, non-reversible label for a session key."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:16]


def redact(text: str, session_key: str | None) -> str:
    """Replace every occurrence of ``session_key`` in ``text`` with its hash."""
    if not session_key:
        return text
    return text.replace(session_key, f"<session {hash_session_key(session_key)}>")


class SessionKey(str):
    """A session key whose repr() is its hash: safe to show in a traceback's variables.

    Django's DEBUG error page and error trackers print the local variables of
    every frame with repr(); the store keeps its key in this form so that none
    of them shows it. Everything else (comparisons, BSON, the cookie) sees a str.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<session {hash_session_key(self)}>"
