"""Where the demo's processes import from: ``example_project/`` and, in a checkout, its package.

``manage.py``, ``asgi.py`` and ``wsgi.py`` call :func:`setup_path` before they
import Django. This module needs nothing on ``sys.path`` itself: the entry
points import it relatively (``from .paths import setup_path``), whatever name
the ``demo`` package was imported under, and ``manage.py``, a script beside
``demo/``, puts ``example_project/`` on ``sys.path`` first, as it must to find
``demo`` at all. gunicorn (``--chdir example_project``) and uvicorn
(``--app-dir example_project``) start the entry points with ``example_project/``
already there; the checkout's package is what they need from here.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def setup_path() -> None:
    """Put ``example_project/`` first on ``sys.path``; run from a checkout, put the
    checkout's ``mongo_sessions`` ahead of an installed copy."""
    if str(PROJECT_DIR) not in sys.path:
        sys.path.insert(0, str(PROJECT_DIR))
    repo_root = PROJECT_DIR.parent
    if (repo_root / "mongo_sessions" / "__init__.py").is_file() and str(repo_root) not in sys.path:
        sys.path.insert(1, str(repo_root))
