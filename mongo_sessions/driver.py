"""pymongo and bson, imported on first use.

pymongo's own ``__init__`` imports its async client (``pymongo.asynchronous``),
so importing any part of pymongo, even ``pymongo.errors``, costs a site about
50 to 70 ms of start-up: the sync driver cannot be imported alone. The modules that
Django imports when it sets the app up (its checks) and that
``SessionMiddleware`` imports (``mongo_sessions.session``) therefore name the
driver through this module, ``driver.errors.DuplicateKeyError`` rather than
``from pymongo.errors import DuplicateKeyError``, and pymongo is imported when
the package first needs it: the first client, the first check that inspects a
setting with it, the first session operation, an ``except`` clause that an
exception reaches.

The first access of an attribute imports its module (PEP 562 ``__getattr__``)
and stores it in this module's globals, so every later access is a plain
attribute lookup. The ``TYPE_CHECKING`` imports give type checkers the real
modules. A site that wants pymongo imported at start-up imports it in its
settings or WSGI/ASGI module.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # "as" and __all__ mark the re-exports for type checkers and linters
    import bson as bson
    import pymongo as pymongo
    from bson import codec_options as codec_options
    from bson import errors as bson_errors
    from pymongo import database as database
    from pymongo import errors as errors
    from pymongo import uri_parser as uri_parser

# Attribute -> the module it stands for.
_MODULES = {
    "bson": "bson",
    "bson_errors": "bson.errors",
    "codec_options": "bson.codec_options",
    "database": "pymongo.database",
    "errors": "pymongo.errors",
    "pymongo": "pymongo",
    "uri_parser": "pymongo.uri_parser",
}
__all__ = [
    "bson",
    "bson_errors",
    "codec_options",
    "database",
    "errors",
    "pymongo",
    "uri_parser",
]


# Held while a thread imports the driver (see _imported).
_import_lock = threading.RLock()


def _imported(name: str) -> ModuleType:
    """Import the module that ``name`` stands for, keep it in the globals, return it.

    pymongo's modules import each other in a circle: two threads importing two
    of them at once (the first requests of a threaded worker) can deadlock
    (``_DeadlockError``) or see a half-imported module. So one thread at a time
    imports the whole driver first (``pymongo``, whose ``__init__`` imports
    bson and every module the package names here); the others wait for it.
    Raises ``AttributeError`` for a name that stands for no module, and
    ``ImportError`` if the module cannot be imported.
    """
    path = _MODULES.get(name)
    if path is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _import_lock:
        importlib.import_module("pymongo")
        module = importlib.import_module(path)
    globals()[name] = module  # later accesses find it without calling __getattr__
    return module


def import_all() -> None:
    """Import the whole driver now, one thread at a time (see ``_imported``).

    Called before importing a module of the site's own (a ``MONGO_CLIENT``
    path, django-mongodb-backend), which may import a pymongo submodule first
    and so race another thread's first use. Raises ``ImportError`` if pymongo
    cannot be imported.
    """
    _imported("pymongo")


if not TYPE_CHECKING:  # type checkers see the names above only: a misspelt one is an error
    __getattr__ = _imported


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES})
