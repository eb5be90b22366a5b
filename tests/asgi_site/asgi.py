"""ASGI entry point of the test site: ``uvicorn tests.asgi_site.asgi:application``."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.asgi_site.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
