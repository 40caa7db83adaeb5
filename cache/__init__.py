"""snapcache's storage: records, their freshness and merge rules, and the durable store.

:class:`Store` is the contract every store keeps; :class:`SnapshotCache` (diskcache) is
today's implementation. This package knows nothing of the archive or HTTP; ``snapcache``
uses it, never the reverse.
"""

from .contract import HistoryEntry, JSONValue, Store, StoreStats
from .disk import SafeDisk
from .errors import (
    CacheError,
    DamagedRecordError,
    NotFoundError,
    SnapcacheError,
    StableIdConflictError,
    StoreDamagedError,
    StoreUnavailableError,
    UnsafeCacheEntryError,
    UnsafeLocationError,
)
from .policy import (
    ATTEMPT_FIELDS,
    CAPTURE_FIELDS,
    IDENTITY_FIELDS,
    Freshness,
    MergeResult,
    TTLs,
    freshness,
    holds_capture,
    is_confirmation,
    merge,
)
from .records import FIELD_ORDER, SCHEMA_VERSION, Record, RecordFacts, RecordFormatError, Status
from .store import SnapshotCache, read_ahead, record_facts
from .times import (
    parse_iso,
    parse_timestamp14,
    to_iso,
    to_timestamp14,
    utc_now,
    utc_now_iso,
)

__all__ = [
    "ATTEMPT_FIELDS",
    "CAPTURE_FIELDS",
    "FIELD_ORDER",
    "IDENTITY_FIELDS",
    "SCHEMA_VERSION",
    "CacheError",
    "DamagedRecordError",
    "Freshness",
    "HistoryEntry",
    "JSONValue",
    "MergeResult",
    "NotFoundError",
    "Record",
    "RecordFacts",
    "RecordFormatError",
    "SafeDisk",
    "SnapcacheError",
    "SnapshotCache",
    "StableIdConflictError",
    "Status",
    "Store",
    "StoreDamagedError",
    "StoreStats",
    "StoreUnavailableError",
    "TTLs",
    "UnsafeCacheEntryError",
    "UnsafeLocationError",
    "freshness",
    "holds_capture",
    "is_confirmation",
    "merge",
    "parse_iso",
    "parse_timestamp14",
    "read_ahead",
    "record_facts",
    "to_iso",
    "to_timestamp14",
    "utc_now",
    "utc_now_iso",
]
