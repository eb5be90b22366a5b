"""``secantusd-py``, stopped without its moment of standalone ``hello`` replies.

SecantusDB's ``stop()`` forgets its listening socket before it closes the
client connections; a ``hello`` answered in between lacks ``setName`` and
``hosts`` (the address is unknown then), so a driver that polls its servers
(the package's clients do, every 500 ms) takes the member for a standalone,
removes it from the replica set and never finds it again. mongod never answers
so: at shutdown it closes connections or replies ShutdownInProgress.

Run by path (``python .../secantusd.py FLAGS``, the flags of ``secantusd-py``):
it imports nothing but SecantusDB, so it works from any directory. The
harness starts SecantusDB this way when this Python has it installed.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from pathlib import Path
from typing import Any

# Run by path, Python puts this folder first on the path: its modules (base,
# process, servers) must not shadow any that SecantusDB imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

from secantus import cli  # noqa: E402
from secantus.server import SecantusDBServer  # noqa: E402


def stop_without_a_standalone_window(server: Any) -> None:
    """Close ``server``'s client connections while it still knows its address, then stop it.

    ``server`` is a started ``SecantusDBServer``. The accept loop ends first,
    so no connection is accepted between the two steps.
    """
    server._stop_event.set()
    if server._socket is not None:
        with contextlib.suppress(OSError):
            server._socket.shutdown(socket.SHUT_RDWR)  # ends the accept loop
    server.connections.close_all()


def main() -> int:
    """Run ``secantusd-py`` with its stop made as :func:`stop_without_a_standalone_window` says."""
    original_stop = SecantusDBServer.stop

    def stop(server: SecantusDBServer) -> None:
        stop_without_a_standalone_window(server)
        original_stop(server)

    SecantusDBServer.stop = stop  # type: ignore[method-assign]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
