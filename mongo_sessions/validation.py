"""Validation of the mongo_sessions settings, shared by the system checks and the connection.

``settings_problems()`` lists everything wrong, each under a stable check id;
``checks.py`` reports them all. At run time ``validate_connection_settings()``
(called before the client is built), ``timeout_seconds()`` and ``ttl_seconds()``
raise ``ImproperlyConfigured`` for a value that cannot work, naming the setting
and its check id. No message holds a password: text that comes from pymongo
goes through ``passwords.scrub_text``. Nothing here does network I/O (a
``mongodb+srv://`` URL is validated without its DNS lookup).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signing import JSONSerializer
from django.utils.module_loading import import_string
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.uri_parser import parse_uri

from .conf import DEFAULT_CLIENT_OPTIONS, conf
from .passwords import configured_passwords, scrub_text

SRV_SCHEME = "mongodb+srv://"
SCHEMES = ("mongodb://", SRV_SCHEME)
# MongoDB's rules for database names (on Linux and macOS servers; Windows also
# forbids *<>:|?), in bytes of UTF-8.
INVALID_DB_NAME_CHARS = frozenset('/\\. "$\x00')
MAX_DB_NAME_BYTES = 63
# MongoDB 4.4+: "database.collection" is at most 255 bytes.
MAX_NAMESPACE_BYTES = 255
# A user name or password in a URL: unreserved and sub-delimiter characters, or %XX.
_ESCAPED_USERINFO = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")


@dataclass(frozen=True)
class Problem:
    """One wrong setting: the check id, the setting, what is wrong and what to do."""

    id: str
    setting: str
    message: str
    hint: str
    # False for contradictions that the documented precedence resolves at run
    # time (they are still errors for `check`).
    fatal: bool = True
    level: str = "error"  # or "warning"

    def as_error_text(self) -> str:
        return f"mongo_sessions: {self.message} ({self.id}). {self.hint}"


def settings_problems() -> list[Problem]:
    """Return every problem of the settings, in the order `check` reports them.

    MONGO_CLIENT itself is checked by ``checks._check_client``.
    """
    problems: list[Problem] = []
    for check in _CHECKS:
        problems += check()
    return problems


def validate_connection_settings() -> None:
    """Raise ImproperlyConfigured for the first setting of the connection that cannot work."""
    for problem in _connection_problems():
        if problem.fatal and problem.level == "error":
            raise ImproperlyConfigured(problem.as_error_text())


def timeout_seconds() -> float:
    """Return MONGO_SESSIONS_TIMEOUT in seconds; raise ImproperlyConfigured if it cannot work."""
    timeout = conf.MONGO_SESSIONS_TIMEOUT
    problem = _timeout_problem(timeout)
    if problem is not None:
        raise ImproperlyConfigured(problem.as_error_text())
    return float(timeout)


#: The values of MONGO_SESSIONS_FORMAT.
SIGNED, DOCUMENT = "signed", "document"


def session_format(name: Any, serializer: Any) -> str:
    """Return the session format ``name``; raise ImproperlyConfigured if it cannot work.

    ``serializer`` is the store's SESSION_SERIALIZER class: the document format
    stores what Django's JSONSerializer stores, and needs that serializer.
    """
    problem = _format_problem(name, serializer)
    if problem is not None:
        raise ImproperlyConfigured(problem.as_error_text())
    return str(name)


def ttl_seconds() -> int:
    """Return MONGO_SESSIONS_TTL in seconds; raise ImproperlyConfigured if it cannot work."""
    ttl = conf.MONGO_SESSIONS_TTL
    problem = _ttl_problem(ttl)
    if problem is not None:
        raise ImproperlyConfigured(problem.as_error_text())
    return ttl


# --- The checks, one per concern ------------------------------------------------------


def _connection_problems() -> list[Problem]:
    """Return the problems of the settings the configured connection style uses."""
    problems: list[Problem] = []
    given = conf.MONGO_CLIENT
    uses_db_name = True
    if given is None:
        if conf.MONGO_SESSIONS_URL:
            problems += _url_problems()
            uses_db_name = _effective_database() is None
        else:
            problems += _host_problems()
            problems += _credentials_problems()
        problems += _client_options_problems()
    elif isinstance(given, Database):
        uses_db_name = False
    problems += [p for p in _names_problems() if uses_db_name or p.id != "mongo_sessions.E007"]
    problems += _numbers_problems()
    return problems


def _url_problems() -> list[Problem]:
    url = conf.MONGO_SESSIONS_URL
    if not url:
        return []
    if not isinstance(url, str):
        return [_url_problem(f"it is a {type(url).__name__}, not a string")]
    if not url.startswith(SCHEMES):
        return [_url_problem("it must start with mongodb:// or mongodb+srv://")]
    credentials = _unescaped_credentials(url)
    if credentials is not None:
        return [credentials]
    is_srv = url.startswith(SRV_SCHEME)
    # Parsed as a plain URL: the SRV lookup of mongodb+srv:// is network I/O.
    plain = "mongodb://" + url[len(SRV_SCHEME) :] if is_srv else url
    try:
        parsed = parse_uri(plain, validate=True, warn=False)
    except Exception as e:  # InvalidURI, ConfigurationError, ValueError, OSError (tlsCAFile)
        return [_option_problem("MONGO_SESSIONS_URL", e)]
    if is_srv:
        if len(parsed["nodelist"]) != 1:
            return [_url_problem("a mongodb+srv:// URL names exactly one host")]
        if url[len(SRV_SCHEME) :].split("/")[0].split("@")[-1].count(":"):
            return [_url_problem("a mongodb+srv:// URL has no port number")]
        if parsed["options"].get("directConnection"):
            return [_url_problem("directConnection=true cannot be used with mongodb+srv://")]
    database = parsed["database"]
    if database is not None:
        reason = _invalid_db_name(database)
        if reason:
            return [_url_problem(f"the database {database!r} in its path is invalid: {reason}")]
    return []


def _unescaped_credentials(url: str) -> Problem | None:
    """Return a problem if the URL's user name or password is not percent-escaped."""
    rest = url.split("://", 1)[1]
    if "@" not in rest:
        return None
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    # An "@" past the first "/" or "?": a "/" or "?" of the password ended the host
    # part early (the rest would be read as a database name or options).
    misplaced = "@" not in authority
    userinfo = rest[: rest.rfind("@")]
    user, _, password = userinfo.partition(":")
    if misplaced or not all(_ESCAPED_USERINFO.fullmatch(part) for part in (user, password)):
        return Problem(
            id="mongo_sessions.E016",
            setting="MONGO_SESSIONS_URL",
            message="MONGO_SESSIONS_URL has a user name or password that is not percent-escaped "
            "(a ':', '/', '?', '#', '[', ']', '@' or '%' must be written %XX)",
            hint="Build the URL with urllib.parse.quote_plus(user) and "
            "quote_plus(password), or give them as 'username' and 'password' in "
            "MONGO_SESSIONS_CLIENT_OPTIONS.",
        )
    return None


def _url_problem(reason: str) -> Problem:
    return Problem(
        id="mongo_sessions.E004",
        setting="MONGO_SESSIONS_URL",
        message=f"MONGO_SESSIONS_URL is not a valid MongoDB connection string: {reason}",
        hint="Use mongodb://[user:password@]host[:port][/database][?options] or "
        "mongodb+srv://[user:password@]host[/database][?options].",
    )


def _is_tls_error(text: str) -> bool:
    return bool(re.search(r"tls|ssl|certificate", text, re.IGNORECASE))


def _option_problem(setting: str, error: Exception) -> Problem:
    """Return the problem for a pymongo error about ``setting``: TLS (E015) or not."""
    reason = scrub_text(f"{type(error).__name__}: {error}", configured_passwords())
    # Only TLS options name files (tlsCAFile, tlsCertificateKeyFile, tlsCRLFile).
    if isinstance(error, OSError) or _is_tls_error(reason):
        return Problem(
            id="mongo_sessions.E015",
            setting=setting,
            message=f"{setting} has invalid TLS options: {reason}",
            hint="tls takes true or false (a connection is never made without TLS because "
            "of a typo); tlsCAFile and tlsCertificateKeyFile must be readable PEM "
            "files, and need tls=true.",
        )
    if setting == "MONGO_SESSIONS_URL":
        return _url_problem(reason)
    return _invalid_options(reason)


def _host_problems() -> list[Problem]:
    problems: list[Problem] = []
    host, port = conf.MONGO_HOST, conf.MONGO_PORT
    if not isinstance(host, str) or not host:
        problems.append(
            Problem(
                id="mongo_sessions.E005",
                setting="MONGO_HOST",
                message=f"MONGO_HOST must be a non-empty string, not {host!r}",
                hint="Give a host name or address, for example 'localhost'.",
            )
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(
            Problem(
                id="mongo_sessions.E005",
                setting="MONGO_PORT",
                message=f"MONGO_PORT must be an integer between 1 and 65535, not {port!r}",
                hint="MongoDB listens on 27017 by default.",
            )
        )
    return problems


def _credentials_problems() -> list[Problem]:
    user, password = conf.MONGO_DB_USER, conf.MONGO_DB_PASSWORD
    problems: list[Problem] = []
    for name, value in (("MONGO_DB_USER", user), ("MONGO_DB_PASSWORD", password)):
        if value not in (False, None, "") and not isinstance(value, str):
            problems.append(
                Problem(
                    id="mongo_sessions.E017",
                    setting=name,
                    message=f"{name} must be a string (or False), not a {type(value).__name__}",
                    hint="Give the user name and password as strings.",
                )
            )
    if problems or (not user and not password):
        return problems
    if not (user and password):
        return [
            Problem(
                id="mongo_sessions.E006",
                setting="MONGO_DB_USER" if not user else "MONGO_DB_PASSWORD",
                message="Only one of MONGO_DB_USER and MONGO_DB_PASSWORD is set",
                hint="Set both to authenticate, or neither.",
            )
        ]
    return []


def _contradiction_problems() -> list[Problem]:
    """Settings the chosen connection style ignores: errors for `check`, not at run time."""
    problems: list[Problem] = []
    overridden = conf.MONGO_CLIENT is not None or bool(conf.MONGO_SESSIONS_URL)
    user, password = conf.MONGO_DB_USER, conf.MONGO_DB_PASSWORD
    if overridden and (user or password):
        problems.append(
            Problem(
                id="mongo_sessions.E012",
                setting="MONGO_DB_USER",
                message="MONGO_DB_USER / MONGO_DB_PASSWORD are set together with MONGO_CLIENT or "
                "MONGO_SESSIONS_URL, which decide the connection on their own",
                hint="Put the credentials in the URL or the client, or in "
                "MONGO_SESSIONS_CLIENT_OPTIONS as username and password.",
                fatal=False,
            )
        )
    explicit = [name for name in ("MONGO_HOST", "MONGO_PORT") if conf.is_set(name)]
    if overridden and explicit:
        problems.append(
            Problem(
                id="mongo_sessions.W001",
                setting=explicit[0],
                message=f"{' and '.join(explicit)} are ignored because MONGO_CLIENT or "
                "MONGO_SESSIONS_URL is set",
                hint="Remove them, or put the address in the client or URL you give.",
                fatal=False,
                level="warning",
            )
        )
    if conf.MONGO_CLIENT is not None and conf.MONGO_SESSIONS_CLIENT_OPTIONS:
        problems.append(
            Problem(
                id="mongo_sessions.E011",
                setting="MONGO_SESSIONS_CLIENT_OPTIONS",
                message="MONGO_SESSIONS_CLIENT_OPTIONS is set together with MONGO_CLIENT; "
                "mongo_sessions never changes a client you give it",
                hint="Pass these options to your own MongoClient instead.",
                fatal=False,
            )
        )
    return problems


def _checked_host_problems() -> list[Problem]:
    """MONGO_HOST/MONGO_PORT and the credentials, as `check` reports them (any style)."""
    problems = _host_problems() + _credentials_problems()
    if conf.MONGO_CLIENT is not None or conf.MONGO_SESSIONS_URL:
        # The host style is not in use: only report what is wrong in itself.
        problems = [p for p in problems if p.id != "mongo_sessions.E006"]
    return problems


def _names_problems() -> list[Problem]:
    problems: list[Problem] = []
    db_name = conf.MONGO_DB_NAME
    reason = _invalid_db_name(db_name)
    if reason:
        problems.append(
            Problem(
                id="mongo_sessions.E007",
                setting="MONGO_DB_NAME",
                message=f"MONGO_DB_NAME {db_name!r} is not a valid MongoDB database name: {reason}",
                hint='Use 1 to 63 bytes without / \\ . " $, spaces or NUL.',
            )
        )
    name = conf.MONGO_SESSIONS_COLLECTION
    reason = _invalid_collection_name(name)
    if reason is None and isinstance(db_name, str):
        namespace = f"{_effective_database() or db_name}.{name}"
        if len(namespace.encode()) > MAX_NAMESPACE_BYTES:
            reason = f"the namespace {namespace!r} is over {MAX_NAMESPACE_BYTES} bytes"
    if reason:
        problems.append(
            Problem(
                id="mongo_sessions.E008",
                setting="MONGO_SESSIONS_COLLECTION",
                message=f"MONGO_SESSIONS_COLLECTION {name!r} is not a valid MongoDB collection "
                f"name: {reason}",
                hint="Use a non-empty name without $ or NUL, not starting with 'system.', "
                "without empty parts ('a..b', '.a', 'a.'), and with 'database.collection' "
                "at most 255 bytes.",
            )
        )
    return problems


def _effective_database() -> str | None:
    """Return the database named in the URL's path, if the URL is the connection style."""
    url = conf.MONGO_SESSIONS_URL
    if conf.MONGO_CLIENT is not None or not isinstance(url, str) or not url.startswith(SCHEMES):
        return None
    path = url.split("://", 1)[1].split("?", 1)[0]
    _, slash, database = path.partition("/")
    return database.split(".", 1)[0] or None if slash else None


def _invalid_db_name(name: Any) -> str | None:
    if not isinstance(name, str):
        return f"it is a {type(name).__name__}, not a string"
    if not name:
        return "it is empty"
    if len(name.encode()) > MAX_DB_NAME_BYTES:
        return f"it is over {MAX_DB_NAME_BYTES} bytes"
    bad = sorted(INVALID_DB_NAME_CHARS & set(name))
    if bad:
        return f"it contains {', '.join(repr(c) for c in bad)}"
    return None


def _invalid_collection_name(name: Any) -> str | None:
    if not isinstance(name, str):
        return f"it is a {type(name).__name__}, not a string"
    if not name:
        return "it is empty"
    if "$" in name or "\x00" in name:
        return "it contains '$' or NUL"
    if name.startswith("system."):
        return "names starting with 'system.' are reserved"
    if name.startswith(".") or name.endswith(".") or ".." in name:
        return "it has an empty part (a leading, trailing or double '.')"
    return None


def _numbers_problems() -> list[Problem]:
    problems = [
        problem
        for problem in (
            _ttl_problem(conf.MONGO_SESSIONS_TTL),
            _timeout_problem(conf.MONGO_SESSIONS_TIMEOUT),
        )
        if problem is not None
    ]
    if not isinstance(conf.MONGO_SESSIONS_AUTO_INDEX, bool):
        problems.append(
            Problem(
                id="mongo_sessions.E014",
                setting="MONGO_SESSIONS_AUTO_INDEX",
                message="MONGO_SESSIONS_AUTO_INDEX must be True or False, not "
                f"{conf.MONGO_SESSIONS_AUTO_INDEX!r}",
                hint="Set False when the account lacks the createIndex privilege, and run "
                "'manage.py mongo_sessions_setup' with one that has it.",
            )
        )
    return problems


def _ttl_problem(ttl: Any) -> Problem | None:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        return Problem(
            id="mongo_sessions.E009",
            setting="MONGO_SESSIONS_TTL",
            message=f"MONGO_SESSIONS_TTL must be a positive number of seconds, not {ttl!r}",
            hint="Leave it unset to use SESSION_COOKIE_AGE.",
        )
    return None


def _timeout_problem(timeout: Any) -> Problem | None:
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < float("inf")
    ):
        return Problem(
            id="mongo_sessions.E013",
            setting="MONGO_SESSIONS_TIMEOUT",
            message="MONGO_SESSIONS_TIMEOUT must be a positive, finite number of seconds, "
            f"not {timeout!r}",
            hint="It bounds every MongoDB call of a request; the default is 5.",
        )
    return None


def _client_options_problems() -> list[Problem]:
    options = conf.MONGO_SESSIONS_CLIENT_OPTIONS
    if not options:
        return []
    if not isinstance(options, dict):
        return [_invalid_options(f"it is a {type(options).__name__}, not a dict")]
    if conf.MONGO_CLIENT is not None:
        return []  # E011: the options are not used.
    merged = {**DEFAULT_CLIENT_OPTIONS, **options}
    try:
        _build_unconnected_client("mongodb://localhost", merged)
    except Exception as e:  # ConfigurationError, TypeError, ValueError, OSError (tlsCAFile)
        return [_option_problem("MONGO_SESSIONS_CLIENT_OPTIONS", e)]
    # Together with the URL (options of both can contradict each other).
    url = conf.MONGO_SESSIONS_URL
    if isinstance(url, str) and url.startswith(SCHEMES) and not _url_problems():
        plain = url
        if url.startswith(SRV_SCHEME):
            # Without the SRV lookup (network I/O). A TLS option there still turns
            # TLS on, as mongodb+srv:// does by default.
            plain = "mongodb://" + url[len(SRV_SCHEME) :]
        try:
            _build_unconnected_client(plain, merged)
        except Exception as e:
            return [_option_problem("MONGO_SESSIONS_CLIENT_OPTIONS", e)]
    return []


def _build_unconnected_client(host: str, options: dict[str, Any]) -> None:
    """Build and close a client that never connects: pymongo validates every option."""
    # The site's listeners would see this throwaway client's topology open and
    # close: leave them out (the real client validates them when it is built).
    options = {name: value for name, value in options.items() if name != "event_listeners"}
    with warnings.catch_warnings():
        # URL options are validated strictly by parse_uri; here they only warn.
        warnings.simplefilter("ignore")
        MongoClient(host, connect=False, **options).close()


def _invalid_options(reason: str) -> Problem:
    return Problem(
        id="mongo_sessions.E010",
        setting="MONGO_SESSIONS_CLIENT_OPTIONS",
        message=f"MONGO_SESSIONS_CLIENT_OPTIONS is invalid: {reason}",
        hint="Give a dict of pymongo.MongoClient keyword arguments, for example "
        "{'serverSelectionTimeoutMS': 2000, 'tls': True}.",
    )


def _checked_url_problems() -> list[Problem]:
    return _url_problems() if conf.MONGO_SESSIONS_URL else []


# The order in which `check` reports (MONGO_CLIENT's own checks come first, in checks.py).
def _format_problem(name: Any, serializer: Any) -> Problem | None:
    if name not in (SIGNED, DOCUMENT):
        return Problem(
            id="mongo_sessions.E050",
            setting="MONGO_SESSIONS_FORMAT",
            message=f'MONGO_SESSIONS_FORMAT must be "signed" or "document", not {name!r}',
            hint='"signed" (the default) stores what Django\'s database engine stores; '
            '"document" stores the session as a sub-document MongoDB can query.',
        )
    if name == DOCUMENT and serializer is not JSONSerializer:
        return Problem(
            id="mongo_sessions.E051",
            setting="MONGO_SESSIONS_FORMAT",
            message='MONGO_SESSIONS_FORMAT = "document" stores what Django\'s JSONSerializer '
            "stores, and SESSION_SERIALIZER is "
            f"{getattr(serializer, '__module__', '?')}.{getattr(serializer, '__qualname__', '?')}",
            hint='Use "django.contrib.sessions.serializers.JSONSerializer" (the default), or '
            'keep MONGO_SESSIONS_FORMAT = "signed".',
        )
    return None


def _format_problems() -> list[Problem]:
    try:
        serializer = import_string(conf.SESSION_SERIALIZER)
    except ImportError:
        return []  # Django itself fails on it first; nothing to say about the format
    problem = _format_problem(conf.MONGO_SESSIONS_FORMAT, serializer)
    return [] if problem is None else [problem]


_CHECKS: list[Callable[[], list[Problem]]] = [
    _checked_url_problems,
    _checked_host_problems,
    _contradiction_problems,
    _names_problems,
    _numbers_problems,
    _client_options_problems,
    _format_problems,
]
