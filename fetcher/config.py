"""Configuration: TOML loading, built-in defaults, validation.

Lookup order: an explicit path (``--config``; ``/dev/null`` means the built-in defaults),
then ``$SNAPCACHE_CONFIG``, then ``config.toml`` in the user config dir
(``~/.config/snapcache/config.toml`` on Linux), then built-in defaults. A ``config.toml`` in
the working directory is never read on its own: cron runs snapcache inside a website's folder,
where that name usually belongs to something else. Every key has a default; an unknown key or
a value of the wrong type or range is a :class:`ConfigError` that names the key. A deprecated
key (``rates.availability_per_minute``) is ignored with a ``FutureWarning`` that names it.

The save keys are secrets: they are stripped of surrounding whitespace and refused (by name,
never echoed) when they hold control characters (:mod:`snapcache.credentials`), and
:meth:`SaveConfig.secrets` lists them for :func:`~snapcache.credentials.redact`.
"""

from __future__ import annotations

import math
import os
import shlex
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

import platformdirs

from .capture import netloc_of
from .credentials import clean_secret, known_secrets, resolve_save_keys
from .errors import ConfigError
from .extract import DEFAULT_WORKERS, ExtractLimits
from .serve_config import ServeConfig as ServeConfig

# The Internet Archive's hard limits are 30 CDX and 600 playback requests per minute per IP
# (edgi-govdata-archiving/wayback#206, _client.py); its staff asked clients to stay at 80%.
DEFAULT_CDX_PER_MINUTE: Final = 0.8 * 30
DEFAULT_PLAYBACK_PER_MINUTE: Final = 0.8 * 600
# 429s carry no Retry-After; ignoring them for a minute gets the IP firewalled for an hour
# (edgi-govdata-archiving/wayback#137). Pause at least that long.
DEFAULT_PAUSE_ON_429: Final = 60.0

#: A budget meaning "no limit" (a pywb archive you run yourself needs none by default).
UNLIMITED: Final = math.inf

Dialect = Literal["ia", "pywb"]
"""How an archive speaks: ``ia`` (the Internet Archive's ``/web/`` replay and
``/cdx/search/cdx``) or ``pywb`` (``/{collection}/`` replay and ``/{collection}/cdx``)."""
DIALECTS: Final[tuple[str, ...]] = ("ia", "pywb")

ENV_CONFIG: Final = "SNAPCACHE_CONFIG"
APP_NAME: Final = "snapcache"


class LegacyStoreWarning(UserWarning):
    """The store is still at its earlier default location, in the user *cache* dir (which
    cache cleaners may empty). It is used where it is; the message says how to move it."""


@dataclass(frozen=True, slots=True)
class ArchiveConfig:
    """The primary archive (tried first) and the connection settings every archive shares."""

    #: The name records carry in their ``archive`` field.
    name: str = "ia"
    base_url: str = "https://web.archive.org"
    dialect: str = "ia"
    #: The pywb collection (required for the pywb dialect, unused for ia).
    collection: str = ""
    availability_url: str = "https://archive.org/wayback/available"
    user_agent: str = "snapcache/0.1 (+https://github.com/snapcache/snapcache)"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: Wall-clock bound on one HTTP exchange, body included.
    request_timeout: float = 180.0
    max_redirects: int = 10
    max_body_bytes: int = 100_000_000
    #: CDX answers are cut here: the queries ask for ten rows (a few KB), so a larger
    #: answer is junk or an attack, and is never read whole (see snapcache.cdx).
    max_cdx_bytes: int = 4_000_000
    #: Seconds one URL may spend on all its requests and hops, retries included (waiting
    #: for a rate token or a 429 pause does not count); past it the attempt is an error.
    url_deadline: float = 300.0
    #: After playback says "never archived", confirm with one CDX query. The archive's
    #: playback and CDX read the same index, so this rarely finds anything; turning it off
    #: saves a CDX request (the scarce 24/min budget) per unarchived URL.
    confirm_not_archived: bool = True
    #: Extra hosts (``host`` or ``host:port``) that may be contacted besides base_url's.
    extra_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One archive of the fallback chain, resolved: where it is, how it speaks, its budgets.

    A budget of :data:`UNLIMITED` means no limit.
    """

    name: str
    base_url: str
    dialect: Dialect = "ia"
    collection: str = ""
    cdx_per_minute: float = DEFAULT_CDX_PER_MINUTE
    playback_per_minute: float = DEFAULT_PLAYBACK_PER_MINUTE

    @property
    def netloc(self) -> str:
        """``host[:port]`` of the archive, lower case."""
        return netloc_of(self.base_url)


@dataclass(frozen=True, slots=True)
class RatesConfig:
    """Per-pool request budgets, shared by every process using the same state file."""

    cdx_per_minute: float = DEFAULT_CDX_PER_MINUTE
    playback_per_minute: float = DEFAULT_PLAYBACK_PER_MINUTE
    pause_on_429: float = DEFAULT_PAUSE_ON_429
    #: Longest a single request waits for a token or a 429 pause before giving up.
    max_wait: float = 600.0
    #: SQLite file holding the shared buckets. Empty: the user cache dir's ratelimit.sqlite.
    state_path: str = ""
    #: Who shares the per-IP budgets (cdx, playback) when they live in PostgreSQL (the
    #: postgres store): "global", every host using the database (hosts behind one NAT
    #: share the archive's per-IP budget), or "host", each host its own, keyed by host name.
    scope: str = "global"


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Bounds on retrying transient failures (exponential backoff with jitter)."""

    max_attempts: int = 4
    initial_backoff: float = 2.0
    max_backoff: float = 60.0
    max_total_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """Where records live and how long each outcome stays fresh."""

    path: str = ""
    ttl_ok_days: float = 30.0
    ttl_blocked_days: float = 30.0
    ttl_not_archived_days: float = 7.0
    ttl_archived_error_days: float = 7.0
    ttl_error_hours: float = 1.0
    history_limit: int = 20
    #: Where records live: "diskcache" (the folder ``path``) or "postgres" (``dsn``).
    backend: str = "diskcache"
    #: The PostgreSQL connection string when ``backend`` is "postgres"; empty: read
    #: $SNAPCACHE_DSN when the store is opened. May hold a password: hidden from repr().
    dsn: str = field(default="", repr=False)


# The extractor owns the defaults of its bounds; the [preview] section starts from them.
_EXTRACT_DEFAULTS: Final = ExtractLimits()


@dataclass(frozen=True, slots=True)
class PreviewConfig:
    """Bounds on text extraction (defaults: :class:`~snapcache.extract.ExtractLimits`)."""

    max_chars: int = _EXTRACT_DEFAULTS.preview_chars
    max_text_chars: int = _EXTRACT_DEFAULTS.text_chars
    pdf_max_pages: int = _EXTRACT_DEFAULTS.pdf_max_pages
    pdf_max_seconds: float = _EXTRACT_DEFAULTS.pdf_max_seconds
    html_max_bytes: int = _EXTRACT_DEFAULTS.html_max_bytes
    #: Address space of each extraction worker, MB: a document needing more is stopped.
    max_memory_mb: int = _EXTRACT_DEFAULTS.max_memory_mb
    #: Wall clock per document, seconds (at least pdf_max_seconds + 5): the worker is killed.
    max_seconds: float = _EXTRACT_DEFAULTS.max_seconds
    #: Extraction worker processes (documents extracted at once).
    workers: int = DEFAULT_WORKERS

    def extract_limits(self) -> ExtractLimits:
        """The extraction bounds this section configures."""
        return ExtractLimits(
            preview_chars=self.max_chars,
            text_chars=self.max_text_chars,
            pdf_max_pages=self.pdf_max_pages,
            pdf_max_seconds=self.pdf_max_seconds,
            html_max_bytes=self.html_max_bytes,
            max_memory_mb=self.max_memory_mb,
            max_seconds=self.max_seconds,
        )


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Batch runs (``snapcache run``)."""

    concurrency: int = 4
    #: A pool paused longer than this defers the rest of the run (exit 75), seconds.
    max_wait: float = 600.0
    #: This many URLs failing in a row (an outage) defer the rest instead of hammering.
    circuit_breaker: int = 8


@dataclass(frozen=True, slots=True)
class SaveConfig:
    """Save Page Now 2: asking the archive to capture what it lacks. Off by default."""

    enabled: bool = False
    #: S3-style keys from archive.org/account/s3.php. Empty: read
    #: $SNAPCACHE_SAVE_ACCESS_KEY / $SNAPCACHE_SAVE_SECRET_KEY when a save is made.
    #: Never logged, never stored in records or exports, hidden from repr().
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    #: Ask the archive not to recapture when it holds a capture this recent (days).
    if_not_archived_within_days: float = 30.0
    # The archive allows 7 captures a minute and 30,000 a day to an authenticated account
    # (SPN2 docs, 2026); stay below both.
    per_minute: float = 5.0
    per_day: int = 25000
    #: Seconds between status polls, and the most a run spends polling one job.
    poll_interval: float = 5.0
    poll_budget: float = 120.0

    def keys(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """The keys ``(access, secret)`` a save sends: each from this section, else from
        its environment variable; stripped and checked (a :class:`ConfigError` names the key
        or variable, never the value). A key set nowhere is ``""``."""
        return resolve_save_keys(self.access_key, self.secret_key, environ)

    def secrets(self, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """Every value a save could send as a key, for :func:`~snapcache.credentials.redact`
        (never raises)."""
        return known_secrets(self.access_key, self.secret_key, environ)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. Build it with :func:`load_config` or directly."""

    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    rates: RatesConfig = field(default_factory=RatesConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)
    #: The ``[[archives]]`` entries, tried in order after the primary ``[archive]``.
    archives: tuple[ArchiveEntry, ...] = ()
    run: RunConfig = field(default_factory=RunConfig)
    save: SaveConfig = field(default_factory=SaveConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    #: Where the values came from, for messages ("built-in defaults" or a path).
    source: str = "built-in defaults"

    @property
    def cache_path(self) -> Path:
        """The store's directory: ``[cache] path``, else the platform's user data dir
        (:func:`default_store_path`). A store left at the old default in the user cache dir
        (:func:`legacy_store_path`) is used where it is, with a :class:`LegacyStoreWarning`
        saying how to move it (shown once per process under Python's default filters)."""
        if self.cache.path:
            return Path(self.cache.path).expanduser()
        note = legacy_store_note(self)
        if note is not None:
            # stacklevel=1: one warning location, so the default filter shows it once
            # however many places ask for the path.
            warnings.warn(note, LegacyStoreWarning, stacklevel=1)
            return legacy_store_path()
        return default_store_path()

    @property
    def rate_state_path(self) -> Path:
        """The shared rate-limit state file (machine-wide per user by default)."""
        if self.rates.state_path:
            return Path(self.rates.state_path).expanduser()
        return Path(platformdirs.user_cache_dir(APP_NAME)) / "ratelimit.sqlite"

    @property
    def primary(self) -> ArchiveEntry:
        """The ``[archive]`` table as an entry of the chain; its budgets are ``[rates]``."""
        a = self.archive
        return ArchiveEntry(
            name=a.name,
            base_url=a.base_url,
            dialect=cast(Dialect, a.dialect),
            collection=a.collection,
            cdx_per_minute=self.rates.cdx_per_minute,
            playback_per_minute=self.rates.playback_per_minute,
        )

    @property
    def chain(self) -> tuple[ArchiveEntry, ...]:
        """Every archive in the order they are tried: ``[archive]``, then ``[[archives]]``."""
        return (self.primary, *self.archives)

    @property
    def primary_hosts(self) -> frozenset[str]:
        """The primary archive's hosts: base_url's, availability_url's and extra_hosts."""
        hosts = {netloc_of(self.archive.base_url), netloc_of(self.archive.availability_url)}
        hosts.update(h.lower() for h in self.archive.extra_hosts)
        return frozenset(hosts)

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Network locations (``host[:port]``, lower case) snapcache may contact: those of
        every configured archive."""
        return self.primary_hosts | {entry.netloc for entry in self.archives}


def default_store_path() -> Path:
    """Where records live by default: ``store`` in the user data dir
    (``~/.local/share/snapcache/store`` on Linux). Records are durable (stable IDs are
    never re-minted), so they do not belong in a cache dir that cleaners empty."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "store"


def legacy_store_path() -> Path:
    """The default store of earlier versions: ``store`` in the user cache dir."""
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "store"


def legacy_store_note(config: Config) -> str | None:
    """One line saying how to move a store found at the old default location, or None.

    Only for a configuration that leaves ``[cache] path`` empty, when the new default holds
    no store yet and the old one does: that store is used where it is, so that no stable ID
    is lost by upgrading.
    """
    if config.cache.path:
        return None
    new, old = default_store_path(), legacy_store_path()
    # diskcache's database marks a store; an empty folder has nothing to keep.
    if (new / "cache.db").exists() or not (old / "cache.db").is_file():
        return None
    return (
        f"using the store at its old location {old}, a cache directory that cache cleaners "
        f"may empty; move it (with no run in progress): mkdir -p {shlex.quote(str(new.parent))}"
        f" && mv {shlex.quote(str(old))} {shlex.quote(str(new))} (or set [cache] path)"
    )


_SECTIONS: Final[dict[str, type[Any]]] = {
    "archive": ArchiveConfig,
    "rates": RatesConfig,
    "retry": RetryConfig,
    "cache": CacheConfig,
    "preview": PreviewConfig,
    "run": RunConfig,
    "save": SaveConfig,
    "serve": ServeConfig,
}

# Keys still accepted so that older configuration files load, but ignored: each warns
# (a FutureWarning, the category Python shows to end users) with why it no longer counts.
_DEPRECATED: Final[dict[tuple[str, str], str]] = {
    ("rates", "availability_per_minute"): (
        "the availability API is never called (playback answers the same question), so its "
        "pool and budget were removed; delete the key"
    ),
}

# Keys whose value must be > 0 (the rest of the numbers must be >= 0).
_POSITIVE: Final = frozenset(
    {
        "connect_timeout",
        "read_timeout",
        "request_timeout",
        "max_body_bytes",
        "max_cdx_bytes",
        "url_deadline",
        "cdx_per_minute",
        "playback_per_minute",
        "max_attempts",
        "max_chars",
        "max_text_chars",
        "pdf_max_pages",
        "pdf_max_seconds",
        "html_max_bytes",
        "max_memory_mb",
        "max_seconds",
        "workers",
        "history_limit",
        "concurrency",
        "circuit_breaker",
        "per_minute",
        "per_day",
        "poll_interval",
    }
)


# Keys holding secrets: never echoed in a message, stripped and checked by clean_secret().
_SECRET_KEYS: Final = frozenset({("save", "access_key"), ("save", "secret_key")})


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    name = f"{section}.{key}"
    if (section, key) in _SECRET_KEYS:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string (the value is not shown)")
        return clean_secret(name, value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
    elif isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name}: expected a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{name}: must be a finite number")
        if key in _POSITIVE and value <= 0:
            raise ConfigError(f"{name}: must be greater than 0, got {value!r}")
        if value < 0:
            raise ConfigError(f"{name}: must not be negative, got {value!r}")
    return value


def _check_url(name: str, url: str) -> None:
    """An http(s) URL of an archive: no credentials, query, fragment or whitespace (they
    would be copied into every archive_url, raw_url, redirect, export and card)."""
    # Checked first, and the URL then never echoed: it may hold a password.
    if "@" in url:
        raise ConfigError(
            f"{name}: must not contain '@' (a user name or password, user:pass@host); the URL "
            "is not shown. Archive URLs are copied into every record"
        )
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ConfigError(f"{name}: must not contain whitespace or control characters, "
                          f"got {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is out of range or no number
    except ValueError as exc:
        raise ConfigError(f"{name}: not a valid URL ({exc}): {url!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}: expected an http(s) URL, got {url!r}")
    if "?" in url or "#" in url:
        raise ConfigError(f"{name}: must not contain a query (?) or fragment (#), got {url!r}")


def config_from_mapping(data: Mapping[str, Any], *, source: str = "mapping") -> Config:
    """Validate a parsed TOML document (or any mapping) into a :class:`Config`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the configuration must be a table")
    built: dict[str, Any] = {}
    for section, value in data.items():
        if section == "archives":
            built["archives"] = _archive_entries(value, source)
            continue
        if section not in _SECTIONS:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(
                f"{source}: unknown section [{section}] (known: {known}, [[archives]])"
            )
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table")
        cls = _SECTIONS[section]
        defaults = cls()
        known_keys = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, item in value.items():
            if (section, key) in _DEPRECATED:
                warnings.warn(
                    f"{source}: {section}.{key} is deprecated and ignored: "
                    f"{_DEPRECATED[section, key]}",
                    FutureWarning,
                    stacklevel=2,
                )
                continue
            if key not in known_keys:
                raise ConfigError(f"{source}: unknown key {section}.{key}")
            kwargs[key] = _coerce(section, key, item, getattr(defaults, key))
        built[section] = cls(**kwargs)
    config = Config(**built, source=source)
    _check_cache_backend(source, config.cache)
    if config.rates.scope not in RATE_SCOPES:
        raise ConfigError(
            f"{source}: rates.scope must be one of {', '.join(RATE_SCOPES)}, "
            f"got {config.rates.scope!r}"
        )
    _check_url("archive.base_url", config.archive.base_url)
    _check_url("archive.availability_url", config.archive.availability_url)
    if config.archive.base_url.endswith("/"):
        config = _replace_archive(config, base_url=config.archive.base_url.rstrip("/"))
    if any(c in config.archive.user_agent for c in "\r\n"):
        raise ConfigError(f"{source}: archive.user_agent must be one line")
    a = config.archive
    _check_archive(source, "archive", a.name, a.dialect, a.collection)
    if a.dialect == "pywb":
        # A pywb archive is usually your own: no budget unless [rates] sets one.
        raw_rates = data.get("rates", {})
        rates = config.rates
        if "cdx_per_minute" not in raw_rates:
            rates = replace(rates, cdx_per_minute=UNLIMITED)
        if "playback_per_minute" not in raw_rates:
            rates = replace(rates, playback_per_minute=UNLIMITED)
        config = replace(config, rates=rates)
    names = [entry.name for entry in config.chain]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{source}: archive name {name!r} is used twice")
    return config


#: Who shares the per-IP budgets kept in PostgreSQL (``[rates] scope``).
RATE_SCOPES: Final[tuple[str, ...]] = ("global", "host")

#: The stores ``[cache] backend`` may name.
CACHE_BACKENDS: Final[tuple[str, ...]] = ("diskcache", "postgres")


def _check_cache_backend(source: str, cache: CacheConfig) -> None:
    if cache.backend not in CACHE_BACKENDS:
        raise ConfigError(
            f"{source}: cache.backend must be one of {', '.join(CACHE_BACKENDS)}, "
            f"got {cache.backend!r}"
        )
    dsn = cache.dsn.strip()
    # The value is never quoted back: a DSN may hold a password.
    if dsn and not (dsn.lower().startswith(("postgresql://", "postgres://")) or "=" in dsn):
        raise ConfigError(
            f"{source}: cache.dsn must be a postgresql:// URI or libpq key=value pairs"
        )


_ARCHIVE_BUDGETS: Final = ("cdx_per_minute", "playback_per_minute")
_ENTRY_KEYS: Final = ("name", "base_url", "dialect", "collection", *_ARCHIVE_BUDGETS)
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _check_archive(source: str, where: str, name: str, dialect: str, collection: str) -> None:
    if not name or not set(name) <= _NAME_CHARS:
        raise ConfigError(f"{source}: {where}.name must be letters, digits, '.', '_' or '-'")
    if dialect not in DIALECTS:
        raise ConfigError(
            f"{source}: {where}.dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}"
        )
    if dialect == "pywb" and (not collection or not set(collection) <= _NAME_CHARS):
        raise ConfigError(
            f"{source}: {where}.collection must name the pywb collection"
            f" (letters, digits, '.', '_' or '-') when {where}.dialect is \"pywb\""
        )


def _archive_entries(value: Any, source: str) -> tuple[ArchiveEntry, ...]:
    """Validate the ``[[archives]]`` array of tables. A budget left out takes the dialect's
    default: the Internet Archive's 80% for ``ia``, no limit for ``pywb``."""
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(f"{source}: archives must be an array of tables ([[archives]])")
    entries = []
    for index, table in enumerate(value):
        where = f"archives[{index}]"
        for key in table:
            if key not in _ENTRY_KEYS:
                raise ConfigError(f"{source}: unknown key {where}.{key}")
        for key in ("name", "base_url"):
            if key not in table:
                raise ConfigError(f"{source}: {where}.{key} is required")
        name = _coerce(where, "name", table["name"], "")
        base_url = _coerce(where, "base_url", table["base_url"], "").rstrip("/")
        dialect = _coerce(where, "dialect", table.get("dialect", "ia"), "")
        collection = _coerce(where, "collection", table.get("collection", ""), "")
        _check_url(f"{where}.base_url", base_url)
        _check_archive(source, where, name, dialect, collection)
        if dialect == "pywb":
            budgets = {k: UNLIMITED for k in _ARCHIVE_BUDGETS}
        else:
            budgets = {
                "cdx_per_minute": DEFAULT_CDX_PER_MINUTE,
                "playback_per_minute": DEFAULT_PLAYBACK_PER_MINUTE,
            }
        for key in _ARCHIVE_BUDGETS:
            if key in table:
                budgets[key] = _coerce(where, key, table[key], 0.0)
        entries.append(
            ArchiveEntry(
                name=name,
                base_url=base_url,
                dialect=cast(Dialect, dialect),
                collection=collection,
                **budgets,
            )
        )
    return tuple(entries)


def _replace_archive(config: Config, **changes: Any) -> Config:

    return replace(config, archive=replace(config.archive, **changes))


def user_config_path() -> Path:
    """The per-user configuration file: ``config.toml`` in the user config dir
    (``~/.config/snapcache/config.toml`` on Linux, honouring ``$XDG_CONFIG_HOME``)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the configuration by the documented lookup order: ``path`` (``/dev/null``: the
    built-in defaults), else ``$SNAPCACHE_CONFIG``, else :func:`user_config_path` if it
    exists, else the built-in defaults. ``./config.toml`` is never read unless named."""
    if path is not None:
        candidate, required = Path(path), True
    elif os.environ.get(ENV_CONFIG):
        candidate, required = Path(os.environ[ENV_CONFIG]), True
    else:
        candidate, required = user_config_path(), False
    if str(candidate) == os.devnull:
        return Config()
    # Not only regular files: a named pipe or a process substitution (<(...)) is fine too.
    if not candidate.exists() or candidate.is_dir():
        if required:
            raise ConfigError(f"config file not found: {candidate}")
        return Config()
    try:
        with candidate.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{candidate}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{candidate}: cannot read: {exc}") from exc
    return config_from_mapping(data, source=str(candidate))
