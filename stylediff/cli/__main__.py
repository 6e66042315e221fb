"""``python -m stylediff.cli``: the same as the ``stylediff`` command."""

import sys

from . import main

sys.exit(main())
