"""Run a SecantusDB server in its own process with options its CLI does not expose.

``secantusd-py`` has no flag for the TTL monitor's period (60 s, as mongod);
the tests want it short so that removal by the monitor is seen in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import threading

from secantus import SecantusDBServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--storage-path", required=True)
    parser.add_argument("--ttl-sweep-seconds", type=float, default=1.0)
    parser.add_argument("--auth", action="store_true")
    parser.add_argument("--enable-test-commands", action="store_true")
    parser.add_argument("--sync-on-commit", action="store_true")
    parser.add_argument("--tls-cert-file")
    parser.add_argument("--tls-key-file")
    args = parser.parse_args()
    server = SecantusDBServer(
        host="127.0.0.1",
        port=args.port,
        storage_path=args.storage_path,
        require_auth=args.auth,
        enable_test_commands=args.enable_test_commands,
        ttl_sweep_seconds=args.ttl_sweep_seconds,
        sync_on_commit=args.sync_on_commit,
        tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_key_file,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    stop.wait()
    stop_without_a_standalone_window(server)


def stop_without_a_standalone_window(server: SecantusDBServer) -> None:
    """Stop ``server``, closing its client connections while it still knows its address.

    SecantusDB's ``stop()`` forgets its listening socket before it closes the
    client connections; a ``hello`` answered in between lacks ``setName`` and
    ``hosts`` (the address is unknown then), so a driver that polls its
    servers (the package's clients do, every 500 ms) takes the member for a
    standalone, removes it from the replica set and never finds it again.
    mongod never answers so: at shutdown it closes connections or replies
    ShutdownInProgress. Stop accepting and close the connections first.
    """
    server._stop_event.set()
    if server._socket is not None:
        with contextlib.suppress(OSError):
            server._socket.shutdown(socket.SHUT_RDWR)  # ends the accept loop
    server.connections.close_all()
    server.stop()


if __name__ == "__main__":
    main()
