"""WSGI entry point: ``gunicorn demo.wsgi --chdir example_project``."""

from __future__ import annotations

import os

from .paths import setup_path

setup_path()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
