"""Small deterministic data for the sampler tests: a synthetic Document table and a hashed
bag-of-words encoder (the real runs use MiniLM, :func:`persrm_lib.data.embeddings.minilm_encoder`).
No randomness beyond a fixed seed; nothing read from disk."""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd


def hashed_bow_encoder(texts: Sequence[str], dim: int = 256) -> np.ndarray:
    """A deterministic bag-of-words encoder: ``len(texts) x dim`` float32 rows, each word hashed
    (CRC-32) to a column, rows unit-norm (an empty text gives a zero row)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            out[row, zlib.crc32(word.encode()) % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1.0, norms)


def toy_documents(
    n_authors: int = 4, works_per_author: int = 3, passages_per_work: int = 3, seed: int = 0
) -> pd.DataFrame:
    """A small synthetic Document table (each author with its own habitual words), for tests."""
    rng = random.Random(seed)
    vocabulary = "river stone market harvest letter window engine council garden winter paper silver".split()
    rows = []
    for a in range(n_authors):
        habit = vocabulary[a % len(vocabulary)]
        for w in range(works_per_author):
            for p in range(passages_per_work):
                sentences = []
                for _ in range(8):
                    words = [rng.choice(vocabulary) for _ in range(rng.randint(5, 9))]
                    sentences.append(f"The {habit} " + " ".join(words) + ".")
                rows.append(
                    {
                        "doc_id": f"toy/a{a}w{w}#{p:03d}",
                        "author": f"author{a}",
                        "text": " ".join(sentences),
                        "genre": "toy",
                        "source": "toy",
                        "split": "",
                        "work": f"a{a}w{w}",
                        "year": None,
                        "position": p,
                    }
                )
    frame = pd.DataFrame(rows)
    frame["year"] = frame["year"].astype("Int64")
    return frame
