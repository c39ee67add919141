"""``python -m persrm_lib.evaluate``: see :mod:`persrm_lib.evaluate.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
