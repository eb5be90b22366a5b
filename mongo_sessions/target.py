"""Where sessions live, resolved from the settings: the client, database and collection names.

``MONGO_SESSIONS_DATABASE_ALIAS`` wins, then ``MONGO_CLIENT``, then
``MONGO_SESSIONS_URL``, then the host settings (see ``resolve_target``). The
resolvers of ``MONGO_CLIENT`` and ``MONGO_SESSIONS_ASYNC_CLIENT`` serve the
connection and ``manage.py check`` alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django.views.decorators.debug import sensitive_variables

from . import driver, validation
from .conf import DEFAULT_CLIENT_OPTIONS, conf

if TYPE_CHECKING:
    from bson.codec_options import CodecOptions
    from pymongo import AsyncMongoClient, MongoClient
    from pymongo.collection import Collection

    AsyncClientFactory: TypeAlias = Callable[[], AsyncMongoClient[dict[str, Any]]]


@functools.cache
def codec_options() -> CodecOptions[dict[str, Any]]:
    """The codec options of the sessions collection, built on first use (not at import).

    Datetimes come back aware and in UTC whatever the client's own codec options.
    """
    return driver.codec_options.CodecOptions(tz_aware=True, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Target:
    """Where sessions live, as resolved from the settings."""

    style: str
    client: MongoClient[dict[str, Any]]
    owns_client: bool
    database_name: str
    collection_name: str
    # Builds a new AsyncMongoClient to the same deployment, for one event loop.
    async_client_factory: AsyncClientFactory

    @property
    def collection(self) -> Collection[dict[str, Any]]:
        return self.client[self.database_name].get_collection(
            self.collection_name, codec_options=codec_options()
        )


class ClientSettingError(ImproperlyConfigured):
    """Raise when MONGO_CLIENT or MONGO_SESSIONS_ASYNC_CLIENT cannot be used.

    ``message`` and ``hint`` are what ``manage.py check`` reports under
    ``check_id``; the exception's text is both, with the id, as every run-time
    settings error of the package words it.
    """

    def __init__(self, message: str, *, hint: str, check_id: str) -> None:
        self.message = message
        self.hint = hint
        self.check_id = check_id
        super().__init__(f"mongo_sessions: {message.rstrip('.')} ({check_id}). {hint}")


def resolve_mongo_client(given: Any) -> tuple[MongoClient[dict[str, Any]], str | None, str]:
    """Return ``(client, database name or None, style)`` for a ``MONGO_CLIENT`` value.

    ``given`` is a ``MongoClient``, a ``Database`` or a dotted path to one
    (imported here). The database name is None for a client (``MONGO_DB_NAME``
    applies). Shared by the connection and ``manage.py check``. Raises
    ``ClientSettingError`` (check ids E001, E002).
    """
    style_suffix = ""
    resolved = given
    if isinstance(given, str):
        hint = (
            "Give the dotted path of a module attribute holding a "
            "pymongo.MongoClient or pymongo.database.Database."
        )
        if "://" in given:
            hint = (
                "MONGO_CLIENT takes a client, a database or a dotted path to one: give a "
                "connection string in MONGO_SESSIONS_URL instead (and remove MONGO_CLIENT)."
            )
        resolved = _imported("MONGO_CLIENT", given, hint=hint, check_id="mongo_sessions.E002")
        style_suffix = "-path"
    if isinstance(resolved, driver.database.Database):
        return resolved.client, resolved.name, "database" + style_suffix
    if isinstance(resolved, driver.pymongo.MongoClient):
        return resolved, None, "client" + style_suffix
    if style_suffix:
        raise ClientSettingError(
            f"MONGO_CLIENT {given!r} points to {validation.a_type(resolved)}, not a "
            "pymongo.MongoClient or pymongo.database.Database.",
            hint="Point MONGO_CLIENT at the client or database object itself.",
            check_id="mongo_sessions.E002",
        )
    raise ClientSettingError(
        f"MONGO_CLIENT is {validation.a_type(given)}.",
        hint="Use a pymongo.MongoClient, a pymongo.database.Database, or a dotted path to one "
        "of them (for the async methods, set MONGO_SESSIONS_ASYNC_CLIENT as well).",
        check_id="mongo_sessions.E001",
    )


def resolve_async_client_factory(given: Any) -> AsyncClientFactory | None:
    """Return the callable a ``MONGO_SESSIONS_ASYNC_CLIENT`` value names, or None if unset.

    ``given`` is a callable taking no argument or a dotted path to one.
    Raises ``ClientSettingError`` (check id E020).
    """
    if given is None:
        return None
    resolved = given
    if isinstance(given, str):
        resolved = _imported(
            "MONGO_SESSIONS_ASYNC_CLIENT",
            given,
            hint="Give the dotted path of a function that returns a new pymongo.AsyncMongoClient.",
            check_id="mongo_sessions.E020",
        )
    if not callable(resolved) or isinstance(resolved, driver.pymongo.AsyncMongoClient):
        raise ClientSettingError(
            "MONGO_SESSIONS_ASYNC_CLIENT must be a function (or its dotted path), not "
            f"{type(resolved).__name__}.",
            hint="Give a function (or its dotted path) that returns a new "
            "pymongo.AsyncMongoClient: an AsyncMongoClient serves one event loop only, "
            "so the package builds one per loop.",
            check_id="mongo_sessions.E020",
        )
    factory: AsyncClientFactory = resolved
    return factory


def _imported(setting: str, given: str, *, hint: str, check_id: str) -> Any:
    """Import the object the dotted path ``given`` of ``setting`` names.

    Raises ``ClientSettingError`` (``check_id``, with ``hint``) if it cannot be imported.
    """
    try:
        driver.import_all()  # the user's module may import a pymongo submodule first
        return import_string(given)
    except ImportError as e:
        raise ClientSettingError(
            f"{setting} {given!r} cannot be imported: {e}", hint=hint, check_id=check_id
        ) from e


@sensitive_variables()
def resolve_target() -> Target:
    """Build the target from the settings, following the documented precedence.

    ``MONGO_SESSIONS_DATABASE_ALIAS`` wins, then ``MONGO_CLIENT``, then
    ``MONGO_SESSIONS_URL``, then the host settings.
    No network I/O: the clients the package creates connect on first use (so a
    ``mongodb+srv://`` name is looked up then). Raises ``ImproperlyConfigured``
    naming the setting at fault, without any password.
    """
    validation.validate_connection_settings()
    collection_name = conf.MONGO_SESSIONS_COLLECTION
    alias_name = conf.MONGO_SESSIONS_DATABASE_ALIAS
    if alias_name is not None:
        target = _alias_target(alias_name, collection_name)
        setting = "MONGO_SESSIONS_DATABASE_ALIAS"
    elif conf.MONGO_CLIENT is not None:
        target = _given_client_target(collection_name)
        setting = "MONGO_CLIENT"
    else:
        target = _own_client_target(collection_name)
        setting = validation.own_client_setting()
    try:
        # Before any write: with w=0 a save cannot know whether it matched (E019).
        validation.require_acknowledged_writes(target.client, setting)
    except ImproperlyConfigured:
        if target.owns_client:
            target.client.close()
        raise
    return target


def _alias_target(alias_name: str, collection_name: str) -> Target:
    """The target of ``MONGO_SESSIONS_DATABASE_ALIAS`` (``alias_name``)."""
    # A DATABASES entry of django-mongodb-backend (see database_alias.py); wins.
    from .database_alias import STYLE, resolve

    alias = resolve(alias_name)
    async_kwargs = alias.async_client_kwargs
    return Target(
        style=STYLE,
        client=alias.client,
        owns_client=False,  # django-mongodb-backend's: never closed here
        database_name=alias.database_name,
        collection_name=collection_name,
        async_client_factory=lambda: driver.pymongo.AsyncMongoClient(**async_kwargs),
    )


def _given_client_target(collection_name: str) -> Target:
    """The target of ``MONGO_CLIENT`` (with ``MONGO_SESSIONS_ASYNC_CLIENT``)."""
    client, database_name, style = resolve_mongo_client(conf.MONGO_CLIENT)
    return Target(
        style=style,
        client=client,
        owns_client=False,
        database_name=database_name or conf.MONGO_DB_NAME,
        collection_name=collection_name,
        async_client_factory=_user_async_factory(conf.MONGO_SESSIONS_ASYNC_CLIENT),
    )


@sensitive_variables()
def _own_client_target(collection_name: str) -> Target:
    """The target of ``MONGO_SESSIONS_URL``, else of the host settings: clients of the package's."""
    extra = conf.MONGO_SESSIONS_CLIENT_OPTIONS
    url = conf.MONGO_SESSIONS_URL
    setting, secret, arguments = _client_arguments(url)
    # The package's defaults give way to the URL's own options, and both to
    # MONGO_SESSIONS_CLIENT_OPTIONS (pymongo lets keyword arguments win over the
    # URL). connect=False whatever they say: no I/O (DNS included) before first use.
    in_url = _url_option_names(url) if url else set()
    defaults = {k: v for k, v in DEFAULT_CLIENT_OPTIONS.items() if k.lower() not in in_url}
    base = {**defaults, **arguments, "connect": False}
    options = {**defaults, **(extra if isinstance(extra, dict) else {}), **arguments}
    options["connect"] = False
    client = _new_client(driver.pymongo.MongoClient, base, options, setting, secret)
    if url:
        database_name = client.get_default_database(default=conf.MONGO_DB_NAME).name
    else:
        database_name = conf.MONGO_DB_NAME
    return Target(
        style="url" if url else "host",
        client=client,
        owns_client=True,
        database_name=database_name,
        collection_name=collection_name,
        async_client_factory=lambda: _new_client(
            driver.pymongo.AsyncMongoClient, base, options, setting, secret
        ),
    )


@sensitive_variables()
def _client_arguments(url: str | None) -> tuple[str, str | None, dict[str, Any]]:
    """Return ``(setting, password, client arguments)`` for the URL, else the host settings.

    ``setting`` is what an error names; the password is what it must never show.
    """
    if url:
        return "MONGO_SESSIONS_URL", _url_password(url), {"host": url}
    setting, secret = "MONGO_HOST/MONGO_PORT", None
    arguments: dict[str, Any] = {"host": conf.MONGO_HOST, "port": conf.MONGO_PORT}
    if conf.MONGO_DB_USER and conf.MONGO_DB_PASSWORD:
        # As the package this replaces did: the user is defined in MONGO_DB_NAME.
        setting = "MONGO_HOST/MONGO_PORT/MONGO_DB_USER/MONGO_DB_PASSWORD"
        secret = str(conf.MONGO_DB_PASSWORD)
        arguments.update(
            username=conf.MONGO_DB_USER,
            password=conf.MONGO_DB_PASSWORD,
            authSource=conf.MONGO_DB_NAME,
        )
    return setting, secret, arguments


@sensitive_variables()
def _new_client(
    client_class: type[Any],
    base: dict[str, Any],
    options: dict[str, Any],
    setting: str,
    secret: str | None,
) -> Any:
    """Build a client from ``options``; a driver refusal becomes ImproperlyConfigured.

    ``base`` is ``options`` without MONGO_SESSIONS_CLIENT_OPTIONS: if it builds,
    those options are at fault, else ``setting`` is. ``secret`` never reaches
    the message, nor the chained error when its text holds it.
    """
    try:
        return client_class(**options)
    except (driver.errors.PyMongoError, TypeError, ValueError) as e:
        error = e
    if options != base:
        try:
            driver.pymongo.MongoClient(**base).close()
        except (driver.errors.PyMongoError, TypeError, ValueError):
            pass
        else:
            setting = "MONGO_SESSIONS_CLIENT_OPTIONS"
    detail = f"{type(error).__name__}: {error}"
    leaks = bool(secret) and secret is not None and secret in detail
    if secret:
        detail = detail.replace(secret, "<password>")
    raise ImproperlyConfigured(f"{setting} cannot be used: {detail}") from (
        None if leaks else error
    )


def _url_option_names(url: str) -> set[str]:
    """Return the names of the options in a MongoDB URL's query string, in lower case."""
    _, _, query = url.partition("?")
    return {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}


def _url_password(url: str) -> str | None:
    """Return the password in a MongoDB URL's user information, as written, if any."""
    _, _, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1] or None


def _user_async_factory(given: Any) -> AsyncClientFactory:
    """Return the user's factory of async clients, or one that says it is missing."""
    factory = resolve_async_client_factory(given)
    if factory is None:

        def missing() -> AsyncMongoClient[dict[str, Any]]:
            raise ImproperlyConfigured(
                "mongo_sessions: MONGO_CLIENT is set, so the async session methods need "
                "MONGO_SESSIONS_ASYNC_CLIENT: a function returning a new AsyncMongoClient with "
                "the options of your MongoClient (pymongo has no public way to copy them)."
            )

        return missing
    user_factory = factory

    def checked() -> AsyncMongoClient[dict[str, Any]]:
        client = user_factory()
        if not isinstance(client, driver.pymongo.AsyncMongoClient):
            raise ClientSettingError(
                f"MONGO_SESSIONS_ASYNC_CLIENT returned {validation.a_type(client)}, not a new "
                "pymongo.AsyncMongoClient.",
                hint="Give a function (or its dotted path) that returns a new "
                "pymongo.AsyncMongoClient.",
                check_id="mongo_sessions.E020",
            )
        # Before any write, as for the sync client (E019).
        validation.require_acknowledged_writes(client, "MONGO_SESSIONS_ASYNC_CLIENT")
        return client

    return checked
