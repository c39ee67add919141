"""``python -m persrm_lib.evaluate``: see :mod:`persrm_lib.evaluate.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
