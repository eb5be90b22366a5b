"""The package's AsyncMongoClients: one per event loop in use, closed when the loop ends.

An ``AsyncMongoClient`` is bound to the event loop it first runs on, so async
code needs one client per loop. A process may run any number of loops one after
the other (Django runs each async view served over WSGI in a loop of its own,
``asyncio.run`` makes a loop per call), so a client must not outlive its loop:

* When a loop shuts down through ``asyncio.run``, ``asyncio.Runner`` or
  asgiref's ``async_to_sync`` (all call ``loop.shutdown_asyncgens()`` before
  ``loop.close()``), an async generator first iterated on that loop is closed
  while the loop still runs: its ``finally`` closes the loop's client there.
* A loop closed without that step is found closed by the next sweep (run
  whenever a client is created) and its entry is dropped, so that the loop and
  its client can be garbage-collected.
* Loops that stay alive but idle are capped: beyond ``idle_limit`` of them, the
  least recently used client is closed on its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from time import monotonic
from typing import TYPE_CHECKING, Any, TypeAlias

from . import driver

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient
    from pymongo.asynchronous.collection import AsyncCollection

    _Client: TypeAlias = AsyncMongoClient[dict[str, Any]]
    _Collection: TypeAlias = AsyncCollection[dict[str, Any]]

# endSessions (sent by close()) waits for the server at most this long, in
# seconds: a loop's shutdown, often still inside a request, must not wait a
# whole timeout on a server that stopped answering. Sessions not ended expire
# on the server by themselves (after 30 minutes).
CLOSE_TIMEOUT = 0.5


@dataclass(eq=False)
class _Entry:
    """One loop's client, and what closes it with the loop."""

    loop: asyncio.AbstractEventLoop
    client: AsyncMongoClient[dict[str, Any]]
    collection: AsyncCollection[dict[str, Any]]
    owned: bool
    # time.monotonic() until which an operation may still be using the client.
    busy_until: float = 0.0
    closer: AsyncGenerator[None, None] | None = None
    released: bool = False
    closing_tasks: set[asyncio.Future[Any]] = field(default_factory=set)


class LoopClients:
    """Hand out one AsyncMongoClient per running event loop and close each with its loop.

    ``factory`` builds a new client (no argument) and ``collection_of`` the
    sessions collection of a client; ``owned`` says whether the clients are
    the package's to close. ``idle_limit`` is how many clients of loops with no
    operation in flight are kept; a loop with an operation in flight keeps its
    client.
    """

    def __init__(
        self,
        factory: Callable[[], AsyncMongoClient[dict[str, Any]]],
        *,
        collection_of: Callable[[_Client], _Collection],
        idle_limit: int,
        owned: bool = True,
    ) -> None:
        self._factory = factory
        self._collection_of = collection_of
        self._idle_limit = idle_limit
        self._owned = owned
        self._lock = threading.Lock()
        # By id(loop), least recently used first. The entry holds the loop itself:
        # its client does too, and a closed loop's entry is dropped by _sweep().
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._retired: list[_Entry] = []
        self._closed = False

    def __len__(self) -> int:
        """Return how many clients are held (in use, idle, or being closed)."""
        with self._lock:
            return len(self._entries) + len(self._retired)

    def get(self, busy_until: float) -> AsyncCollection[dict[str, Any]] | None:
        """Return the sessions collection of the running loop's client, or None if none yet.

        ``busy_until`` (``time.monotonic()`` seconds) is when the calling
        operation ends at the latest; the client is not closed for idleness
        before then.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._entries.get(id(loop))
            if entry is None or entry.loop is not loop:
                return None
            self._entries.move_to_end(id(loop))
            entry.busy_until = max(entry.busy_until, busy_until)
            return entry.collection

    async def create(self, busy_until: float) -> AsyncCollection[dict[str, Any]]:
        """Return the running loop's collection, creating its client (and closer) if needed."""
        collection = self.get(busy_until)
        if collection is not None:
            return collection
        loop = asyncio.get_running_loop()
        self._sweep()
        client = self._factory()
        entry = _Entry(
            loop=loop,
            client=client,
            collection=self._collection_of(client),
            owned=self._owned,
            busy_until=busy_until,
        )
        with self._lock:
            if self._closed:
                # Replaced meanwhile (reset(), a settings change): serve this
                # operation, and close the client with its loop as usual.
                self._retired.append(entry)
                evicted = []
            else:
                # No await since get(): no other task of this loop added an entry.
                evicted = self._evict_idle()
                self._entries[id(loop)] = entry
        closer = self._close_with_loop(entry)
        entry.closer = closer
        # The first iteration registers the generator with the loop (its
        # firstiter hook), so loop.shutdown_asyncgens() closes it. It runs to the
        # yield at once.
        await closer.__anext__()
        for old in evicted:
            self._close_on_own_loop(old)
        return entry.collection

    def close(self) -> None:
        """Close every client, each on its own loop; for reset(), a settings change."""
        with self._lock:
            self._closed = True
            entries = list(self._entries.values())
            self._entries.clear()
            self._retired.extend(entries)
        for entry in entries:
            self._close_on_own_loop(entry)

    def forget(self) -> None:
        """Drop every client without any I/O: for a forked child, where the loops do not run."""
        with self._lock:
            self._closed = True
            entries = [*self._entries.values(), *self._retired]
        for entry in entries:
            self._drop(entry)

    # Closing.

    async def _close_with_loop(self, entry: _Entry) -> AsyncGenerator[None, None]:
        """Yield once; close the entry's client when the loop closes this generator."""
        try:
            yield
        finally:
            if not entry.released:  # else: dropped by _drop(), where no I/O can run
                await self._release(entry)

    async def _release(self, entry: _Entry) -> None:
        """Forget the entry and close its client, on its own (running) loop."""
        with self._lock:
            if entry.released:
                return
            entry.released = True
            if self._entries.get(id(entry.loop)) is entry:
                del self._entries[id(entry.loop)]
        try:
            if entry.owned:
                with driver.pymongo.timeout(CLOSE_TIMEOUT):
                    await entry.client.close()
        finally:
            with self._lock:
                if entry in self._retired:
                    self._retired.remove(entry)

    def _close_on_own_loop(self, entry: _Entry) -> None:
        """Close the entry's client on its loop: now if running, when it next runs, or never."""
        loop = entry.loop
        if loop.is_closed():
            self._drop(entry)
            return

        async def close_there() -> None:
            try:
                if entry.closer is not None:
                    await entry.closer.aclose()  # its finally releases the entry
            except RuntimeError:  # the loop's own shutdown is closing it right now
                pass
            await self._release(entry)

        def schedule() -> None:
            task = loop.create_task(close_there())
            entry.closing_tasks.add(task)  # keep it referenced until done
            task.add_done_callback(entry.closing_tasks.discard)

        try:
            loop.call_soon_threadsafe(schedule)
        except RuntimeError:  # closed in the meantime
            self._drop(entry)

    def _drop(self, entry: _Entry) -> None:
        """Forget an entry without I/O: its loop is closed, or this is a forked child.

        The closer generator is finished here, synchronously (its ``finally``
        sees the entry released and awaits nothing), so that the garbage
        collector does not ask a closed loop to finish it. The client's sockets
        are closed when the collector frees their transports.
        """
        with self._lock:
            entry.released = True
            if self._entries.get(id(entry.loop)) is entry:
                del self._entries[id(entry.loop)]
            if entry in self._retired:
                self._retired.remove(entry)
        closer, entry.closer = entry.closer, None
        if closer is not None:
            finishing = closer.aclose()
            with contextlib.suppress(StopIteration):
                finishing.send(None)

    def _sweep(self) -> None:
        """Drop the entries of loops that were closed without shutting down their generators."""
        with self._lock:
            closed = [e for e in (*self._entries.values(), *self._retired) if e.loop.is_closed()]
        for entry in closed:
            self._drop(entry)

    def _evict_idle(self) -> list[_Entry]:
        """Retire the least recently used idle entries beyond the limit (lock held).

        Called before the new entry is added: a new client is never evicted.
        """
        now = monotonic()
        idle = [e for e in self._entries.values() if e.busy_until < now]
        evicted = idle[: max(0, len(idle) - self._idle_limit)]
        for entry in evicted:
            del self._entries[id(entry.loop)]
            self._retired.append(entry)
        return evicted
