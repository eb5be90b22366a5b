"""Django's database session engine on django-mongodb-backend, for ``ops`` only.

``django.contrib.sessions``' own ``Session`` model serves the database engine on
the default database (PostgreSQL or SQLite); this app gives the same engine a
model of its own (Django's documented way to extend the database engine:
``AbstractBaseSession`` and ``get_model_class()``), which :class:`Router`
sends to the ``mongodb`` database, so that both run in one process. It is
what a MongoDB team gets from Django without mongo_sessions.
"""
