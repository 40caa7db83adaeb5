"""How the Wayback Machine answers, from an index of captures: the part of an archive that
the demo archive (:mod:`snapcache.demo.server`) and the test suite's emulator
(``tests/wayback_emulator.py``) share.

Pure and stdlib only: URL keys (the archive folds scheme, ``www`` and default ports
together), timestamps, the :class:`Capture` and :class:`RecordedResponse` records, the
playback answers that need no capture body (the nearest-capture redirect, "never archived")
and the header lines of an answer. Every answer is a :class:`Reply`; the CDX server's
answers are in :mod:`snapcache.demo.cdx`.
"""

from __future__ import annotations

import base64
import calendar
import gzip
import hashlib
import html
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote, urljoin

Headers = list[tuple[str, str]]

CDX_FIELDS: tuple[str, ...] = (
    "urlkey",
    "timestamp",
    "original",
    "mimetype",
    "statuscode",
    "digest",
    "length",
)

#: The archive's own hosts, as they appear in recorded Location and Link headers.
ARCHIVE_HOSTS: tuple[str, ...] = ("https://web.archive.org", "http://web.archive.org")
#: ``<ts><flag>/<original>``: what follows ``/web/`` in a playback path.
PLAYBACK_RE = re.compile(r"^(\d{1,14})([a-z]{2}_)?/(.*)$", re.DOTALL)

_ENCODED_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*%3[aA]")
_SCHEME_RE = re.compile(r"^(?:https?|ftp):/*", re.IGNORECASE)
_WWW_RE = re.compile(r"^www\d*\.")
_WAYBACK_TARGET_RE = re.compile(
    r"^(?:https?:)?(?://web\.archive\.org)?/web/\d{1,14}(?:[a-z]{2}_)?/(.*)$", re.DOTALL
)
_LINK_ORIGINAL_RE = re.compile(r'<([^>]*)>;\s*rel="original"')


# --------------------------------------------------------------------------------------
# URL and timestamp helpers
# --------------------------------------------------------------------------------------


def maybe_unquote(original: str) -> str:
    """Unquote an original URL given percent-encoded (``http%3A//host%3A80/``)."""
    if _ENCODED_SCHEME_RE.match(original):
        return unquote(original)
    return original


def _split_key_source(url: str) -> tuple[str, str]:
    """Return (host, path+query) the way :func:`url_key` canonicalises them."""
    u = maybe_unquote(url.strip()).split("#", 1)[0]
    u = _SCHEME_RE.sub("", u, count=1).lstrip("/")
    m = re.match(r"^([^/?]*)(.*)$", u, re.DOTALL)
    host, rest = (m.group(1), m.group(2)) if m else (u, "")
    if "@" in host:
        host = host.rsplit("@", 1)[1]
    host = host.lower().rstrip(".")
    if host.endswith(":80") or host.endswith(":443"):
        host = host.rsplit(":", 1)[0]
    host = _WWW_RE.sub("", host)
    if not rest or rest.startswith("?"):
        rest = "/" + rest
    return host, rest


def url_key(url: str) -> str:
    """Canonical index key: ``host/path?query`` (scheme, ``www\\d*.``, :80/:443 folded).

    >>> url_key("https://WWW.Example.com:443")
    'example.com/'
    >>> url_key("http%3A//www.commoncrawl.org%3A80/")
    'commoncrawl.org/'
    """
    host, rest = _split_key_source(url)
    return host + rest


def surt_urlkey(url: str) -> str:
    """SURT form as the CDX server prints it, e.g. ``com,example)/path``."""
    host, rest = _split_key_source(url)
    port = ""
    if ":" in host:
        host, port = host.rsplit(":", 1)
        port = ":" + port
    surt_host = ",".join(reversed([p for p in host.split(".") if p]))
    return f"{surt_host}{port}){rest}".lower()


def pad_timestamp(ts: str, filler: str = "0") -> str:
    """A partial timestamp padded to 14 digits: to the start of the period (``filler``
    "0"), or to its end (any other filler), as the CDX ``from`` and ``to`` read them."""
    if filler == "0":
        return (ts + "0" * 14)[:14]
    return ts + "99991231235959"[len(ts) :]


def timestamp_seconds(ts: str) -> int:
    """Seconds since the epoch for a (possibly partial or invalid) timestamp."""
    digits = re.sub(r"\D", "", ts)
    t = pad_timestamp(digits)[:14]
    year = max(int(t[0:4]), 1)
    month = min(max(int(t[4:6]), 1), 12)
    day = min(max(int(t[6:8]), 1), calendar.monthrange(year, month)[1])
    hour, minute, sec = min(int(t[8:10]), 23), min(int(t[10:12]), 59), min(int(t[12:14]), 59)
    return calendar.timegm((year, month, day, hour, minute, sec, 0, 0, 0))


def format_http_date(ts: str) -> str:
    """RFC 1123 GMT date of a 14-digit timestamp: ``Fri, 24 Nov 2017 15:13:15 GMT``."""
    return formatdate(timestamp_seconds(ts), usegmt=True)


def now_timestamp() -> str:
    """The current UTC time as 14 digits."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime())


def sha1_base32(data: bytes) -> str:
    """The CDX ``digest`` of a body: base 32 of its SHA-1."""
    return base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def http_reason(status: int) -> str:
    """The standard reason phrase of ``status`` ("Unknown" for a code without one)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def header_get(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (any case), or None."""
    lname = name.lower()
    for k, v in headers:
        if k.lower() == lname:
            return v
    return None


def rewrite_archive_host(value: str, base_url: str) -> str:
    """A recorded Location or Link value pointed at ``base_url`` instead of the archive."""
    for host in ARCHIVE_HOSTS:
        value = value.replace(host, base_url)
    return value.replace("//web.archive.org", "//" + base_url.split("://", 1)[-1])


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


@dataclass
class Reply:
    """An answer to write: status, headers, body and the reason phrase (None: the
    standard one)."""

    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    reason: str | None = None


@dataclass
class Capture:
    """One capture in an archive's index."""

    url: str
    timestamp: str
    status: int = 200
    body: bytes = b""  # as stored (gzip-compressed when gzip_quirk)
    content_type: str | None = "text/html; charset=utf-8"
    location: str | None = None  # archived Location (may be relative to url)
    orig_headers: list[tuple[str, str]] = field(default_factory=list)
    gzip_quirk: bool = False
    replayable: bool = True
    in_cdx: bool = True
    mimetype: str | None = None
    reason: str | None = None
    src: str | None = None
    #: Send ``body`` as stored with this Content-Encoding, whatever the client asked for
    #: (a misbehaving archive: hostile-content tests serve gzip bombs this way).
    content_encoding: str | None = None
    #: The playback path of the recorded response this capture came from, if any.
    recorded_path: str | None = None

    @property
    def key(self) -> str:
        """The index key of the captured URL (:func:`url_key`)."""
        return url_key(self.url)

    @property
    def payload(self) -> bytes:
        """The decoded archived payload."""
        if self.gzip_quirk:
            return gzip.decompress(self.body)
        return self.body

    @property
    def target(self) -> str | None:
        """Absolute archived redirect target."""
        if self.location is None:
            return None
        return urljoin(self.url, self.location)

    def cdx_row(self) -> dict[str, str]:
        """The capture as a CDX row, by field name."""
        mimetype = self.mimetype
        if not mimetype:
            ctype = (self.content_type or "").split(";", 1)[0].strip()
            mimetype = ctype or "unk"
        return {
            "urlkey": surt_urlkey(self.url),
            "timestamp": self.timestamp,
            "original": self.url,
            "mimetype": mimetype,
            "statuscode": str(self.status),
            "digest": sha1_base32(self.body),
            "length": str(len(self.body)),
        }


@dataclass
class RecordedResponse:
    """A real recorded playback response, replayed verbatim."""

    path: str  # /web/... (path + query exactly as requested)
    status: int
    reason: str
    headers: list[tuple[str, str]]  # without Content-Encoding/Transfer-Encoding/Content-Length
    body: bytes  # decoded
    source: str  # recording file, relative to the recordings dir

    @property
    def has_memento_datetime(self) -> bool:
        """True for a memento (a capture), False for the archive's own answers."""
        return header_get(self.headers, "Memento-Datetime") is not None

    def to_json_dict(self) -> dict[str, object]:
        """The response as JSON: the body as text when it is UTF-8, else in base 64."""
        data: dict[str, object] = {
            "source": self.source, "path": self.path, "status": self.status,
            "reason": self.reason, "headers": [list(h) for h in self.headers],
        }
        try:
            data["body"] = self.body.decode("utf-8")
        except UnicodeDecodeError:
            data["body_base64"] = base64.b64encode(self.body).decode("ascii")
        return data

    @classmethod
    def from_json_dict(cls, data: Mapping[str, object]) -> RecordedResponse:
        """The response :meth:`to_json_dict` wrote (KeyError or ValueError if malformed)."""
        body = data.get("body")
        raw = body.encode("utf-8") if isinstance(body, str) else base64.b64decode(
            str(data["body_base64"]), validate=True)
        headers = data["headers"]
        if not isinstance(headers, list):
            raise ValueError("headers: expected a list of [name, value] pairs")
        return cls(
            path=str(data["path"]), status=int(str(data["status"])), reason=str(data["reason"]),
            headers=[(str(k), str(v)) for k, v in headers], body=raw,
            source=str(data["source"]),
        )


def capture_from_recording(rec: RecordedResponse) -> Capture | None:
    """Turn an id_ memento recording into an index capture (None if not a memento)."""
    m = PLAYBACK_RE.match(rec.path[len("/web/") :])
    if not m or (m.group(2) or "") != "id_" or not rec.has_memento_datetime:
        return None
    link = header_get(rec.headers, "Link") or ""
    lm = _LINK_ORIGINAL_RE.search(link)
    url = html.unescape(lm.group(1)) if lm else maybe_unquote(m.group(3))
    location = header_get(rec.headers, "Location")
    if location is not None:
        tm = _WAYBACK_TARGET_RE.match(location)
        if tm:
            location = tm.group(1)
    orig = [
        (k[len("x-archive-orig-") :], v)
        for k, v in rec.headers
        if k.lower().startswith("x-archive-orig-")
    ]
    return Capture(
        url=url,
        timestamp=pad_timestamp(m.group(1)),
        status=rec.status,
        body=rec.body,
        content_type=header_get(rec.headers, "Content-Type"),
        location=location,
        orig_headers=orig,
        reason=rec.reason,
        src=header_get(rec.headers, "x-archive-src"),
        recorded_path=rec.path,
    )


# --------------------------------------------------------------------------------------
# Playback answers that need no capture body
# --------------------------------------------------------------------------------------


def wire_headers(reply: Reply, *, date: str, server: str) -> Headers:
    """The header lines to send for ``reply``: a Date and a Server unless it has its own
    (recorded responses do), its headers without Connection (the server decides that),
    values made safe for the latin-1 header encoding, then the body's Content-Length."""
    names = {k.lower() for k, _ in reply.headers}
    out: Headers = []
    if "date" not in names:
        out.append(("Date", date))
    if "server" not in names:
        out.append(("Server", server))
    for k, v in reply.headers:
        if k.lower() == "connection":
            continue
        v = v.replace("\r", " ").replace("\n", " ")
        try:
            v.encode("latin-1")
        except UnicodeEncodeError:
            v = v.encode("utf-8").decode("latin-1")
        out.append((k, v))
    out.append(("Content-Length", str(len(reply.body))))
    return out


def replay(rec: RecordedResponse, base_url: str) -> Reply:
    """A recorded response as the archive at ``base_url`` sends it: verbatim, with its
    Location and Link pointing at ``base_url``."""
    headers = [
        (k, rewrite_archive_host(v, base_url) if k.lower() in ("location", "link") else v)
        for k, v in rec.headers
    ]
    return Reply(rec.status, headers, rec.body, rec.reason)


def nearest_capture(captures: Iterable[Capture], requested: str | None, original: str
                    ) -> tuple[Capture, bool] | None:
    """The capture playback serves for ``requested`` (1-14 digits; None: now), and whether
    it is exactly the one asked for (same time, same URL) rather than a redirect's target.

    The nearest in time wins, the earlier on a tie, the one of the very URL asked for on a
    second tie. None when there is no capture at all.
    """
    req_ts = pad_timestamp(requested) if requested else now_timestamp()
    req_s = timestamp_seconds(req_ts)
    chosen = min(
        captures,
        key=lambda c: (abs(timestamp_seconds(c.timestamp) - req_s), c.timestamp,
                       c.url != original),
        default=None,
    )
    if chosen is None:
        return None
    return chosen, chosen.timestamp == req_ts and chosen.url == original


def found_redirect(location: str, timestamp: str) -> Reply:
    """The archive pointing at the capture it has (a 302 without ``Memento-Datetime``)."""
    return Reply(
        302,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Location", location),
            ("x-archive-redirect-reason", f"found capture at {timestamp}"),
            ("X-ts", "302"),
        ],
        b"",
        "FOUND",
    )


def archive_page(title: str, inner: str) -> bytes:
    """An HTML page of the archive's own (not a capture), around ``inner``."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
        f"<title>{title}</title>\n</head>\n<body>\n"
        '<div id="positionHome"><section><div id="logoHome"><a href="/web/">'
        '<img src="/_static/images/toolbar/wayback-toolbar-logo-200.png" '
        'alt="logo: Internet Archive\'s Wayback Machine"></a></div></section>\n'
        f'<section><div id="error">\n{inner}\n</div></section></div>\n'
        "</body>\n</html>\n"
    ).encode()


def never_archived(original: str) -> Reply:
    """The archive's 404 for a URL it holds no capture of."""
    esc = html.escape(original)
    body = archive_page(
        "Wayback Machine",
        "<!-- Hrm. The Wayback Machine has not archived that URL. -->\n"
        "<h2>Hrm.</h2>\n<p>The Wayback Machine has not archived that URL.</p>\n"
        "<p>Click here to search for all archived pages under\n"
        f'  <a href="/web/*/{esc}*">{esc}</a>.\n</p>',
    )
    return Reply(404, [("Content-Type", "text/html; charset=utf-8")], body, "NOT FOUND")


def not_found() -> Reply:
    """A plain 404 for a path the archive does not serve."""
    return Reply(
        404,
        [("Content-Type", "text/html; charset=utf-8")],
        b"<html><head><title>404 Not Found</title></head>"
        b"<body><h1>Not Found</h1></body></html>",
    )


__all__ = [
    "ARCHIVE_HOSTS",
    "CDX_FIELDS",
    "PLAYBACK_RE",
    "Capture",
    "Headers",
    "RecordedResponse",
    "Reply",
    "archive_page",
    "capture_from_recording",
    "format_http_date",
    "found_redirect",
    "header_get",
    "http_reason",
    "maybe_unquote",
    "nearest_capture",
    "never_archived",
    "not_found",
    "now_timestamp",
    "pad_timestamp",
    "replay",
    "rewrite_archive_host",
    "sha1_base32",
    "surt_urlkey",
    "timestamp_seconds",
    "url_key",
    "wire_headers",
]
