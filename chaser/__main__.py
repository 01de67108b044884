"""``python -m chaser`` is the ``chaser`` command."""
from chaser.cli import main

main()
