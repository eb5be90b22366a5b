"""The per-process MongoDB client, database and sessions collection.

Everything held for one configuration lives in one ``_State``: the target
resolved from the settings (the sync client, database and collection names),
the sync collection, the async clients (one per event loop, see ``loops.py``)
and the automatic index creation. ``reset()``, a change of a connection setting
and a fork replace that object as a whole.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from typing import Any
from urllib.parse import parse_qsl

from bson.codec_options import CodecOptions
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string
from django.views.decorators.debug import sensitive_variables
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from . import validation
from .conf import CONNECTION_SETTINGS, DEFAULT_CLIENT_OPTIONS, conf
from .indexes import AutoIndex
from .loops import LoopClients
from .operation import mongo_operation, no_server_hooks, operation_deadline
from .validation import timeout_seconds

logger = logging.getLogger("mongo_sessions")

# Datetimes come back aware and in UTC whatever the client's own codec options.
CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=timezone.utc)

# Event loops with no session operation in flight whose async client is kept
# (an ASGI server has one loop; a loop ended by asyncio.run or async_to_sync
# closes its client itself). Beyond this, the least recently used is closed.
IDLE_LOOP_CLIENTS = 4

AsyncClientFactory = Callable[[], AsyncMongoClient[dict[str, Any]]]


@dataclass(frozen=True)
class Target:
    """Where sessions live, as resolved from the settings."""

    style: str
    client: MongoClient[dict[str, Any]]
    owns_client: bool
    database_name: str
    collection_name: str
    # Builds a new AsyncMongoClient to the same deployment, for one event loop.
    async_client_factory: AsyncClientFactory

    @property
    def collection(self) -> Collection[dict[str, Any]]:
        return self.client[self.database_name].get_collection(
            self.collection_name, codec_options=CODEC_OPTIONS
        )


class ClientSettingError(ImproperlyConfigured):
    """Raise when MONGO_CLIENT or MONGO_SESSIONS_ASYNC_CLIENT cannot be used.

    ``message`` and ``hint`` are what ``manage.py check`` reports under
    ``check_id``; the exception's text is both.
    """

    def __init__(self, message: str, *, hint: str, check_id: str) -> None:
        self.message = message
        self.hint = hint
        self.check_id = check_id
        super().__init__(f"{message} {hint}")


def resolve_mongo_client(given: Any) -> tuple[MongoClient[dict[str, Any]], str | None, str]:
    """Return ``(client, database name or None, style)`` for a ``MONGO_CLIENT`` value.

    ``given`` is a ``MongoClient``, a ``Database`` or a dotted path to one
    (imported here). The database name is None for a client (``MONGO_DB_NAME``
    applies). Shared by the connection and ``manage.py check``. Raises
    ``ClientSettingError`` (check ids E001, E002).
    """
    style_suffix = ""
    resolved = given
    if isinstance(given, str):
        try:
            resolved = import_string(given)
        except ImportError as e:
            raise ClientSettingError(
                f"MONGO_CLIENT {given!r} cannot be imported: {e}",
                hint="Give the dotted path of a module attribute holding a "
                "pymongo.MongoClient or pymongo.database.Database.",
                check_id="mongo_sessions.E002",
            ) from e
        style_suffix = "-path"
    if isinstance(resolved, Database):
        return resolved.client, resolved.name, "database" + style_suffix
    if isinstance(resolved, MongoClient):
        return resolved, None, "client" + style_suffix
    if style_suffix:
        raise ClientSettingError(
            f"MONGO_CLIENT {given!r} points to a {type(resolved).__name__}, not a "
            "pymongo.MongoClient or pymongo.database.Database.",
            hint="Point MONGO_CLIENT at the client or database object itself.",
            check_id="mongo_sessions.E002",
        )
    raise ClientSettingError(
        f"MONGO_CLIENT is a {type(given).__name__}.",
        hint="Use a pymongo.MongoClient, a pymongo.database.Database, or a dotted path to one "
        "of them (for the async methods, set MONGO_SESSIONS_ASYNC_CLIENT as well).",
        check_id="mongo_sessions.E001",
    )


def resolve_async_client_factory(given: Any) -> AsyncClientFactory | None:
    """Return the callable a ``MONGO_SESSIONS_ASYNC_CLIENT`` value names, or None if unset.

    ``given`` is a callable taking no argument or a dotted path to one.
    Raises ``ClientSettingError`` (check id E020).
    """
    if given is None:
        return None
    resolved = given
    if isinstance(given, str):
        try:
            resolved = import_string(given)
        except ImportError as e:
            raise ClientSettingError(
                f"MONGO_SESSIONS_ASYNC_CLIENT {given!r} cannot be imported: {e}",
                hint="Give the dotted path of a function that returns a new "
                "pymongo.AsyncMongoClient.",
                check_id="mongo_sessions.E020",
            ) from e
    if not callable(resolved) or isinstance(resolved, AsyncMongoClient):
        raise ClientSettingError(
            "MONGO_SESSIONS_ASYNC_CLIENT must be a function (or its dotted path), not "
            f"{type(resolved).__name__}.",
            hint="Give a function (or its dotted path) that returns a new "
            "pymongo.AsyncMongoClient: an AsyncMongoClient serves one event loop only, "
            "so the package builds one per loop.",
            check_id="mongo_sessions.E020",
        )
    factory: AsyncClientFactory = resolved
    return factory


@sensitive_variables()
def resolve_target() -> Target:
    """Build the target from the settings, following the documented precedence.

    ``MONGO_SESSIONS_DATABASE_ALIAS`` wins, then ``MONGO_CLIENT``, then
    ``MONGO_SESSIONS_URL``, then the host settings.
    No network I/O: the clients the package creates connect on first use (so a
    ``mongodb+srv://`` name is looked up then). Raises ``ImproperlyConfigured``
    naming the setting at fault, without any password.
    """
    validation.validate_connection_settings()
    collection_name = conf.MONGO_SESSIONS_COLLECTION
    if conf.MONGO_SESSIONS_DATABASE_ALIAS is not None:
        # A DATABASES entry of django-mongodb-backend (see database_alias.py); wins.
        from .database_alias import STYLE, resolve

        alias = resolve(conf.MONGO_SESSIONS_DATABASE_ALIAS)
        async_kwargs = alias.async_client_kwargs
        return Target(
            style=STYLE,
            client=alias.client,
            owns_client=False,  # django-mongodb-backend's: never closed here
            database_name=alias.database_name,
            collection_name=collection_name,
            async_client_factory=lambda: AsyncMongoClient(**async_kwargs),
        )
    if conf.MONGO_CLIENT is not None:
        client, database_name, style = resolve_mongo_client(conf.MONGO_CLIENT)
        return Target(
            style=style,
            client=client,
            owns_client=False,
            database_name=database_name or conf.MONGO_DB_NAME,
            collection_name=collection_name,
            async_client_factory=_user_async_factory(conf.MONGO_SESSIONS_ASYNC_CLIENT),
        )
    extra = conf.MONGO_SESSIONS_CLIENT_OPTIONS
    url = conf.MONGO_SESSIONS_URL
    if url:
        setting, secret = "MONGO_SESSIONS_URL", _url_password(url)
        arguments: dict[str, Any] = {"host": url}
    else:
        setting, secret = "MONGO_HOST/MONGO_PORT", None
        arguments = {"host": conf.MONGO_HOST, "port": conf.MONGO_PORT}
        if conf.MONGO_DB_USER and conf.MONGO_DB_PASSWORD:
            # As the package this replaces did: the user is defined in MONGO_DB_NAME.
            setting = "MONGO_HOST/MONGO_PORT/MONGO_DB_USER/MONGO_DB_PASSWORD"
            secret = str(conf.MONGO_DB_PASSWORD)
            arguments.update(
                username=conf.MONGO_DB_USER,
                password=conf.MONGO_DB_PASSWORD,
                authSource=conf.MONGO_DB_NAME,
            )
    # The package's defaults give way to the URL's own options, and both to
    # MONGO_SESSIONS_CLIENT_OPTIONS (pymongo lets keyword arguments win over the
    # URL). connect=False whatever they say: no I/O (DNS included) before first use.
    in_url = _url_option_names(url) if url else set()
    defaults = {k: v for k, v in DEFAULT_CLIENT_OPTIONS.items() if k.lower() not in in_url}
    base = {**defaults, **arguments, "connect": False}
    options = {**defaults, **(extra if isinstance(extra, dict) else {}), **arguments}
    options["connect"] = False
    client = _new_client(MongoClient, base, options, setting, secret)
    if url:
        database_name = client.get_default_database(default=conf.MONGO_DB_NAME).name
    else:
        database_name = conf.MONGO_DB_NAME
    return Target(
        style="url" if url else "host",
        client=client,
        owns_client=True,
        database_name=database_name,
        collection_name=collection_name,
        async_client_factory=lambda: _new_client(AsyncMongoClient, base, options, setting, secret),
    )


@sensitive_variables()
def _new_client(
    client_class: type[Any],
    base: dict[str, Any],
    options: dict[str, Any],
    setting: str,
    secret: str | None,
) -> Any:
    """Build a client from ``options``; a driver refusal becomes ImproperlyConfigured.

    ``base`` is ``options`` without MONGO_SESSIONS_CLIENT_OPTIONS: if it builds,
    those options are at fault, else ``setting`` is. ``secret`` never reaches
    the message, nor the chained error when its text holds it.
    """
    try:
        return client_class(**options)
    except (PyMongoError, TypeError, ValueError) as e:
        error = e
    if options != base:
        try:
            MongoClient(**base).close()
        except (PyMongoError, TypeError, ValueError):
            pass
        else:
            setting = "MONGO_SESSIONS_CLIENT_OPTIONS"
    detail = f"{type(error).__name__}: {error}"
    leaks = bool(secret) and secret is not None and secret in detail
    if secret:
        detail = detail.replace(secret, "<password>")
    raise ImproperlyConfigured(f"{setting} cannot be used: {detail}") from (
        None if leaks else error
    )


def _url_option_names(url: str) -> set[str]:
    """Return the names of the options in a MongoDB URL's query string, in lower case."""
    _, _, query = url.partition("?")
    return {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}


def _url_password(url: str) -> str | None:
    """Return the password in a MongoDB URL's user information, as written, if any."""
    _, _, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1] or None


def _user_async_factory(given: Any) -> AsyncClientFactory:
    """Return the user's factory of async clients, or one that says it is missing."""
    factory = resolve_async_client_factory(given)
    if factory is None:

        def missing() -> AsyncMongoClient[dict[str, Any]]:
            raise ImproperlyConfigured(
                "MONGO_CLIENT is set, so the async session methods need "
                "MONGO_SESSIONS_ASYNC_CLIENT: a function returning a new AsyncMongoClient with "
                "the options of your MongoClient (pymongo has no public way to copy them)."
            )

        return missing
    user_factory = factory

    def checked() -> AsyncMongoClient[dict[str, Any]]:
        client = user_factory()
        if not isinstance(client, AsyncMongoClient):
            raise ImproperlyConfigured(
                f"MONGO_SESSIONS_ASYNC_CLIENT returned a {type(client).__name__}, not a new "
                "pymongo.AsyncMongoClient."
            )
        return client

    return checked


class _State:
    """Everything held for one configuration; replaced whole, never cleared field by field."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: Target | None = None
        self._loop_clients: LoopClients | None = None
        self.sync_collection: Collection[dict[str, Any]] | None = None
        self.auto_index = AutoIndex()

    def target(self) -> Target:
        """Return the target, resolving it from the settings on first use."""
        target = self._target
        if target is None:
            with self._lock:
                if self._target is None:
                    self._target = resolve_target()
                    if not conf.MONGO_SESSIONS_AUTO_INDEX:
                        self.auto_index.done = True  # nothing to do in this process
                target = self._target
        return target

    def loop_clients(self) -> LoopClients:
        """Return the async clients, one per event loop."""
        clients = self._loop_clients
        if clients is None:
            target = self.target()
            with self._lock:
                if self._loop_clients is None:
                    self._loop_clients = LoopClients(
                        target.async_client_factory,
                        collection_of=lambda client: client[target.database_name].get_collection(
                            target.collection_name, codec_options=CODEC_OPTIONS
                        ),
                        idle_limit=IDLE_LOOP_CLIENTS,
                    )
                clients = self._loop_clients
        return clients

    def close(self) -> None:
        """Close the clients the package created: the sync one and every loop's."""
        self.auto_index.cancel()
        with self._lock:
            target, loop_clients = self._target, self._loop_clients
        if loop_clients is not None:
            loop_clients.close()
        if target is not None and target.owns_client:
            target.client.close()

    def forget(self) -> None:
        """Drop the clients without any I/O, in a forked child.

        pymongo has already given each MongoClient a fresh, unopened topology
        in the child (and the parent's server sessions must not be ended from
        here); the event loops of the parent do not run in the child.
        """
        self.auto_index.cancel()
        if self._loop_clients is not None:
            self._loop_clients.forget()


_state_lock = threading.Lock()
_state = _State()

# A client of the package's own that lost every server is replaced at most
# once per this many seconds (see _replace_lost_clients).
LOST_CLIENT_INTERVAL = 5.0
_last_replacement = -LOST_CLIENT_INTERVAL


def get_target() -> Target:
    """Return this process's target, resolving it from the settings on first use.

    Raises ``ImproperlyConfigured`` for settings that cannot be used.
    """
    return _state.target()


def get_collection() -> Collection[dict[str, Any]]:
    """Return the sessions collection, starting the automatic index creation if due.

    Call it inside ``mongo_operation()``. Index creation runs in the background
    and never delays or fails the caller (see ``indexes.AutoIndex``).
    """
    state = _state
    collection = state.sync_collection
    if collection is None:
        collection = state.target().collection
        state.sync_collection = collection
    if not state.auto_index.done:
        state.auto_index.start(collection)
    return collection


async def aget_collection() -> AsyncCollection[dict[str, Any]]:
    """Return the sessions collection of the running event loop's client (inside mongo_operation).

    The loop's ``AsyncMongoClient`` is created on first use and closed when the
    loop shuts down (see ``loops.py``). Raises ``ImproperlyConfigured`` for
    settings that cannot be used.
    """
    state = _state
    clients = state.loop_clients()
    # Until the operation's bound has passed, the loop's client is in use.
    busy_until = operation_deadline() or time.monotonic() + conf.MONGO_SESSIONS_TIMEOUT
    collection = clients.get(busy_until)
    if collection is None:
        collection = await clients.create(busy_until)
    if not state.auto_index.done:
        state.auto_index.start(state.target().collection)
    return collection


def wait_for_auto_index(timeout: float) -> bool:
    """Run the automatic index creation now, waiting up to ``timeout`` seconds for it.

    Return True once the expected indexes are ensured in this process (or
    automatic index creation is off), False if they are not yet (the
    collection does not exist, or the attempt failed: see the log). Never
    raises for a failed attempt. For tests and start-up scripts: requests
    never wait for the indexes.
    """
    state = _state
    return state.auto_index.wait(state.target().collection, timeout)


_SRV = "mongodb+srv://"


def describe_connection() -> dict[str, str]:
    """Describe the connection style, server address(es), database and collection in use.

    Never connects and never raises for settings that ``manage.py check``
    accepts (a ``mongodb+srv`` name is shown as given, before its lookup).
    Holds no credentials.
    """
    url = conf.MONGO_SESSIONS_URL
    try:
        target = get_target()
    except ImproperlyConfigured as e:
        if not isinstance(url, str) or not url.startswith(_SRV) or conf.MONGO_CLIENT is not None:
            raise
        if "DNS" not in str(e):
            raise
        # pymongo before 4.11 looks a mongodb+srv name up when the client is
        # built: describe the name as given, without the lookup.
        from .validation.url import effective_database

        hosts = url[len(_SRV) :].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
        return {
            "style": "url",
            "address": hosts,
            "database": effective_database() or conf.MONGO_DB_NAME,
            "collection": conf.MONGO_SESSIONS_COLLECTION,
        }
    nodes = target.client.topology_description.server_descriptions()
    address = ",".join(f"{host}:{port}" if port else str(host) for host, port in nodes)
    return {
        "style": target.style,
        "address": address,
        "database": target.database_name,
        "collection": target.collection_name,
    }


def ping() -> None:
    """Check that the server answers within the timeout.

    Raises ``SessionStoreUnavailable`` (or another ``SessionStoreError``).
    """
    with mongo_operation("ping"):
        get_target().collection.database.command("ping")


async def aping() -> None:
    """Check that the server answers within the timeout, from async code.

    Raises ``SessionStoreUnavailable`` (or another ``SessionStoreError``).
    """
    with mongo_operation("ping"):
        collection = await aget_collection()
        await collection.database.command("ping")


def reset() -> None:
    """Forget the client and collections, closing only the clients the package created.

    Each event loop's client is closed on its own loop (at once if it is
    running, else when it next runs); a client given in ``MONGO_CLIENT`` is
    never closed.
    """
    global _state
    with _state_lock:
        old, _state = _state, _State()
    old.close()


def _lost_every_server(client: MongoClient[Any] | AsyncMongoClient[Any]) -> bool:
    """Whether ``client``'s topology holds no server at all: it can never select one again."""
    return not client.topology_description.server_descriptions()


def _replace_lost_clients() -> None:
    """Replace the package's own clients once their topology has lost every server.

    Run after an operation found no server. pymongo removes a replica-set
    member that answers ``hello`` as a standalone and never looks for it
    again: with no server left, no operation can ever be sent, even once the
    server answers. mongod never answers so, but a member restarted without
    its ``--replSet`` or a stand-in that answers so while it stops (SecantusDB)
    can. Clients the user gave (``MONGO_CLIENT``, the database alias) are never
    replaced. The old clients are closed one timeout later, once the
    operations in flight on them have ended. Never raises.
    """
    global _state, _last_replacement
    state = _state
    target = state._target
    if target is None or not target.owns_client:
        return
    clients: list[MongoClient[Any] | AsyncMongoClient[Any]] = [target.client]
    loop_clients = state._loop_clients
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        collection = loop_clients.get(0.0) if loop_clients is not None else None
        if collection is not None:
            clients.append(collection.database.client)
    if not any(_lost_every_server(client) for client in clients):
        return
    with _state_lock:
        now = time.monotonic()
        if _state is not state or now - _last_replacement < LOST_CLIENT_INTERVAL:
            return
        _last_replacement = now
        _state = _State()
    logger.warning(
        "mongo_sessions: the MongoDB client lost every server of its deployment "
        "(a member answered as a standalone); a new client replaces it"
    )
    closer = threading.Timer(timeout_seconds(), state.close)
    closer.daemon = True
    closer.start()


no_server_hooks.append(_replace_lost_clients)


def _forget_after_fork() -> None:
    """Start afresh in a forked child: pymongo clients are not fork-safe."""
    global _state, _state_lock
    _state_lock = threading.Lock()
    old, _state = _state, _State()
    old.forget()


os.register_at_fork(after_in_child=_forget_after_fork)


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in CONNECTION_SETTINGS:
        reset()
