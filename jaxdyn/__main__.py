"""``python -m jaxdyn ...``: the ``jaxdyn`` command (see :mod:`jaxdyn.cli`)."""

from jaxdyn.cli import console

console()
