"""How the project decides that a text is empty, or that two texts are the same: after Unicode
normalisation, not after Python's ``strip``.

``str.strip`` keeps the zero-width space (U+200B), the word joiner (U+2060) and the byte-order mark
(U+FEFF), all invisible; a no-break space (U+00A0) and ``"\\r\\n"`` against ``"\\n"`` make two texts
that read the same compare different. A ``<criteria>`` holding only U+200B would count as reasoning,
and a pair whose responses differ by one no-break space would pass the identical-responses check.
:func:`visible_text` is the ONE normal form the checks compare:

1. NFKC (compatibility forms folded: a no-break space becomes a space, "ﬁ" becomes "fi");
2. every format character (Unicode category ``Cf``: zero-width space, joiners, the byte-order
   mark, bidirectional marks, soft hyphen) removed;
3. every run of whitespace (line endings of any kind included) collapsed to one space, and the
   ends stripped.

The texts themselves are never rewritten: the normal form only decides emptiness
(:func:`is_blank`) and identity (:func:`same_text`).

>>> is_blank("\\u200b \\u00a0\\n"), is_blank("x")
(True, False)
>>> same_text("A fine day.\\r\\n", "A\\u00a0fine\\u200b day.\\n")
True
"""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


def visible_text(text: str) -> str:
    """``text`` in the normal form the emptiness and identity checks compare (see the module).

    >>> visible_text(" A\\u00a0fine\\u200b\\r\\n day ")
    'A fine day'
    """
    folded = unicodedata.normalize("NFKC", text)
    shown = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return _WHITESPACE.sub(" ", shown).strip()


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: empty once normalised (:func:`visible_text`)."""
    return not visible_text(text)


def same_text(first: str, second: str) -> bool:
    """True when two texts read the same once normalised (:func:`visible_text`)."""
    return visible_text(first) == visible_text(second)
