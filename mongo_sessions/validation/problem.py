"""The ``Problem`` type of the settings validation, and how a pymongo error becomes one."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..passwords import configured_passwords, scrub_text


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


def a_type(value: Any) -> str:
    """Return the type of ``value`` with its article, as in "an int" or "a str"."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def option_problem(setting: str, error: Exception, otherwise: Callable[[str], Problem]) -> Problem:
    """Return the problem for a pymongo error about ``setting``.

    A TLS error is E015; any other error is ``otherwise(reason)``. The reason is
    pymongo's text with every configured password scrubbed out.
    """
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
    return otherwise(reason)


def _is_tls_error(text: str) -> bool:
    return bool(re.search(r"tls|ssl|certificate", text, re.IGNORECASE))
