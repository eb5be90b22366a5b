"""Load tests and per-operation benchmark of django-mongo-sessions.

``python -m loadtests run``: the demo site under Locust, per session engine.
``python -m loadtests ops``: MongoDB commands and client CPU per session operation,
next to Django's cache and database engines.
"""
