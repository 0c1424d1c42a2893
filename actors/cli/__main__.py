"""``python -m actors.cli``: the ``actors`` command."""

from . import main

main()
