"""Identifiers and input URLs: resource IDs, stable IDs, archive URLs given as input, and
the replay URLs built from them.

The ID scheme is the wiki's (see the README): a resource ID is the first 16 hex characters of
SHA-256 over the URL exactly as given; a stable ID is ``sid_`` plus 10 random alphanumerics,
minted once.

A replay URL carries the original URL inside its path (``/web/<ts><flag>/<original>``), so
a dot segment in the original (``..``, or one in disguise: ``%2e%2e``, ``..;x``, ``..``
between backslashes) would climb out of the replay prefix once a client or the archive
normalises the path: to Save Page Now, or to the CDX endpoint on the playback budget.
:func:`safe_original` resolves the dot segments a browser would resolve (within the
original's own path, never above its host) and refuses the disguised ones;
:func:`build_replay_url` only takes such an original; :func:`find_dot_segment` is the test
every layer applies (the transport too, on the request it is about to send).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import unquote_to_bytes, urlsplit

from snapcache.cache.times import parse_timestamp14, to_timestamp14, utc_now

from .errors import InputError

_ALPHABET: Final = string.ascii_letters + string.digits
_SID_RE: Final = re.compile(r"^(?:sid_)?[A-Za-z0-9]{10}$")
#: Longest URL accepted; browsers and the archive stop well before this.
MAX_URL_LENGTH: Final = 8192
# /web/<ts><modifier>/<original>: ts is 0-14 digits, modifier is a flag like id_ or a
# calendar star. The original may lack a scheme (the wiki cites such a calendar URL).
_ARCHIVE_PATH_RE: Final = re.compile(
    r"^/web/(?P<ts>\d{1,14})?(?P<mod>\*|[a-z]{2}_)?/(?P<original>.+)$", re.DOTALL
)
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACE_RE: Final = re.compile(r"\s")
_KNOWN_ARCHIVE_HOSTS: Final = frozenset({"web.archive.org", "wayback.archive.org"})
# ASCII digits only: str.isdigit() would let other scripts' digits through.
_DIGITS_RE: Final = re.compile(r"[0-9]+")
#: The forms :func:`parse_at` accepts, as its error messages name them.
AT_FORMS: Final = (
    "YYYY[MM[DD[hhmmss]]] digits or an ISO 8601 date or date-time"
    " (2024-01-01, 2024-01-01T12:00:00Z)"
)


def resource_id(url: str) -> str:
    """First 16 hex characters of SHA-256 over the URL as given (whitespace stripped)."""
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:16]


def mint_stable_id() -> str:
    """A new stable ID: ``sid_`` plus 10 characters from [A-Za-z0-9], from ``secrets``."""
    return "sid_" + "".join(secrets.choice(_ALPHABET) for _ in range(10))


def is_stable_id(text: str) -> bool:
    """True for ``sid_`` IDs and the bare 10-character IDs of older wiki data."""
    return bool(_SID_RE.match(text))


#: An http(s) URL whose authority is plain: letters, digits, dots and hyphens, perhaps a
#: port, then the end or a path, query or fragment (no user, no brackets, no escapes).
_PLAIN_URL_RE: Final = re.compile(
    r"(?:https?)://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?(?=[/?#]|\Z)", re.IGNORECASE
)


def _plain_host_port(url: str) -> tuple[str, int | None] | None:
    """The host (lower case) and port of a URL of :data:`_PLAIN_URL_RE`'s form, as
    :func:`~urllib.parse.urlsplit` would give them; None for any other URL (then ask it).

    Most cited URLs have this form, and splitting them with urlsplit took over a tenth of
    planning a URL whose record is fresh."""
    match = _PLAIN_URL_RE.match(url)
    if match is None:
        return None
    host, port = match.group(1).lower(), match.group(2)
    if port is None:
        return host, None
    number = int(port)
    return (host, number) if number <= 65535 else None


def check_url(url: str) -> str:
    """Return the URL stripped of surrounding whitespace, or raise :class:`InputError`.

    Accepts absolute http(s) URLs with a host, no control characters, at most 8 KB.
    """
    stripped = url.strip()
    if not stripped:
        raise InputError("empty URL")
    if len(stripped.encode("utf-8", "surrogatepass")) > MAX_URL_LENGTH:
        raise InputError(f"URL longer than {MAX_URL_LENGTH} bytes")
    if _CONTROL_RE.search(stripped):
        raise InputError("URL contains control characters")
    if _SPACE_RE.search(stripped):
        raise InputError("URL contains whitespace")
    try:
        stripped.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: no request could carry it
        raise InputError("URL is not valid Unicode (a lone surrogate)") from exc
    if _plain_host_port(stripped) is not None:
        return stripped  # http(s), a host, a port in range: what the checks below ask
    try:
        parts = urlsplit(stripped)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InputError(f"unparsable URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(f"not an http(s) URL (scheme {parts.scheme or 'missing'!r})")
    if not parts.hostname:
        raise InputError("URL has no host")
    return stripped


def normalize_timestamp(value: str) -> str:
    """Validate a 4-14 digit UTC timestamp (YYYY[MM[DD[hh[mm[ss]]]]]) and pad it to 14.

    Missing parts become the start of the period (month and day 01, time 00). Raises
    :class:`InputError` for anything that is not a real date and time.
    """
    text = value.strip()
    # isascii: str.isdigit and int() also take other scripts' digits ("\u0662\u0660...").
    if not (text.isascii() and text.isdigit()) or not 4 <= len(text) <= 14 or len(text) % 2:
        raise InputError(f"timestamp {value!r}: expected YYYYMMDD[hhmmss] digits")
    padded = text + "0101000000"[len(text) - 4 :] if len(text) < 14 else text
    try:
        parse_timestamp14(padded)
    except ValueError as exc:
        raise InputError(f"timestamp {value!r} is not a valid date and time") from exc
    return padded


def parse_at(value: str) -> str:
    """A target time as 14 UTC digits, from the forms people type.

    Archive digits, ``YYYY[MM[DD[hh[mm[ss]]]]]``, go through :func:`normalize_timestamp`
    (padded to the start of the period). Anything else must be an ISO 8601 date or date and
    time (``2024-01-01``, ``2024-01-01T12:30``, ``2024-01-01T12:30:00+02:00``, ``...Z``),
    converted to UTC; a date and time without a zone is taken as UTC, the zone every time
    in snapcache is in. Raises :class:`InputError` naming the accepted forms.
    """
    text = value.strip()
    if _DIGITS_RE.fullmatch(text):
        return normalize_timestamp(text)
    try:
        moment = datetime.fromisoformat(text)
        if moment.utcoffset() is None:
            moment = moment.replace(tzinfo=UTC)
        # A zone offset can push year 1 or 9999 out of range: that is no target either.
        return to_timestamp14(moment.astimezone(UTC))
    except (ValueError, OverflowError):
        raise InputError(f"{value!r} is not a time: expected {AT_FORMS}") from None


def timestamp_now() -> str:
    """The current UTC time as a 14-digit archive timestamp."""
    return to_timestamp14(utc_now())


@dataclass(frozen=True, slots=True)
class Target:
    """What to resolve for one input URL."""

    given: str
    """The URL as given (stripped): its hash is the resource ID."""
    original: str
    """The URL to look up in the archive."""
    at: str | None
    """A 14-digit target time taken from an archive URL, if any."""


def parse_target(
    url: str, archive_hosts: frozenset[str] = frozenset(), *, checked: bool = False
) -> Target:
    """Understand an input URL, including archive URLs such as
    ``https://web.archive.org/web/20221020000000*/ftxfuturefund.org``.

    For an archive URL the original URL and the target time come from its path; a calendar
    star (``*``) or a mode flag (``id_``) is dropped. Raises :class:`InputError`.
    ``checked`` skips re-validating a URL that :func:`check_url` already returned.
    """
    given = url if checked else check_url(url)
    plain = _plain_host_port(given)
    if plain is None:
        split = urlsplit(given)
        plain = (split.hostname or "").lower(), split.port
    host, port = plain
    netloc = host if port is None else f"{host}:{port}"
    if host in _KNOWN_ARCHIVE_HOSTS or netloc in archive_hosts:
        parts = urlsplit(given)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        match = _ARCHIVE_PATH_RE.match(path)
        if match:
            original = match.group("original")
            if "://" not in original[:12]:
                # A scheme-less original (the calendar form): the archive folds http and
                # https together when matching, so http is as good as any.
                original = "http://" + original.lstrip("/")
            original = check_url(original)
            ts = match.group("ts")
            at = normalize_timestamp(ts) if ts and len(ts) >= 4 and len(ts) % 2 == 0 else None
            return Target(given=given, original=safe_original(original), at=at)
    return Target(given=given, original=safe_original(given), at=None)


# --- replay URLs ------------------------------------------------------------------------

#: The names that stay (``.``) or climb (``..``) in a path.
_DOT_NAMES: Final = frozenset({".", ".."})
#: What a browser (WHATWG URL) resolves as a dot segment between slashes, case-insensitively.
_BROWSER_DOTS: Final = {".": ".", "%2e": ".", "..": "..", ".%2e": "..", "%2e.": "..",
                        "%2e%2e": ".."}
#: Rounds of percent-decoding looked through: a proxy, a server and a framework may each
#: decode once.
_DECODE_ROUNDS: Final = 3
#: Overlong UTF-8 forms of ".", "/" and "\" that lenient decoders accept (the old IIS hole).
_OVERLONG: Final = ((b"\xc0\xae", b"."), (b"\xe0\x80\xae", b"."), (b"\xc0\xaf", b"/"),
                    (b"\xe0\x80\xaf", b"/"), (b"\xc1\x9c", b"\\"))
_PCT_U_RE: Final = re.compile(r"%u([0-9a-fA-F]{4})")
_SEPARATOR_RE: Final = re.compile(r"[/\\]")
_QUERY_OR_FRAGMENT_RE: Final = re.compile(r"[?#]")
#: ``scheme://``, the authority, the path, then the query and fragment (kept as they are).
_ABSOLUTE_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)([^?#]*)(.*)",
                                 re.DOTALL)
_ORIGIN_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*)(.*)", re.DOTALL)
_TIMESTAMP_RE: Final = re.compile(r"[0-9]{1,14}")
_FLAG_RE: Final = re.compile(r"(?:[a-z]{2}_)?")
#: What follows a replay prefix: ``<ts><flag>/``, then the original.
_REPLAY_HEAD_RE: Final = re.compile(r"([0-9]{1,14}(?:[a-z]{2}_)?/)(.*)", re.DOTALL)
_WHY: Final = "it could lead out of the archive's replay path"


def _decode_once(text: str) -> str:
    """One round of the decoding some server might apply: ``%XX``, IIS's ``%uXXXX``, and
    overlong UTF-8 forms of the separators and the dot."""
    text = _PCT_U_RE.sub(lambda m: chr(int(m.group(1), 16)), text)
    raw = unquote_to_bytes(text.encode("utf-8", "surrogatepass"))
    for overlong, plain in _OVERLONG:
        raw = raw.replace(overlong, plain)
    return raw.decode("utf-8", errors="replace")


#: What some servers trim around a path segment.
_PADDING: Final = " \t\r\n\x00\x0b\x0c"
#: A segment that :func:`_is_dot_name` accepts, spelled in ASCII without escapes: one or
#: two dots, padded, perhaps followed by a ``;parameter``, between separators or the ends.
_PLAIN_DOT_SEGMENT_RE: Final = re.compile(
    r"(?:\A|[/\\])[ \t\r\n\x00\x0b\x0c]*\.\.?[ \t\r\n\x00\x0b\x0c]*(?:;[^/\\]*)?(?=[/\\]|\Z)"
)


def _is_dot_name(segment: str) -> bool:
    """``.`` or ``..``, allowing for a ``;parameter`` (Tomcat drops it), compatibility forms
    (fullwidth dots) and the padding some servers trim."""
    name = unicodedata.normalize("NFKC", segment.split(";", 1)[0])
    return name.strip(_PADDING) in _DOT_NAMES


def _describe(segment: str, text: str, rounds: int) -> str:
    """How a dot segment was spelled, for the message of a refusal."""
    if rounds:
        how = "one round" if rounds == 1 else f"{rounds} rounds"
        return f"{segment!r} after {how} of percent-decoding"
    if segment in _DOT_NAMES and segment not in text.split("/"):
        return f"{segment!r} between backslashes"
    if ";" in segment:
        return f"{segment!r} with a parameter"
    if segment not in _DOT_NAMES:
        return f"{segment!r} read as a dot segment"
    return repr(segment)


def find_dot_segment(path: str) -> str | None:
    """Describe the first segment of ``path`` that a client or a server could take for ``.``
    or ``..`` (and so resolve, leaving the path it was put in), or None when there is none.

    Segments are split at ``/`` and at ``\\``, as given and after each of up to three rounds
    of decoding (``%2e%2e``, ``%252e``, ``%2f``, ``%u002e``, overlong UTF-8); a
    ``;parameter`` does not hide one (``..;x``). Give the path only: a query is no path.
    """
    text = path
    if text.isascii() and "%" not in text:
        # Most URLs (every URL planned passes here twice): nothing here can decode into
        # something else (no escapes, and overlong UTF-8 needs bytes above 0x7f) and NFKC
        # leaves ASCII as it is, so the segments as given are all the loop below would
        # look at, and one search finds whether any is a dot name.
        if _PLAIN_DOT_SEGMENT_RE.search(text) is None:
            return None
        for segment in _SEPARATOR_RE.split(text):
            if segment.split(";", 1)[0].strip(_PADDING) in _DOT_NAMES:
                return _describe(segment, text, 0)
        return None
    for rounds in range(_DECODE_ROUNDS + 1):
        for segment in _SEPARATOR_RE.split(text):
            if _is_dot_name(segment):
                return _describe(segment, text, rounds)
        decoded = _decode_once(text)
        if decoded == text:
            return None
        text = decoded
    return None


def resolve_dot_segments(path: str) -> str:
    """``path`` (absolute, or empty) with the dot segments a browser removes resolved:
    ``.`` and ``..`` between slashes, ``%2e`` spellings included, by RFC 3986 section
    5.2.4 (a ``..`` above the root is dropped, so the result never climbs out of it)."""
    if not path.startswith("/"):
        return path
    segments = path.split("/")[1:]
    out: list[str] = []
    for index, segment in enumerate(segments):
        dot = _BROWSER_DOTS.get(segment.lower())
        if dot is None:
            out.append(segment)
            continue
        if dot == ".." and out:
            out.pop()
        if index == len(segments) - 1:
            out.append("")  # "/a/b/.." is "/a/": the last dot segment leaves a slash
    return "/" + "/".join(out)


def _path_of(url: str) -> str:
    """What precedes the query and the fragment: the part a client resolves."""
    return _QUERY_OR_FRAGMENT_RE.split(url, maxsplit=1)[0]


def safe_original(url: str) -> str:
    """``url`` fit to stand inside a replay path, or :class:`InputError` saying why not.

    A URL without dot segments is returned as it is: the archive matches originals
    textually, so nothing else is touched (the query and the fragment never are). The dot
    segments a browser resolves (``.``, ``..``, ``%2e%2e`` between slashes) are resolved
    within the URL's own path, as the crawler that made a capture fetched it, so they can
    never climb above its host. Refused: a dot segment in the host, or one that a browser
    would not resolve but a server might (between backslashes, ``..;x``, percent-encoded
    twice, overlong UTF-8), and a URL without ``scheme://host`` holding any of them.
    """
    match = _ABSOLUTE_RE.fullmatch(url)
    if match is None:
        found = find_dot_segment(_path_of(url))
        if found is not None:
            raise InputError(f"URL has a dot segment {found}: refused, {_WHY}")
        return url
    scheme, authority, path, rest = match.groups()
    found = find_dot_segment(authority)
    if found is not None:
        raise InputError(f"URL host holds a dot segment {found}: refused, {_WHY}")
    if find_dot_segment(path) is None:
        return url
    resolved = resolve_dot_segments(path)
    found = find_dot_segment(resolved)
    if found is not None:
        raise InputError(f"URL path has a dot segment {found}: refused, {_WHY}")
    return scheme + authority + resolved + rest


def build_replay_url(prefix: str, timestamp: str, original: str, flag: str = "id_") -> str:
    """The replay URL ``{prefix}{timestamp}{flag}/{original}`` (``prefix`` being the
    archive's ``{base}/web/`` or ``{base}/{collection}/``, from the configuration).

    ``original`` passes through :func:`safe_original` first, so nothing it holds can move
    the request out of ``{prefix}{timestamp}{flag}/`` when a client or the archive
    normalises the path; ``timestamp`` must be 1-14 digits and ``flag`` empty or a mode
    such as ``id_``. Raises :class:`InputError` for anything else.
    """
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        raise InputError(f"replay timestamp {timestamp!r}: expected 1 to 14 digits")
    if not _FLAG_RE.fullmatch(flag):
        raise InputError(f"replay flag {flag!r}: expected none or a mode such as 'id_'")
    tail = safe_original(original)
    # The protocol puts the original in the path as text (the archive matches it textually,
    # so it is not re-encoded); every part is checked above, the tail segment by segment.
    return f"{prefix}{timestamp}{flag}/{tail}"


def safe_replay_target(url: str, replay_paths: Iterable[str]) -> str | None:
    """A redirect target fit to follow inside an archive, or None when it is not one.

    ``url`` must be a replay URL, ``<origin><path><ts><flag>/<original>``, whose path is
    one of ``replay_paths`` (``/web/``, or ``/{collection}/`` for pywb: paths only; the
    caller checks the host) and whose original :func:`safe_original` accepts; it is
    returned as it is, or with the original's dot segments resolved. Anything else (a
    redirect to ``/save/``, to the CDX endpoint, a hidden ``..``) gives None.
    """
    match = _ORIGIN_RE.fullmatch(url)
    if match is None:
        return None
    origin, rest = match.groups()
    for path in replay_paths:
        if not rest.startswith(path):
            continue
        head = _REPLAY_HEAD_RE.fullmatch(rest, len(path))
        if head is None:
            continue
        try:
            tail = safe_original(head.group(2))
        except InputError:
            return None
        return f"{origin}{path}{head.group(1)}{tail}"
    return None
