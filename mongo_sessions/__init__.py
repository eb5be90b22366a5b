"""Django session engine on MongoDB: SESSION_ENGINE = "mongo_sessions.session".

The public API is importable from here: the per-user functions, the health
checks (``ping``/``aping``), ``describe_connection`` and ``stored_session``.
Each name is imported on first access, so ``import mongo_sessions`` loads no
driver and opens no connection (the package is in INSTALLED_APPS and must be
importable before Django's app registry is ready).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "1.0.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "StoredSession": "stored",
    "UserSession": "users",
    "aping": "connection",
    "arevoke_session": "users",
    "arevoke_user_sessions": "users",
    "astored_session": "stored",
    "auser_sessions": "users",
    "describe_connection": "connection",
    "hash_session_key": "redaction",
    "ping": "connection",
    "revoke_session": "users",
    "revoke_user_sessions": "users",
    "stored_session": "stored",
    "user_sessions": "users",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # "as" marks the re-exports for type checkers and linters
    from .connection import aping as aping
    from .connection import describe_connection as describe_connection
    from .connection import ping as ping
    from .redaction import hash_session_key as hash_session_key
    from .stored import StoredSession as StoredSession
    from .stored import astored_session as astored_session
    from .stored import stored_session as stored_session
    from .users import UserSession as UserSession
    from .users import arevoke_session as arevoke_session
    from .users import arevoke_user_sessions as arevoke_user_sessions
    from .users import auser_sessions as auser_sessions
    from .users import revoke_session as revoke_session
    from .users import revoke_user_sessions as revoke_user_sessions
    from .users import user_sessions as user_sessions


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
