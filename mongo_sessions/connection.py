"""The per-process MongoDB client, database and sessions collection."""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from dataclasses import dataclass
from datetime import timezone
from typing import TYPE_CHECKING, Any

from bson.codec_options import CodecOptions
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from . import indexes, validation
from .conf import CONNECTION_SETTINGS, DEFAULT_CLIENT_OPTIONS, conf
from .operation import mongo_operation

if TYPE_CHECKING:
    # The async driver is imported by aget_collection(), on first use of the async API.
    from pymongo.asynchronous.collection import AsyncCollection

# Datetimes come back aware and in UTC whatever the client's own codec options.
CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Target:
    """Where sessions live, as resolved from the settings."""

    style: str
    client: MongoClient[dict[str, Any]]
    owns_client: bool
    database_name: str
    collection_name: str
    # Keyword arguments that build an AsyncMongoClient to the same deployment.
    async_client_kwargs: dict[str, Any]

    @property
    def collection(self) -> Collection[dict[str, Any]]:
        return self.client[self.database_name].get_collection(
            self.collection_name, codec_options=CODEC_OPTIONS
        )


_lock = threading.Lock()
_target: Target | None = None
_sync_collection: Collection[dict[str, Any]] | None = None
# Per event loop: the collection of its AsyncMongoClient, and once its indexes are
# ensured, the same collection in _async_ready (the fast path).
_async_collections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncCollection[Any]] = (
    weakref.WeakKeyDictionary()
)
_async_ready: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncCollection[Any]] = (
    weakref.WeakKeyDictionary()
)
# Collections (by full name) whose indexes this process has already ensured.
_indexed: set[str] = set()


def _client_options(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    options = {**DEFAULT_CLIENT_OPTIONS, **conf.MONGO_SESSIONS_CLIENT_OPTIONS}
    if extra:
        options.update(extra)
    return options


def _resolve() -> Target:
    """Build the target from the settings, following the documented precedence."""
    validation.validate_connection_settings()
    collection_name = conf.MONGO_SESSIONS_COLLECTION
    if conf.MONGO_SESSIONS_DATABASE_ALIAS is not None:
        # A DATABASES entry of django-mongodb-backend (see database_alias.py); wins.
        from .database_alias import STYLE, resolve

        alias = resolve(conf.MONGO_SESSIONS_DATABASE_ALIAS)
        return Target(
            style=STYLE,
            client=alias.client,
            owns_client=False,  # django-mongodb-backend's: never closed here
            database_name=alias.database_name,
            collection_name=collection_name,
            async_client_kwargs=alias.async_client_kwargs,
        )
    given = conf.MONGO_CLIENT
    if given is not None:
        style_suffix = ""
        if isinstance(given, str):
            try:
                given = import_string(given)
            except ImportError as e:
                raise ImproperlyConfigured(
                    f"MONGO_CLIENT {conf.MONGO_CLIENT!r} cannot be imported: {e}"
                ) from e
            style_suffix = "-path"
        if isinstance(given, Database):
            client, database_name, style = given.client, given.name, "database"
        elif isinstance(given, MongoClient):
            client, database_name, style = given, conf.MONGO_DB_NAME, "client"
        else:
            raise ImproperlyConfigured(
                "MONGO_CLIENT must be a pymongo.MongoClient, a pymongo.database.Database "
                f"or a dotted path to one, not {type(given).__name__}."
            )
        # The async twin reaches the same deployment with the user's own options.
        init_kwargs = dict(getattr(client, "_init_kwargs", {}))
        init_kwargs.pop("connect", None)
        return Target(
            style=style + style_suffix,
            client=client,
            owns_client=False,
            database_name=database_name,
            collection_name=collection_name,
            async_client_kwargs=init_kwargs,
        )
    url = conf.MONGO_SESSIONS_URL
    if url:
        options = _client_options()
        client = MongoClient(url, **options)
        database = client.get_default_database(default=conf.MONGO_DB_NAME)
        return Target(
            style="url",
            client=client,
            owns_client=True,
            database_name=database.name,
            collection_name=collection_name,
            async_client_kwargs={"host": url, **options},
        )
    kwargs: dict[str, Any] = {"host": conf.MONGO_HOST, "port": conf.MONGO_PORT}
    if conf.MONGO_DB_USER and conf.MONGO_DB_PASSWORD:
        # As the package this replaces did: the user is defined in MONGO_DB_NAME.
        kwargs.update(
            username=conf.MONGO_DB_USER,
            password=conf.MONGO_DB_PASSWORD,
            authSource=conf.MONGO_DB_NAME,
        )
    options = _client_options(kwargs)
    return Target(
        style="host",
        client=MongoClient(**options),
        owns_client=True,
        database_name=conf.MONGO_DB_NAME,
        collection_name=collection_name,
        async_client_kwargs=options,
    )


def get_target() -> Target:
    """Return this process's target, resolving it on first use."""
    global _target
    target = _target
    if target is None:
        with _lock:
            if _target is None:
                _target = _resolve()
            target = _target
    return target


def get_collection() -> Collection[dict[str, Any]]:
    """Return the sessions collection, creating its indexes on first use.

    Call it inside ``mongo_operation()``: the first call talks to the server.
    """
    global _sync_collection
    collection = _sync_collection
    if collection is not None:
        return collection
    collection = get_target().collection
    if conf.MONGO_SESSIONS_AUTO_INDEX and collection.full_name not in _indexed:
        indexes.ensure_indexes(collection)
        _indexed.add(collection.full_name)
    _sync_collection = collection
    return collection


async def aget_collection() -> AsyncCollection[Any]:
    """Return the sessions collection for the running event loop (inside mongo_operation)."""
    loop = asyncio.get_running_loop()
    collection = _async_ready.get(loop)
    if collection is not None:
        return collection
    collection = _async_collections.get(loop)
    if collection is None:
        from pymongo import AsyncMongoClient

        target = get_target()
        # AsyncMongoClient binds to the event loop it first runs on: one per loop,
        # kept even if the index creation below fails, so that a retry reuses it.
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(**target.async_client_kwargs)
        collection = client[target.database_name].get_collection(
            target.collection_name, codec_options=CODEC_OPTIONS
        )
        _async_collections[loop] = collection
    if conf.MONGO_SESSIONS_AUTO_INDEX and collection.full_name not in _indexed:
        await indexes.aensure_indexes(collection)
        _indexed.add(collection.full_name)
    _async_ready[loop] = collection
    return collection


def describe_connection() -> dict[str, str]:
    """Describe the connection style, server address, database and collection in use."""
    target = get_target()
    nodes = target.client.topology_description.server_descriptions() or {}
    seeds = list(nodes) or list(target.client._topology_settings.seeds)
    address = ",".join(f"{host}:{port}" for host, port in seeds)
    return {
        "style": target.style,
        "address": address,
        "database": target.database_name,
        "collection": target.collection_name,
    }


def ping() -> None:
    """Check that the server answers within the timeout."""
    with mongo_operation("ping"):
        get_target().collection.database.command("ping")


async def aping() -> None:
    """Check that the server answers within the timeout, from async code."""
    with mongo_operation("ping"):
        collection = await aget_collection()
        await collection.database.command("ping")


def reset() -> None:
    """Forget the client and collections, closing only clients the package created."""
    global _target, _sync_collection
    with _lock:
        target, _target, _sync_collection = _target, None, None
        _indexed.clear()
        # Async clients cannot be closed from sync code; they end with their loop.
        _async_collections.clear()
        _async_ready.clear()
    if target is not None and target.owns_client:
        target.client.close()


def _forget_after_fork() -> None:
    """Drop the parent's clients in a forked child: pymongo clients are not fork-safe."""
    global _target, _sync_collection, _lock
    _lock = threading.Lock()
    _target = None
    _sync_collection = None
    _async_collections.clear()
    _async_ready.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in CONNECTION_SETTINGS:
        reset()
