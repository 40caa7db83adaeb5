"""``python -m snapcache.cli``: the same as the ``snapcache`` command."""

from .app import main

if __name__ == "__main__":  # pragma: no cover
    main()
