"""Django session engine on MongoDB: SESSION_ENGINE = "mongo_sessions.session"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "1.0.0"
__all__ = [
    "UserSession",
    "arevoke_session",
    "arevoke_user_sessions",
    "auser_sessions",
    "hash_session_key",
    "revoke_session",
    "revoke_user_sessions",
    "user_sessions",
]

if TYPE_CHECKING:
    from .redaction import hash_session_key
    from .users import (
        UserSession,
        arevoke_session,
        arevoke_user_sessions,
        auser_sessions,
        revoke_session,
        revoke_user_sessions,
        user_sessions,
    )


def __getattr__(name: str) -> Any:
    # Imported on demand: the package is listed in INSTALLED_APPS and must be
    # importable before Django's app registry is ready.
    if name == "hash_session_key":
        from .redaction import hash_session_key

        return hash_session_key
    if name in __all__:
        from . import users

        return getattr(users, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
