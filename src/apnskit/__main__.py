"""``python -m apnskit``: the ``apnskit`` command."""

import sys

from apnskit.cli import main

if __name__ == "__main__":
    sys.exit(main())
