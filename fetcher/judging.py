"""What resolution asks of a judge before it accepts a 2xx capture, and what it keeps of
the captures it passed over: the types between the archive (which walks) and the engine
(which extracts and classifies, :mod:`snapcache.junk`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .transport import Response

__all__ = ["Judge", "Served", "Skipped", "Verdict"]


@dataclass(frozen=True, slots=True)
class Served:
    """A 2xx capture a walk landed on, as a :data:`Judge` sees it."""

    requested: str
    """The URL asked for."""
    original: str
    """The URL the capture is of."""
    chain: tuple[str, ...]
    """The URL asked for, then the targets of the archived redirects that led here."""
    timestamp: str
    archived_status: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a :data:`Judge` made of a capture."""

    flag: str | None = None
    """A content flag (``snapcache.junk``), or None for a real document."""
    skip: bool = False
    """Not a good capture (a challenge page, a parked domain ...): resolution steps back
    past it as past an error capture. A flag without ``skip`` is kept on the record."""


#: Judges a 2xx capture before resolution accepts it (the engine's: extract and classify).
Judge = Callable[[Response, Served], Awaitable[Verdict]]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A newer capture resolution passed over, and why."""

    timestamp: str | None
    flag: str
    archived_status: int | None
    url: str | None
    """Its replay URL for people (``archive_url``), or the other URL a capture was of."""

    def to_json_dict(self) -> dict[str, str | int | None]:
        """The record's form of this entry."""
        return {"capture_timestamp": self.timestamp, "flag": self.flag,
                "archived_status": self.archived_status, "url": self.url}
