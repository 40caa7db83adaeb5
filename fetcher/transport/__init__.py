"""The one place that touches httpx, in four parts:

* :mod:`.client`: :class:`Transport`, which sends each request on a declared :class:`Pool`
  to an allowed archive host, reads the body, pauses on 429s and firewall blocks, retries;
  :func:`wait_at_most` bounds, per task, how long a request waits for its turn;
* :mod:`.limits`: the rate limits every process shares (:class:`RateLimiter`, the Save
  Page Now :class:`DailyBudget`), and the paths each :class:`Pool` may request
  (:class:`PathRule`); :mod:`.state` the interface of where they are kept
  (:class:`LimiterState`), :mod:`.statefile` the SQLite file that keeps them on one machine
  (a PostgreSQL state for several machines is :mod:`snapcache.pglimits`);
* :mod:`.body`: bounded body reading (:class:`Response`);
* :mod:`.environment`: the client itself (:func:`build_client`), with the proxies and CA
  certificates the environment names (``HTTPS_PROXY``, ``NO_PROXY``, ``SSL_CERT_FILE`` …).
"""

from .body import (
    FULL,
    HEAD_BYTES,
    SPILL_BYTES,
    BodySink,
    Inflater,
    Response,
    read_body,
    wants_inflate,
)
from .client import (
    FIREWALL_PAUSE_FACTOR,
    FIREWALL_SUSPECT_FACTOR,
    Deadline,
    Stats,
    Transport,
    TransportStats,
    WantBody,
    url_deadline,
    wait_at_most,
)
from .environment import NetworkSettings, build_client, network_settings
from .limits import (
    DailyBudget,
    PathRule,
    Pool,
    PoolState,
    RateLimiter,
    Take,
    as_pool,
    cdx_endpoint,
    per_host_budgets,
    replay_prefix,
    take_token,
)
from .state import BucketRow, LimiterState, StateChange
from .statefile import SqliteLimiterState, StateFile

__all__ = [
    "FIREWALL_PAUSE_FACTOR",
    "FIREWALL_SUSPECT_FACTOR",
    "FULL",
    "HEAD_BYTES",
    "SPILL_BYTES",
    "BodySink",
    "BucketRow",
    "DailyBudget",
    "Deadline",
    "Inflater",
    "LimiterState",
    "NetworkSettings",
    "PathRule",
    "Pool",
    "PoolState",
    "RateLimiter",
    "Response",
    "SqliteLimiterState",
    "StateChange",
    "StateFile",
    "Stats",
    "Take",
    "Transport",
    "TransportStats",
    "WantBody",
    "as_pool",
    "build_client",
    "cdx_endpoint",
    "network_settings",
    "per_host_budgets",
    "read_body",
    "replay_prefix",
    "take_token",
    "url_deadline",
    "wait_at_most",
    "wants_inflate",
]
