"""The demo archive: try snapcache with no internet access.

``snapcache demo-archive`` (or ``python -m snapcache.demo``) serves a small Wayback Machine
on 127.0.0.1 (:mod:`.server`) and writes a configuration pointing snapcache at it into a
new temporary folder (:mod:`.command`). What it serves are real responses recorded from the
Internet Archive's Wayback Machine, shipped as package data under ``data/``:

* ``data/wayback/``: from edgi-govdata-archiving/wayback's test cassettes, under its
  BSD-3-Clause licence (``data/wayback/LICENSE``);
* ``data/cdx_toolkit/``: from cocrawler/cdx_toolkit's mock responses, under the Apache
  License 2.0 (``data/cdx_toolkit/LICENSE``).

:mod:`.wayback` holds how a Wayback Machine answers from an index of captures; the test
suite's emulator (``tests/wayback_emulator.py``) builds on it too. The library never
imports this package: only the command line does.
"""

from .command import TRY_URLS, demo_archive
from .server import DemoArchive, DemoServer

__all__ = ["TRY_URLS", "DemoArchive", "DemoServer", "demo_archive"]
