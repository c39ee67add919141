"""Training backend: Unsloth's ``FastLanguageModel`` on a CUDA machine with Unsloth installed (it
refuses to import without a GPU, so it is imported only then), otherwise transformers + PEFT."""

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
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()


def unsloth_installed() -> bool:
    """Whether the ``unsloth`` package can be imported (found, not imported: importing it needs a GPU)."""
    return importlib.util.find_spec("unsloth") is not None


def select_backend(requested: str | None = None) -> str:
    """``"unsloth"`` or ``"transformers"`` for ``requested`` (``auto``/``unsloth``/``transformers``;
    None: ``$PERSRM_BACKEND``, else ``auto``, which picks Unsloth on CUDA when it is installed).

    Raises:
        ValueError: an unknown backend name.
        BackendUnavailableError: ``unsloth`` forced where it cannot run, naming why.
    """
    source = "backend" if requested else BACKEND_ENV
    choice = (requested or os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if choice not in BACKENDS:
        raise ValueError(f"{source}={choice!r} is not a backend; choose one of {', '.join(BACKENDS)}")
    if choice == "transformers":
        return "transformers"
    problems = []
    if not cuda_available():
        problems.append("no CUDA device is visible")
    if not unsloth_installed():
        problems.append("Unsloth is not installed (pip install -e '.[gpu]' on a CUDA machine)")
    if choice == "unsloth" and problems:
        raise BackendUnavailableError(f"{source}=unsloth cannot run: " + "; ".join(problems))
    return "transformers" if problems else "unsloth"


def lora_config(profile: Profile) -> Any:
    """The PEFT ``LoraConfig`` for a profile (the one place LoRA settings are turned into PEFT's)."""
    from peft import LoraConfig

    return LoraConfig(**_lora_settings(profile), task_type="CAUSAL_LM")


def _lora_settings(profile: Profile) -> dict[str, Any]:
    lora = profile.lora
    return {
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": list(lora.target_modules),
        "bias": "none",
    }


def load_for_training(profile: Profile, backend: str | None = None) -> tuple[Any, Any, str]:
    """The profile's base model with fresh LoRA adapters on the selected backend:
    ``(PEFT model in train mode, tokenizer, backend name)``."""
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
        model = FastLanguageModel.get_peft_model(
            model, **_lora_settings(profile), use_gradient_checkpointing="unsloth", random_state=profile.seed
        )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer, name

    from peft import get_peft_model

    torch.manual_seed(profile.seed)  # LoRA's A matrices are drawn at random
    model, tokenizer = load_model(profile.model.name)  # bfloat16 on CUDA, else float32
    model = get_peft_model(model, lora_config(profile))
    model.train()
    return model, tokenizer, name
