"""``python -m snapcache.demo``: the same as ``snapcache demo-archive``."""

from .command import demo_archive

demo_archive(prog_name="python -m snapcache.demo")
