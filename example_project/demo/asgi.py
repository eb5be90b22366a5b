"""ASGI entry point: ``uvicorn demo.asgi:application --app-dir example_project``.

``manage.py rundemo --asgi`` serves the demo this way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(_PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(_PROJECT_DIR))
# Run from a checkout, prefer the checkout's mongo_sessions over an installed copy.
_REPO_ROOT = _PROJECT_DIR.parent
if (_REPO_ROOT / "mongo_sessions" / "__init__.py").is_file() and str(_REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(_REPO_ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
