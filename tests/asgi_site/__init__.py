"""A small async Django site, served by uvicorn in tests/test_asgi.py."""
