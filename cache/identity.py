"""Checks every store applies before it writes, whatever its backend.

The shapes of resource and stable IDs, the key a URL is stored under, minting a stable ID
no resource holds, and proving a record reads back before it is stored. Kept apart from any
one backend so that each applies the same rules (see :mod:`.contract`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from .errors import CacheError
from .records import Record, RecordFormatError

__all__ = [
    "MAX_MINT_TRIES",
    "check_resource_id",
    "check_stable_id",
    "is_resource_id",
    "is_stable_id",
    "mint_unique",
    "url_key",
    "validated_json",
]

# Same shapes as snapcache.ids (which the cache package may not import): a resource ID is 16
# lowercase hex digits of SHA-256; a stable ID is sid_ + 10 alphanumerics, or the bare 10 of
# older data.
_RID_RE: Final = re.compile(r"[0-9a-f]{16}")
_SID_RE: Final = re.compile(r"(?:sid_)?[A-Za-z0-9]{10}")

#: A ``mint`` callable that keeps returning taken IDs is broken; stop instead of spinning.
MAX_MINT_TRIES: Final = 100


def is_resource_id(text: str) -> bool:
    """True when ``text`` has the shape of a resource ID (16 lowercase hex digits)."""
    return _RID_RE.fullmatch(text) is not None


def is_stable_id(text: str) -> bool:
    """True when ``text`` has the shape of a stable ID (``sid_`` + 10, or the bare 10)."""
    return _SID_RE.fullmatch(text) is not None


def check_resource_id(rid: str) -> None:
    """Raise ``ValueError`` unless ``rid`` is a resource ID."""
    if not isinstance(rid, str) or not is_resource_id(rid):
        raise ValueError(f"not a resource ID (16 lowercase hex digits): {rid!r}")


def check_stable_id(sid: str) -> None:
    """Raise ``ValueError`` unless ``sid`` is a stable ID."""
    if not isinstance(sid, str) or not is_stable_id(sid):
        raise ValueError(f"not a stable ID (sid_ + 10 letters/digits, or bare 10): {sid!r}")


def url_key(url: str) -> str:
    """Return the key a URL is stored under: the URL stripped of surrounding white space.

    Nothing else is normalised: the fetcher decides what counts as the same URL. Raises
    ``TypeError`` for a non-string and ``ValueError`` for a blank URL.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be str, not {type(url).__name__}")
    key = url.strip()
    if not key:
        raise ValueError("url must not be empty")
    return key


def mint_unique(mint: Callable[[], str], taken: Callable[[str], bool]) -> str:
    """Call ``mint`` until it returns a well-formed stable ID for which ``taken`` is false.

    Raises ``ValueError`` for a malformed ID and :class:`CacheError` after
    :data:`MAX_MINT_TRIES` taken ones.
    """
    for _ in range(MAX_MINT_TRIES):
        candidate = mint()
        check_stable_id(candidate)
        if not taken(candidate):
            return candidate
    raise CacheError(f"mint() returned only stable IDs already in use ({MAX_MINT_TRIES} tries)")


def validated_json(record: Record) -> str:
    """Serialise a record, proving it reads back under the current schema before it is stored.

    Raises :class:`RecordFormatError` naming the resource ID otherwise.
    """
    text = record.to_json()
    try:
        Record.from_json(text)
    except RecordFormatError as exc:
        raise RecordFormatError(f"record {record.resource_id}: refusing to store: {exc}") from exc
    return text
