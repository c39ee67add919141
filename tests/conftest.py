"""Shared fixtures. Threads are pinned to one: two on a busy 2-core machine can be far slower."""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir():
    """The cached tiny-random model folder (built in seconds on first use)."""
    from persrm_lib.models.registry import prepare

    return prepare("tiny-random")
