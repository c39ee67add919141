"""How the project decides that a text is empty, or that two texts are the same: after Unicode
normalisation, since ``str.strip`` keeps invisible characters (U+200B, U+2060, U+FEFF) and a
no-break space or ``"\\r\\n"`` makes two texts that read the same compare different.
:func:`visible_text` is the ONE normal form: NFKC, format characters (category ``Cf``) removed,
whitespace runs collapsed to one space, ends stripped. The texts themselves are never rewritten.
"""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


def visible_text(text: str) -> str:
    """``text`` in the normal form the emptiness and identity checks compare (see the module)."""
    folded = unicodedata.normalize("NFKC", text)
    shown = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return _WHITESPACE.sub(" ", shown).strip()


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: empty once normalised (:func:`visible_text`)."""
    return not visible_text(text)


def same_text(first: str, second: str) -> bool:
    """True when two texts read the same once normalised (:func:`visible_text`)."""
    return visible_text(first) == visible_text(second)
