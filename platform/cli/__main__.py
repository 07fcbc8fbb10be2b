"""``python -m nasforge.platform.cli ...``: the same as the ``nasforge`` command."""
import sys

from nasforge.platform.cli import main

sys.exit(main())
