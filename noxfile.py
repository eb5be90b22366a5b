"""The project's checks, as CI runs them: ``nox`` runs them all, ``nox -s NAME`` one.

Sessions (``nox --list``):

* ``lint``: ``ruff check``, ``ruff format --check`` and ``mypy --strict mongo_sessions``.
* ``package``: builds the sdist and the wheel with the oldest setuptools that
  ``[build-system]`` allows, without build isolation, checks them with
  ``twine check --strict`` and lists the sdist (it must hold no tests).
* ``readme``: the test command exactly as README.rst writes it, with the default
  Python and Django: the whole suite, slow end-to-end tests included.
* ``matrix``: the suite without its slow tests on the other supported
  combinations (``matrix(3.10)``, ``matrix(3.12)``, ``matrix(3.13)``).

Python versions missing from ``PATH`` are looked up in pyenv's versions folder.
"""

from __future__ import annotations

import os
import re
import shlex
import tarfile
import zipfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
# The oldest setuptools that [build-system] allows: the package session builds with it.
OLDEST_SETUPTOOLS = re.findall(
    r'^requires = \["setuptools>=([\d.]+)"\]$', (ROOT / "pyproject.toml").read_text(), re.M
)[0]
# The one place the version is written.
VERSION = re.findall(
    r'^__version__ = "(.+)"$', (ROOT / "mongo_sessions" / "__init__.py").read_text(), re.M
)[0]
# Python, Django and extra pins of each matrix entry; the README's command
# covers the default Python with the newest Django it supports.
MATRIX = [
    ("3.10", "django~=4.2.0", ""),
    ("3.12", "django~=6.0.0", "pymongo~=4.9.0"),  # with the oldest supported pymongo
    # with django-mongodb-backend for the MONGO_SESSIONS_DATABASE_ALIAS tests
    # (tests/test_database_alias.py, the demo's database-alias style)
    ("3.13", "django~=6.1.0", "django-mongodb-backend~=6.1.0"),
]

nox.options.sessions = ["lint", "package", "readme", "matrix"]
nox.options.reuse_venv = "no"


def _find_pyenv_pythons() -> None:
    """Put pyenv's interpreters on PATH, newest patch release first, after what is there."""
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = [p for p in versions.glob("3.*/bin") if re.fullmatch(r"3\.\d+\.\d+", p.parent.name)]
    found.sort(key=lambda p: tuple(int(n) for n in p.parent.name.split(".")), reverse=True)
    # Before pyenv's shims, which refuse versions that are not selected globally.
    os.environ["PATH"] = os.pathsep.join([*map(str, found), os.environ.get("PATH", "")])


_find_pyenv_pythons()


def readme_test_command() -> str:
    """Return the test command as README.rst writes it (every copy must agree)."""
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    commands = set(
        re.findall(r"^\s+\$ (python -m pip install -e \"\.\[test\]\" && .+)$", text, re.M)
    )
    if len(commands) != 1:
        raise ValueError(f"README.rst must give one test command, found {sorted(commands)}")
    return commands.pop()


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) and mypy --strict on the package."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "--strict", "mongo_sessions")


@nox.session
def package(session: nox.Session) -> None:
    """Build with the oldest allowed setuptools (no isolation); twine check; list the sdist."""
    session.install(f"setuptools=={OLDEST_SETUPTOOLS}", "build", "twine")
    out = Path(session.create_tmp()) / "dist"
    session.run("python", "-m", "build", "--no-isolation", "--outdir", str(out), ".")
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        session.error(f"expected one sdist and one wheel in {out}")
    session.run("twine", "check", "--strict", str(sdists[0]), str(wheels[0]))
    with tarfile.open(sdists[0]) as sdist:
        members = sorted(m.name.split("/", 1)[1] for m in sdist.getmembers() if m.isfile())
    session.log("sdist contents:\n  " + "\n  ".join(members))
    strays = [m for m in members if m.split("/")[0] in {"tests", "example_project", "loadtests"}]
    if strays:
        session.error(f"the sdist ships files it cannot use: {strays}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        headers = wheel.read(metadata).decode()
    for header in ("License-Expression: Apache-2.0", f"Version: {VERSION}"):
        if header not in headers.splitlines():
            session.error(f"the wheel's METADATA lacks {header!r}")


@nox.session
def readme(session: nox.Session) -> None:
    """The README's test command, word for word: install the test extra, run the whole suite."""
    command = readme_test_command()
    session.log(f"README.rst: {command}")
    session.run("bash", "-c", command, external=True)


@nox.session
@nox.parametrize(("python", "django", "pins"), MATRIX, ids=[entry[0] for entry in MATRIX])
def matrix(session: nox.Session, django: str, pins: str) -> None:
    """The suite without its slow tests on one Python and Django of the supported matrix."""
    session.install("-e", ".[test]", django, *shlex.split(pins))
    session.run("python", "-m", "pytest", "-m", "not slow", *session.posargs)
