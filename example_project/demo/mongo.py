"""The site's own MongoDB client, as a project would have one in a module.

The ``client-path`` and ``database-path`` connection styles point the session
store at the objects here (``MONGO_CLIENT = "demo.mongo.client"`` or
``"demo.mongo.db"``), so that sessions share the client with the rest of the
site's code instead of opening a second pool of connections. Every style that
sets ``MONGO_CLIENT`` also names :func:`async_client` in
``MONGO_SESSIONS_ASYNC_CLIENT``, for the async session methods (under ASGI).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pymongo
from django.conf import settings
from pymongo.database import Database

# connect=False: the pool opens on first use, in each gunicorn worker after the fork.
client: pymongo.MongoClient = pymongo.MongoClient(
    settings.DEMO_MONGO_URL, connect=False, serverSelectionTimeoutMS=5000
)
db: Database = client[unquote(urlsplit(settings.DEMO_MONGO_URL).path.lstrip("/")) or "demo"]


def async_client() -> pymongo.AsyncMongoClient:
    """Return a new AsyncMongoClient to the same server, for one event loop.

    The package calls it once per event loop (an AsyncMongoClient serves one
    loop only) and closes each client with its loop; pymongo has no public way
    to copy the options of ``client`` above, so they are written again here.
    """
    return pymongo.AsyncMongoClient(settings.DEMO_MONGO_URL, serverSelectionTimeoutMS=5000)
