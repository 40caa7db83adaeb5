"""The ``snapcache`` command line, a layer on top of the library.

The group and its commands live in :mod:`.app` (``main`` is the console-script entry
point); the commands in :mod:`.single` (fetch, show, move, save), :mod:`.run` (run,
refetch) and :mod:`.records` (export, list, stats); what they share in :mod:`.common`
(the exit codes, defined only there) and :mod:`.render` (the record card). No product
module imports this package.

Exit codes: 0 every URL reached a final outcome (ok, not_archived, archived_error, blocked);
1 some URL ended in error or was invalid; 2 usage or configuration error; 75 deferred (the
archive paused us) or another run holds the cache; 130/143 interrupted by SIGINT/SIGTERM;
141 the output was closed (``| head``).
"""

from .app import cli, main
from .render import human_size, human_timestamp, render_card

__all__ = ["cli", "human_size", "human_timestamp", "main", "render_card"]
