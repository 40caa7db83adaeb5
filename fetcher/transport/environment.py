"""The HTTP client's network settings from the environment: proxies and CA certificates.

The client is built with ``trust_env=False`` so that nothing is picked up implicitly (above
all not ``~/.netrc``, whose passwords httpx would send as Basic auth). What a machine behind
a proxy needs is read here, explicitly, and handed to httpx:

* ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` (lower-case names too, and they win, as in
  curl and urllib): the proxy for ``https://``, ``http://`` or every URL; an ``http://`` or
  ``https://`` proxy URL, which may carry ``user:pass@`` for the proxy's own login.
* ``NO_PROXY``: comma-separated hosts, domains (``example.org`` also covers its subdomains),
  IP addresses, ``localhost`` or ``*``, reached directly. Nothing bypasses the proxy unless
  listed here: not even 127.0.0.1.
* ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``: the CA certificates to trust instead of certifi's
  bundle (both may be set).

A variable that cannot be used is a :class:`~snapcache.errors.ConfigError` naming it.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx

from ..config import Config
from ..errors import ConfigError

#: The proxy variables, per httpx mount pattern, in the order they are read.
PROXY_VARIABLES: Final = (("http://", "HTTP_PROXY"), ("https://", "HTTPS_PROXY"),
                          ("all://", "ALL_PROXY"))
NO_PROXY: Final = "NO_PROXY"
CA_FILE: Final = "SSL_CERT_FILE"
CA_DIR: Final = "SSL_CERT_DIR"


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """What the environment asks of the HTTP client."""

    #: httpx mount pattern (``http://``, ``all://127.0.0.1`` …) to a proxy URL, or to
    #: None for a host reached directly.
    proxies: Mapping[str, str | None]
    #: The CA certificates to verify with: ``True`` for certifi's bundle.
    verify: ssl.SSLContext | bool


def _variable(environ: Mapping[str, str], name: str) -> tuple[str, str]:
    """``(name as set, value)`` of an environment variable, the lower-case name first."""
    for spelling in (name.lower(), name):
        value = environ.get(spelling, "").strip()
        if value:
            return spelling, value
    return name, ""


def _proxy_url(variable: str, value: str) -> str:
    url = value if "://" in value else f"http://{value}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is out of range
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        # Not echoed: a proxy URL may hold the proxy's password.
        raise ConfigError(
            f"${variable}: expected an http:// or https:// proxy URL (the value is not shown)"
        )
    return url


def _bypass_pattern(host: str) -> str:
    """The httpx mount pattern for one ``NO_PROXY`` entry (curl's rules, as httpx reads
    them when it trusts the environment)."""
    if "://" in host:
        return host
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address):
        return f"all://[{address}]"
    if address is not None or host.lower() == "localhost":
        return f"all://{host}"
    # "example.org" covers example.org and its subdomains, ".example.org" only those.
    return f"all://*{host}"


def proxy_mounts(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The proxies the environment asks for, as httpx mount patterns (see the module
    docstring). Empty when no proxy is set or ``NO_PROXY`` is ``*``."""
    mounts: dict[str, str | None] = {}
    for pattern, name in PROXY_VARIABLES:
        variable, value = _variable(environ, name)
        if value:
            mounts[pattern] = _proxy_url(variable, value)
    if not mounts:
        return mounts
    _, no_proxy = _variable(environ, NO_PROXY)
    for entry in (h.strip() for h in no_proxy.split(",")):
        if entry == "*":
            return {}
        if entry:
            mounts[_bypass_pattern(entry)] = None
    return mounts


def ca_context(environ: Mapping[str, str]) -> ssl.SSLContext | bool:
    """An SSL context trusting ``$SSL_CERT_FILE`` and/or ``$SSL_CERT_DIR``, or ``True``
    (certifi's bundle, httpx's default) when neither is set."""
    _, cafile = _variable(environ, CA_FILE)
    _, capath = _variable(environ, CA_DIR)
    if not cafile and not capath:
        return True
    names = " and ".join(f"${n}" for n, v in ((CA_FILE, cafile), (CA_DIR, capath)) if v)
    try:
        return ssl.create_default_context(cafile=cafile or None, capath=capath or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{names}: cannot load CA certificates: {exc}") from exc


def network_settings(environ: Mapping[str, str] | None = None) -> NetworkSettings:
    """Read the proxy and CA variables (from ``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    return NetworkSettings(proxies=proxy_mounts(env), verify=ca_context(env))


def build_client(config: Config, environ: Mapping[str, str] | None = None
                 ) -> httpx.AsyncClient:
    """The HTTP client a :class:`~snapcache.transport.Transport` uses: no redirects followed,
    the configured timeouts and User-Agent, identity encoding, and the environment's proxies
    and CA certificates (never ``.netrc``)."""
    settings = network_settings(environ)
    a = config.archive
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=8)
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for pattern, proxy in settings.proxies.items():
        # A mount has its own connection pool: it gets the same limits and certificates.
        mounts[pattern] = None if proxy is None else httpx.AsyncHTTPTransport(
            proxy=httpx.Proxy(proxy), verify=settings.verify, limits=limits,
        )
    try:
        return httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(a.read_timeout, connect=a.connect_timeout),
            headers={"User-Agent": a.user_agent, "Accept-Encoding": "identity"},
            limits=limits,
            verify=settings.verify,
            mounts=mounts,
            trust_env=False,
        )
    except ValueError as exc:  # httpx.InvalidURL too: a NO_PROXY entry it cannot read
        raise ConfigError(f"${NO_PROXY}: cannot use an entry: {exc}") from exc
