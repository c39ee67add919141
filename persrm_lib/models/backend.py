"""Training backend: Unsloth's ``FastLanguageModel`` on a CUDA machine with Unsloth installed,
otherwise transformers + PEFT. ``PERSRM_BACKEND`` (``auto``, ``unsloth``, ``transformers``)
forces a choice; forcing Unsloth where it cannot run fails with the reason.

Unsloth is imported only inside :func:`load_for_training` on the Unsloth path: it refuses to
import without a GPU, so importing this module never imports it.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from ..core.config import Profile

BACKEND_ENV = "PERSRM_BACKEND"
BACKENDS = ("auto", "unsloth", "transformers")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run on this machine."""


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def select_backend(requested: str | None = None) -> str:
    """Return ``"unsloth"`` or ``"transformers"``.

    Args:
        requested: ``auto``/``unsloth``/``transformers``; default ``$PERSRM_BACKEND`` or ``auto``.
    """
    choice = (requested or os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if choice not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={choice!r} is not a backend; choose one of {', '.join(BACKENDS)}")
    if choice == "transformers":
        return "transformers"
    problems = []
    if not cuda_available():
        problems.append("no CUDA device is visible")
    if not unsloth_installed():
        problems.append("Unsloth is not installed (pip install -e '.[gpu]' on a CUDA machine)")
    if choice == "unsloth" and problems:
        raise BackendUnavailableError(f"{BACKEND_ENV}=unsloth cannot run: " + "; ".join(problems))
    return "transformers" if problems else "unsloth"


def lora_config(profile: Profile) -> Any:
    """The PEFT ``LoraConfig`` for a profile (the one place LoRA settings are turned into PEFT's)."""
    from peft import LoraConfig

    lora = profile.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_for_training(profile: Profile, backend: str | None = None) -> tuple[Any, Any, str]:
    """Load the profile's base model with fresh LoRA adapters on the selected backend.

    Returns:
        ``(model, tokenizer, backend_name)``; the model is a PEFT model in train mode.
    """
    import torch

    from .registry import load_model, resolve

    name = select_backend(backend)
    if name == "unsloth":
        from unsloth import FastLanguageModel  # noqa: I001 -- only on CUDA machines

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(resolve(profile.model.name)),
            max_seq_length=profile.model.max_seq_length,
            load_in_4bit=profile.model.load_in_4bit,
            dtype=None,
        )
        lora = profile.lora
        model = FastLanguageModel.get_peft_model(
            model,
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            bias="none",
            use_gradient_checkpointing="unsloth",
            random_state=profile.seed,
        )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer, name

    from peft import get_peft_model

    device = "cuda" if cuda_available() else None
    dtype = torch.bfloat16 if device else torch.float32
    torch.manual_seed(profile.seed)  # LoRA's A matrices are drawn at random
    model, tokenizer = load_model(profile.model.name, dtype=dtype, device=device)
    model = get_peft_model(model, lora_config(profile))
    model.train()
    return model, tokenizer, name
