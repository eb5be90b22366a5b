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
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from .conf import CONNECTION_SETTINGS, conf
from .indexes import AutoIndex
from .loops import LoopClients
from .operation import mongo_operation, no_server_hooks, operation_deadline
from .target import Target, codec_options, resolve_target
from .validation import timeout_seconds

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient, MongoClient
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.collection import Collection

logger = logging.getLogger("mongo_sessions")

# Event loops with no session operation in flight whose async client is kept
# (an ASGI server has one loop; a loop ended by asyncio.run or async_to_sync
# closes its client itself). Beyond this, the least recently used is closed.
IDLE_LOOP_CLIENTS = 4


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
                            target.collection_name, codec_options=codec_options()
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


def stop_auto_index(timeout: float) -> bool:
    """Stop automatic index creation on the current target, waiting up to ``timeout`` seconds.

    Return whether no attempt is still running. For code about to drop the
    sessions collection (``mongo_sessions.testing``): an attempt that ends after
    the drop would create the collection again. A setting change or
    ``reset()`` starts a fresh, active one.
    """
    return _state.auto_index.stop(timeout)


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


def ping(operation: str = "ping") -> None:
    """Check that the server answers within ``MONGO_SESSIONS_TIMEOUT`` seconds.

    ``operation`` is the name the error gives: work that reaches the server
    first (``clear_expired``, ``mongo_sessions_setup``) passes its own. Raises
    ``SessionStoreUnavailable`` (or another ``SessionStoreError``).
    """
    with mongo_operation(operation):
        get_target().collection.database.command("ping")


async def aping(operation: str = "ping") -> None:
    """Check that the server answers within the timeout, from async code (see ``ping``).

    Raises ``SessionStoreUnavailable`` (or another ``SessionStoreError``).
    """
    with mongo_operation(operation):
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
