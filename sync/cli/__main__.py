"""``python -m sync.cli``: the same entry point as the ``icsync`` script."""

import sys

from sync.cli import main

sys.exit(main())
