"""``python -m persrm_lib.run``: execute the notebooks in order (see :mod:`persrm_lib.run.runner`)."""

from .runner import main

if __name__ == "__main__":
    raise SystemExit(main())
