"""Proxies and CA certificates from the environment, against a real forward proxy on loopback.

The proxy below is a small HTTP/1.1 forward proxy: it takes absolute-URI requests
(``GET http://127.0.0.1:PORT/web/... HTTP/1.1``), remembers each, and relays it to the
loopback emulator. Nothing bypasses a proxy by default, 127.0.0.1 included, so requests to the
emulator go through it unless ``NO_PROXY`` names the host.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from snapcache import ConfigError, Fetcher
from snapcache.errors import TransientError
from snapcache.transport import FULL, Pool, Transport, network_settings
from snapcache.transport.environment import proxy_mounts

from tests.conftest import emulator_config
from tests.docgen import NTIA_TS, NTIA_URL, ntia_pdf
from tests.test_cli import snapcache_exe, write_config

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te",
              "trailer", "transfer-encoding", "upgrade"}


@dataclass
class Seen:
    """One request the proxy relayed."""

    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append(Seen(self.command, self.path, headers))
        parts = urlsplit(self.path)
        if parts.scheme != "http" or parts.hostname != "127.0.0.1":
            # An origin-form request, or anything but the loopback emulator: refuse.
            self.send_error(400, "absolute http://127.0.0.1 URIs only")
            return
        upstream = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=20)
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            forward = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(self.command, path or "/", body=body, headers=forward)
            response = upstream.getresponse()
            data = response.read()
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Via", "1.1 test-proxy")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = _relay
    do_POST = _relay
    do_HEAD = _relay


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[Seen]


@pytest.fixture
def proxy() -> Iterator[_ProxyServer]:
    server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def proxy_url(server: _ProxyServer, userinfo: str = "") -> str:
    return f"http://{userinfo}127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def archived(emulator: Any) -> Any:
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type="application/pdf")
    return emulator


def fetch_once(tmp_path: Path, emulator: Any) -> str:
    with Fetcher(emulator_config(tmp_path, emulator.base_url)) as f:
        record = f.fetch(NTIA_URL, force=True)
    return record.status


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_requests_go_through_the_proxy_the_environment_names(
    tmp_path: Path, archived: Any, proxy: _ProxyServer, variable: str,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, proxy_url(proxy))
    assert fetch_once(tmp_path, archived) == "ok"
    assert proxy.seen, "no request went through the proxy"
    assert all(s.target.startswith(f"{archived.base_url}/") for s in proxy.seen)
    assert any(s.target.startswith(f"{archived.base_url}/web/") for s in proxy.seen)
    assert sum(archived.counts.values()) == len(proxy.seen)


def test_no_proxy_bypasses_the_proxy(
    tmp_path: Path, archived: Any, proxy: _ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy_url(proxy))
    for no_proxy in ("127.0.0.1", "example.org, 127.0.0.1", "*"):
        monkeypatch.setenv("NO_PROXY", no_proxy)
        assert fetch_once(tmp_path, archived) == "ok"
        assert proxy.seen == [], no_proxy
    monkeypatch.setenv("NO_PROXY", "example.org")  # another host: still proxied
    assert fetch_once(tmp_path, archived) == "ok"
    assert proxy.seen


def test_an_https_proxy_variable_is_not_used_for_http(
    tmp_path: Path, archived: Any, proxy: _ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy_url(proxy))
    assert fetch_once(tmp_path, archived) == "ok"
    assert proxy.seen == []
    assert proxy_mounts({"HTTPS_PROXY": "proxy.example:3128"}) == {
        "https://": "http://proxy.example:3128"}


def test_the_command_uses_the_proxy_with_its_login_and_never_netrc(
    tmp_path: Path, archived: Any, proxy: _ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login wiki password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", proxy_url(proxy, "pxuser:px-secret@"))
    cfg = write_config(tmp_path, archived.base_url)
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), "fetch", "--json", NTIA_URL],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert proxy.seen
    for seen in proxy.seen:
        # Basic pxuser:px-secret, for the proxy only; nothing from .netrc.
        assert seen.headers.get("proxy-authorization") == "Basic cHh1c2VyOnB4LXNlY3JldA=="
        assert "authorization" not in seen.headers
    assert "px-secret" not in out.stdout + out.stderr


def test_an_unusable_proxy_variable_is_a_config_error_that_hides_its_value(
    tmp_path: Path, archived: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:pw-secret@127.0.0.1:1080")
    with pytest.raises(ConfigError, match=r"\$HTTPS_PROXY") as info:
        Transport(emulator_config(tmp_path, archived.base_url))
    assert "pw-secret" not in str(info.value)
    cfg = write_config(tmp_path, archived.base_url)
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), "fetch", NTIA_URL],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 2 and "$HTTPS_PROXY" in out.stderr
    assert "pw-secret" not in out.stderr
    assert sum(archived.counts.values()) == 0


# --- CA certificates ---------------------------------------------------------------------


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate made for the test."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


def _get(tmp_path: Path, url: str) -> int:
    """One request through a :class:`Transport`, as the engine sends them."""

    async def get() -> int:
        transport = Transport(emulator_config(tmp_path, url, retry={"max_attempts": 1}))
        try:
            # A replay path: the playback pool may ask for nothing else.
            replay = f"{url}/web/20200101000000id_/https://a.example/"
            response = await transport.request("GET", replay, Pool.PLAYBACK,
                                               want_body=lambda s, h: FULL)
            response.discard()
            return response.status
        finally:
            await transport.aclose()

    return asyncio.run(get())


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_ca_certificates_come_from_ssl_cert_file_or_dir(
    tls_server: tuple[str, Path], variable: str, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path
) -> None:
    url, cert = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(tmp_path, url)  # certifi's bundle does not know the test's certificate
    if variable == "SSL_CERT_FILE":
        monkeypatch.setenv(variable, str(cert))
    else:
        # A c_rehash-style folder: the certificate under its subject hash.
        folder = tmp_path / "certs"
        folder.mkdir()
        digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(cert)],
                                check=True, capture_output=True, text=True).stdout.strip()
        shutil.copy(cert, folder / f"{digest}.0")
        monkeypatch.setenv(variable, str(folder))
    assert _get(tmp_path, url) == 200


def test_an_unreadable_ca_file_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\$SSL_CERT_FILE: cannot load CA certificates"):
        network_settings({"SSL_CERT_FILE": str(tmp_path / "missing.pem")})
    assert network_settings({}).verify is True
    assert network_settings({}).proxies == {}
