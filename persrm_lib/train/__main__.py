"""``python -m persrm_lib.train``: see :mod:`persrm_lib.train.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
