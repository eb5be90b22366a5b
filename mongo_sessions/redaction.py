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
