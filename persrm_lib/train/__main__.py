"""``python -m persrm_lib.train``: see :mod:`persrm_lib.train.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
