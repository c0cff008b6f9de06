"""``python -m dabin`` is the ``dabin`` command."""

import sys

from dabin.cli import main

if __name__ == "__main__":
    sys.exit(main())
