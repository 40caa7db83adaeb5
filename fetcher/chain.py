"""The chain of configured archives, tried in order until one holds a good capture, and
how their answers combine when none does."""

from __future__ import annotations

from .archive import Resolution, WaybackArchive
from .capture import KnownCapture, best_outcome
from .config import Config
from .errors import (
    ArchiveError,
    ArchiveUnreachableError,
    DeadlineExceededError,
    DeferredError,
    DisallowedHostError,
    TransientError,
)
from .ids import timestamp_now
from .judging import Judge
from .transport import Transport


class ArchiveChain:
    """The configured archives, tried in order until one holds a good capture.

    A URL with no good capture in one archive (not archived, only error captures, blocked,
    or the archive unavailable after its retries) is tried in the next one. The first ``ok``
    wins, even if a later archive holds a capture closer to ``at``.
    """

    def __init__(self, config: Config, transport: Transport) -> None:
        self.archives = [WaybackArchive(config, transport, entry) for entry in config.chain]

    async def resolve(
        self, url: str, at: str | None, known: KnownCapture | None = None,
        judge: Judge | None = None, *, absent_from: str | None = None,
    ) -> Resolution:
        """Resolve ``url`` through the chain; the result names the archive that gave it.

        ``known`` (the stored good capture, on a refresh) is offered to the archive that
        holds it only: it may be confirmed there without a download. ``judge`` judges every
        2xx capture before it is accepted (see :meth:`WaybackArchive.resolve`).
        ``absent_from`` names the archive whose "not archived" the stored record holds.

        Raises the first :class:`DeferredError` when no archive gave a good capture and one
        of them had paused us for longer than ``max_wait``: nothing should be stored then.
        Raises :class:`ArchiveUnreachableError` when no archive could even be connected to:
        that says nothing about the URL, and the caller decides what it means.
        """
        results: list[Resolution] = []
        failures: list[tuple[str, Exception]] = []
        for archive in self.archives:
            try:
                mine = known if known is not None and known.archive == archive.name else None
                result = await archive.resolve(url, at, mine, judge,
                                               absent=archive.name == absent_from)
            except DeadlineExceededError:
                raise  # the URL's time is up: no archive of the chain gets more of it
            except (DeferredError, TransientError, ArchiveError, DisallowedHostError) as exc:
                failures.append((archive.name, exc))
                continue
            result.archive = archive.name
            if result.status == "ok":
                return result
            if result.status == "error":
                failures.append((archive.name, ArchiveError(result.error or "error")))
            results.append(result)
        for _name, failure in failures:
            if isinstance(failure, DeferredError):
                raise failure
        unreachable = [f for _n, f in failures if isinstance(f, ArchiveUnreachableError)]
        if not results and unreachable and len(unreachable) == len(failures):
            first = unreachable[0]
            if len(self.archives) == 1:
                raise first
            raise ArchiveUnreachableError(
                "; ".join(f"{n}: {f}" for n, f in failures), host=first.host,
                cause=first.cause, first_contact=all(f.first_contact for f in unreachable),
            )
        return self._combine(results, failures, at)

    def _combine(
        self,
        results: list[Resolution],
        failures: list[tuple[str, Exception]],
        at: str | None,
    ) -> Resolution:
        final = [r for r in results if r.status != "error"]
        index = best_outcome([r.status for r in final])
        best = final[index] if index is not None else None
        if not failures and best is not None:
            # Every archive answered: the best answer (archived_error > blocked >
            # not_archived), from the first archive that gave it.
            return best
        requested = at or timestamp_now()
        name, first = failures[0]
        if len(self.archives) == 1:
            # One archive: exactly what resolving against it alone always gave.
            errored = [r for r in results if r.status == "error"]
            if errored:
                return errored[0]
            return Resolution("error", requested, error=str(first) or type(first).__name__,
                              archive=name)
        # Some archive failed (unavailable after its retries, or an answer we cannot read)
        # and none gave a good capture. The failed one may hold one, so a final outcome
        # would not be honest: the attempt is an error (kept beside any earlier record,
        # retried after the error TTL, never cached for a week as not_archived). The error
        # names each failed archive and the best final outcome the others gave.
        parts = [f"{n}: {e or type(e).__name__}" for n, e in failures]
        if best is not None:
            parts.append(f"best outcome elsewhere: {best.status} from {best.archive}")
        return Resolution("error", requested, error="; ".join(parts), archive=name)
