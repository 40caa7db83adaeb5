"""Bytes -> title, preview and text for HTML, PDF and plain-text captures.

This package knows nothing of HTTP or storage: it is handed the raw body of a capture (or
the path of a file holding it) and the Content-Type the archive declared, and returns an
:class:`Extraction`. The type is decided by sniffing the bytes, never by the URL or the
declared type alone: the old wiki trusted the declared type and ended up storing the
Wayback toolbar as the preview of a PDF.

Hostile or broken documents never raise; they give an :class:`Extraction` whose ``note``
says why the preview is empty or partial. Only programmer errors raise (e.g. a path that
does not exist -> ``FileNotFoundError``), and ``MemoryError``: no limit stops a parser
inside :func:`extract`, which is why snapcache calls it through :class:`ExtractPool`,
whose workers are capped in memory and time.

Modules, one job each: :mod:`.sanitize` (terminal-safe text), :mod:`.sniff` (type sniffing
and charset decoding), :mod:`.harden` (the linear pass that makes hostile HTML cheap to
parse), :mod:`.html` and :mod:`.pdf` (the two extractors), :mod:`.result` (limits, the
result type and its assembly), :mod:`.core` (the :func:`extract` entry point), and
:mod:`.pool` with :mod:`.worker`: :class:`ExtractPool` runs :func:`extract` in worker
processes capped in memory and time, which is how snapcache itself extracts. Nothing here
imports the rest of snapcache.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .result import (
    DEFAULT_WORKERS,
    EXTRACTOR_VERSION,
    TITLE_MAX_CHARS,
    Extraction,
    ExtractLimits,
    Kind,
)
from .sanitize import sanitize_text

if TYPE_CHECKING:
    from .core import extract
    from .pool import ExtractPool
    from .sniff import decode_html

#: Names imported on first use: the parsers (selectolax, pypdfium2) and charset detection
#: take about 0.1 s to import, and the configuration and the command line's read-only
#: commands need only the limits and the sanitiser.
_LAZY = {"extract": "core", "ExtractPool": "pool", "decode_html": "sniff"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


__all__ = [
    "DEFAULT_WORKERS",
    "EXTRACTOR_VERSION",
    "TITLE_MAX_CHARS",
    "ExtractLimits",
    "ExtractPool",
    "Extraction",
    "Kind",
    "decode_html",
    "extract",
    "sanitize_text",
]
