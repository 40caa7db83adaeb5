"""The two peers, pointed at the loopback emulator, each used the way its docs suggest for
"newest good capture of this URL, then its raw bytes".

Both hard-code the Internet Archive's hosts. They are redirected here at run time, in this
process only, by replacing module constants / instance attributes (nothing on disk changes):

* edgi ``wayback`` 0.5.x: ``wayback._client.CDX_SEARCH_URL`` (the CDX endpoint),
  ``wayback._utils.MEMENTO_URL_TEMPLATE`` (how memento URLs are built) and
  ``wayback._utils.MEMENTO_URL_PATTERN`` (how memento URLs are parsed, also on redirects).
* ``waybackpy`` 3.x: ``WaybackMachineCDXServerAPI.__init__`` is wrapped to set
  ``self.endpoint`` (its CDX URL, assigned in ``__init__``) to the emulator's. The
  snapshot's ``archive_url`` is built on ``web.archive.org``, so the raw ``id_`` URL is
  made from ``timestamp`` + ``original`` on the emulator instead (what a user would do to
  get raw bytes anyway).

Every outcome is mapped to snapcache's words: ``ok`` (a 2xx capture's bytes in hand),
``not_archived`` (the tool says there is no such capture) or ``error`` (anything raised).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

UA = "snapcache-bench/0.1 (loopback benchmark)"
_ID_TS = re.compile(r"/web/(\d{14})id_/")


@dataclass(slots=True)
class Result:
    outcome: str
    capture: str | None = None
    size: int = 0
    error: str | None = None


def patch_edgi(base_url: str) -> None:
    import wayback._client as client
    import wayback._utils as utils

    client.CDX_SEARCH_URL = f"{base_url}/cdx/search/cdx"
    utils.MEMENTO_URL_TEMPLATE = base_url + "/web/{timestamp}{mode}/{url}"
    utils.MEMENTO_URL_PATTERN = re.compile(
        r"^" + re.escape(base_url) + r"/web/(\d+)(\w\w_)?/(.+)$"
    )


def patch_waybackpy(base_url: str) -> None:
    """Point waybackpy's CDX class at the emulator (it sets ``self.endpoint`` in
    ``__init__``). Its filters go out as ``filter=`` (``cdx_utils.full_url`` renames its
    ``filter0``, ``filter1`` keys), so the status filter is applied as on the real CDX."""
    import waybackpy.cdx_api as cdx_api

    cls = cdx_api.WaybackMachineCDXServerAPI
    original_init = getattr(cls, "_bench_original_init", cls.__init__)
    cls._bench_original_init = original_init  # type: ignore[attr-defined]

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.endpoint = f"{base_url}/cdx/search/cdx"

    cls.__init__ = init  # type: ignore[method-assign]


def edgi_runner(base_url: str, cdx_per_second: float, memento_per_second: float
                ) -> tuple[Callable[[str], Result], Callable[[], None]]:
    """One WaybackClient per worker thread (sessions are not shared across threads); the
    RateLimit objects are shared, as edgi's docs recommend for several sessions."""
    import threading

    import wayback
    from wayback import RateLimit, WaybackClient, WaybackSession
    from wayback.exceptions import NoMementoError

    patch_edgi(base_url)
    cdx_limit = RateLimit(cdx_per_second)
    memento_limit = RateLimit(memento_per_second)
    local = threading.local()
    clients: list[Any] = []

    def client() -> Any:
        c = getattr(local, "client", None)
        if c is None:
            c = WaybackClient(WaybackSession(
                user_agent=UA,
                search_calls_per_second=cdx_limit,
                memento_calls_per_second=memento_limit,
                timeout=20,
            ))
            local.client = c
            clients.append(c)
        return c

    def one(url: str) -> Result:
        c = client()
        try:
            # The natural "newest good capture": filter the search to 200s, take the last
            # row (rows come oldest first), then fetch that memento in original (id_) mode.
            newest = None
            for row in c.search(url, filter_field="statuscode:200"):
                newest = row
            if newest is None:
                return Result("not_archived")
            memento = c.get_memento(newest, mode=wayback.Mode.original)
            with memento:
                body = memento.content
                ts = memento.timestamp.strftime("%Y%m%d%H%M%S")
                if 200 <= memento.status_code < 300:
                    return Result("ok", ts, len(body))
                return Result("archived_error", ts, len(body))
        except NoMementoError:
            return Result("not_archived")
        except Exception as exc:
            return Result("error", error=f"{type(exc).__name__}: {exc}"[:200])

    def close() -> None:
        for c in clients:
            c.close()

    return one, close


def waybackpy_runner(base_url: str, *,
                     pace: tuple[float, float] | None = None,
                     ) -> tuple[Callable[[str], Result], Callable[[], None]]:
    """``pace`` (CDX, playback calls per second): a limiter the user adds around the calls
    (waybackpy has none of its own). A followed redirect is not paced: requests follows it
    inside one ``get``."""
    from wayback import RateLimit
    from waybackpy import WaybackMachineCDXServerAPI
    from waybackpy.exceptions import NoCDXRecordFound

    patch_waybackpy(base_url)
    cdx_limit = RateLimit(pace[0] if pace else 0)
    get_limit = RateLimit(pace[1] if pace else 0)

    def one(url: str) -> Result:
        try:
            cdx_limit.wait()
            cdx = WaybackMachineCDXServerAPI(url, user_agent=UA, filters=["statuscode:200"])
            snap = cdx.newest()
        except NoCDXRecordFound:
            return Result("not_archived")
        except Exception as exc:
            return Result("error", error=f"{type(exc).__name__}: {exc}"[:200])
        raw = f"{base_url}/web/{snap.timestamp}id_/{snap.original}"
        try:
            get_limit.wait()
            # requests follows redirects by default, as a user's plain requests.get does.
            resp = requests.get(raw, headers={"User-Agent": UA}, timeout=20)
        except Exception as exc:
            return Result("error", error=f"{type(exc).__name__}: {exc}"[:200])
        m = _ID_TS.search(resp.url)
        ts = m.group(1) if m else snap.timestamp
        if resp.status_code == 429 and "memento-datetime" not in resp.headers:
            return Result("error", error="HTTP 429 from the archive")
        if "memento-datetime" not in resp.headers:
            return Result("error", error=f"HTTP {resp.status_code} without a memento")
        if 200 <= resp.status_code < 300:
            return Result("ok", ts, len(resp.content))
        return Result("archived_error", ts, len(resp.content))

    return one, lambda: None


def run_threads(one: Callable[[str], Result], urls: list[str], workers: int) -> list[Result]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, urls))
