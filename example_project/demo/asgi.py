"""ASGI entry point: ``uvicorn demo.asgi:application --app-dir example_project``.

``manage.py rundemo --asgi`` serves the demo this way.
"""

from __future__ import annotations

import os

from .paths import setup_path

setup_path()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
