"""Start and stop MongoDB-wire test servers (SecantusDB) as processes on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymongo
from pymongo.errors import PyMongoError

START_TIMEOUT = 30.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def secantusd_executable() -> str:
    candidate = Path(sys.executable).with_name("secantusd-py")
    return str(candidate) if candidate.exists() else "secantusd-py"


@dataclass
class ServerProcess:
    """A SecantusDB server running as a child process."""

    storage_path: Path
    port: int = field(default_factory=free_port)
    auth: bool = False
    test_commands: bool = True
    ttl_sweep_seconds: float = 1.0
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> ServerProcess:
        self.storage_path.mkdir(parents=True, exist_ok=True)
        config = self.storage_path.parent / f"secantusd-{self.port}.toml"
        config.write_text(f"[storage]\nttl_sweep_seconds = {self.ttl_sweep_seconds}\n")
        command = [
            secantusd_executable(),
            "--config", str(config),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--storage-path", str(self.storage_path),
            "--log-level", "WARNING",
        ]  # fmt: skip
        if self.auth:
            command.append("--auth")
        if self.test_commands:
            command.append("--enable-test-commands")
        if self.tls_cert_file and self.tls_key_file:
            command += ["--tls-cert-file", self.tls_cert_file, "--tls-key-file", self.tls_key_file]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_until_listening()
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"secantusd-py exited with {self.process.returncode}: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"secantusd-py did not listen on port {self.port} in {START_TIMEOUT}s")

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_for_ping(url: str, timeout: float = START_TIMEOUT, **client_options: object) -> None:
    """Wait until the server at ``url`` answers a ping."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=1000, **client_options
        )
        try:
            client.admin.command("ping")
            return
        except PyMongoError as e:
            last_error = e
            time.sleep(0.2)
        finally:
            client.close()
    raise RuntimeError(f"no ping answer from {url}: {last_error}")


def temporary_storage() -> Path:
    return Path(tempfile.mkdtemp(prefix="mongo-sessions-test-"))


def remove_storage(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
