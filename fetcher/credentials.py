"""The save keys as secrets: how they are read and checked, and how they are kept out of text.

A key is sent in one place only, the ``Authorization`` header of Save Page Now requests.
Whatever text could quote that header (an archive's answer echoing it, an exception about
the request, a record's error) passes :func:`redact` before it is stored or shown.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Final

from .errors import ConfigError

#: The save keys' environment variables, read when ``[save]`` leaves a key empty.
ENV_SAVE_ACCESS: Final = "SNAPCACHE_SAVE_ACCESS_KEY"
ENV_SAVE_SECRET: Final = "SNAPCACHE_SAVE_SECRET_KEY"
#: What :func:`redact` puts in place of a secret.
REDACTED: Final = "[redacted]"


def clean_secret(name: str, value: str) -> str:
    """A key as it will be sent: ``value`` without surrounding whitespace (a key read from a
    file keeps its ``\\r`` or newline). A :class:`ConfigError` naming ``name``, never showing
    the value, if what remains holds control characters or anything but ASCII: such a key
    cannot go into a header, and the refusal would carry it into records and logs."""
    value = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{name} contains control characters (the value is not shown)")
    if not value.isascii():
        raise ConfigError(f"{name} contains non-ASCII characters (the value is not shown)")
    return value


def resolve_save_keys(access_key: str, secret_key: str,
                      environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``(access, secret)``: each configured key, else its environment variable
    (``os.environ`` by default), cleaned by :func:`clean_secret` under the name it came
    from (``save.access_key`` or ``$SNAPCACHE_SAVE_ACCESS_KEY`` …)."""
    env = os.environ if environ is None else environ
    keys = []
    for key, configured, variable in (("access_key", access_key, ENV_SAVE_ACCESS),
                                      ("secret_key", secret_key, ENV_SAVE_SECRET)):
        if configured.strip():
            keys.append(clean_secret(f"save.{key}", configured))
        else:
            keys.append(clean_secret(f"${variable}", env.get(variable, "")))
    return keys[0], keys[1]


def known_secrets(access_key: str, secret_key: str,
                  environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every value that could be sent as a key: the configured ones and the environment's,
    as given and stripped, longest first. Never raises."""
    env = os.environ if environ is None else environ
    values = (access_key, secret_key, env.get(ENV_SAVE_ACCESS, ""), env.get(ENV_SAVE_SECRET, ""))
    found = {v for value in values for v in (value, value.strip()) if v.strip()}
    return tuple(sorted(found, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by :data:`REDACTED`."""
    # Longest first: a secret that contains another is replaced whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


__all__ = [
    "ENV_SAVE_ACCESS",
    "ENV_SAVE_SECRET",
    "REDACTED",
    "clean_secret",
    "known_secrets",
    "redact",
    "resolve_save_keys",
]
