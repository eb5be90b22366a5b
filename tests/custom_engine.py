"""A SESSION_ENGINE of a site's own: the package's store under another class name.

Django's key_salt holds the class name, so its sessions are signed with a salt
of their own (tests/test_formats.py converts them with it).
"""

from __future__ import annotations

from mongo_sessions.session import SessionStore as MongoSessionStore


class ShopSessionStore(MongoSessionStore):
    """The package's store, renamed."""


SessionStore = ShopSessionStore
