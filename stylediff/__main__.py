"""``python -m stylediff``: the same as the ``stylediff`` command."""

import sys

from stylediff.cli import main

sys.exit(main())
