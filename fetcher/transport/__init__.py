"""The one place that touches httpx (see :mod:`.client`), with its rate limits
(:mod:`.limits`) and bounded body reading (:mod:`.body`)."""

from .body import FULL, HEAD_BYTES, SPILL_BYTES, BodySink, Inflater, Response, wants_inflate
from .client import FIREWALL_PAUSE_FACTOR, FIREWALL_SUSPECT_FACTOR, Stats, Transport
from .limits import POOLS, RateLimiter, per_host_budgets

__all__ = [
    "FIREWALL_PAUSE_FACTOR",
    "FIREWALL_SUSPECT_FACTOR",
    "FULL",
    "HEAD_BYTES",
    "POOLS",
    "SPILL_BYTES",
    "BodySink",
    "Inflater",
    "RateLimiter",
    "Response",
    "Stats",
    "Transport",
    "per_host_budgets",
    "wants_inflate",
]
