"""Run a SecantusDB server in its own process with options its CLI does not expose.

``secantusd-py`` has no flag for the TTL monitor's period (60 s, as mongod);
the tests want it short so that removal by the monitor is seen in seconds.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from secantus import SecantusDBServer

# The demo's harness (example_project/demo) is not on this child's path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "example_project"))
from demo.harness.secantusd import stop_without_a_standalone_window


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
    # Without the moment of standalone hello replies (see demo/harness/secantusd.py).
    stop_without_a_standalone_window(server)
    server.stop()


if __name__ == "__main__":
    main()
