"""``python -m jaxdyn ...``: the ``jaxdyn`` command (see :mod:`jaxdyn.cli`)."""

import sys

from jaxdyn.cli import main

sys.exit(main())
