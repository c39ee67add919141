"""persrm: the thin library behind the PersRM-R1 companion notebooks.

Importing it is cheap and never imports Unsloth; heavy libraries load inside the functions that
need them.
"""

__version__ = "0.1.0"
