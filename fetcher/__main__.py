"""``python -m snapcache``: the same as the ``snapcache`` command."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
