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
from typing import Any

import pymongo
from pymongo.errors import PyMongoError

START_TIMEOUT = 30.0
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    # Further launcher flags, e.g. ["--sync-on-commit"].
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> ServerProcess:
        self.storage_path.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "tests.secantus_launcher",
            "--port", str(self.port),
            "--storage-path", str(self.storage_path),
            "--ttl-sweep-seconds", str(self.ttl_sweep_seconds),
        ]  # fmt: skip
        if self.auth:
            command.append("--auth")
        if self.test_commands:
            command.append("--enable-test-commands")
        if self.tls_cert_file and self.tls_key_file:
            command += ["--tls-cert-file", self.tls_cert_file, "--tls-key-file", self.tls_key_file]
        command += self.extra_args
        # A file, not a pipe: nobody reads the pipe while the tests run, and a full
        # pipe would block the server.
        self.log_path = self.storage_path.parent / f"secantusd-{self.port}.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_listening()
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                err = self.log_path.read_text(errors="replace")[-2000:]
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


def provision_user(storage_path: Path, database: str, username: str, password: str) -> None:
    """Create a readWrite user of ``database`` in a server's data, with auth off.

    As SecantusDB (and mongod) want it: connect once without auth, createUser in
    the database that will be the authSource, then restart the server with --auth.
    """
    server = ServerProcess(storage_path=storage_path, test_commands=False).start()
    try:
        wait_for_ping(server.url)
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            server.url, serverSelectionTimeoutMS=5000
        )
        with client:
            client[database].command(
                "createUser", username, pwd=password, roles=[{"role": "readWrite", "db": database}]
            )
    finally:
        server.stop()


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway certificate authority and a server certificate it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls_files(directory: Path, name: str) -> TlsFiles:
    """Make a CA and a certificate for 127.0.0.1/localhost with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("the openssl command is needed to make test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_file = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    key_file, csr = directory / f"{name}-server.key", directory / f"{name}-server.csr"
    cert_file, ext = directory / f"{name}-server.pem", directory / f"{name}-ext.cnf"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n"
    )

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", str(ca_key), "-out", str(ca_file), "-subj", f"/CN={name} test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key_file),
        "-out", str(csr), "-subj", "/CN=127.0.0.1")  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_file), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert_file), "-days", "2",
        "-extfile", str(ext))  # fmt: skip
    return TlsFiles(ca_file=ca_file, cert_file=cert_file, key_file=key_file)


# --- The demo site (example_project) as a subprocess, and an HTTP client for it ---

DEMO_MANAGE_PY = REPO_ROOT / "example_project" / "manage.py"


def demo_env(**extra: str) -> dict[str, str]:
    """Environment of a demo subprocess: the demo's settings, not the suite's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MONGO_SESSIONS_", "MONGO_DB_", "DEMO_", "DJANGO_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class DemoProcess:
    """``manage.py rundemo`` against a given MongoDB URL: only gunicorn is started."""

    mongo_url: str
    data_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> DemoProcess:
        env = demo_env(MONGO_SESSIONS_URL=self.mongo_url, **self.env)
        command = [
            sys.executable, str(DEMO_MANAGE_PY), "rundemo",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers), "--data-dir", str(self.data_dir),
            "--access-log",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"rundemo exited with {self.process.returncode}: {self.log_text()[-3000:]}"
                )
            if "Demo running at" in self.log_text():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rundemo did not start in {timeout} s: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM rundemo, which stops gunicorn by its pid; SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    elapsed: float

    def json(self) -> object:
        import json

        return json.loads(self.body)

    def cookie(self, name: str) -> str | None:
        """The value a Set-Cookie header of the response gives ``name``, if any."""
        from http.cookies import SimpleCookie

        for header, value in self.headers:
            if header.lower() == "set-cookie":
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                if name in jar:
                    return jar[name].value
        return None


@dataclass
class HttpClient:
    """A minimal browser: a cookie jar, CSRF header on POST, JSON accepted, no redirects."""

    port: int
    timeout: float = 15.0
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        cookie_header: bytes | None = None,
    ) -> HttpResponse:
        """Send one request; ``cookie_header`` replaces the jar's Cookie header verbatim."""
        import http.client
        from urllib.parse import urlencode

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        started = time.monotonic()
        try:
            conn.putrequest(method, path)
            conn.putheader("Accept", "application/json")
            if cookie_header is not None:
                conn.putheader("Cookie", cookie_header)
            elif self.cookies:
                conn.putheader("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
            body = b""
            if method == "POST":
                body = urlencode(form or {}).encode()
                conn.putheader("Content-Type", "application/x-www-form-urlencoded")
                if "csrftoken" in self.cookies:
                    conn.putheader("X-CSRFToken", self.cookies["csrftoken"])
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            raw = conn.getresponse()
            response = HttpResponse(
                status=raw.status,
                headers=list(raw.getheaders()),
                body=raw.read(),
                elapsed=time.monotonic() - started,
            )
        finally:
            conn.close()
        for name in ("sessionid", "csrftoken"):
            value = response.cookie(name)
            if value is not None:
                if value:
                    self.cookies[name] = value
                else:
                    self.cookies.pop(name, None)
        return response
