"""LoRA adapters of the training stages: saved by SFT and GRPO, checked and loaded for GRPO and for
the judges. An adapter folder holds the PEFT adapter (``adapter_config.json``,
``adapter_model.safetensors``), the tokenizer, and :data:`TRAINING_INFO` (:func:`training_info`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.config import Profile
from ..core.jsonl import read_json
from ..core.prompt import ChatTemplateError
from ..data.evidence import check_kind, has_evidence
from ..models.context import PromptTooLongError
from ..models.registry import ModelRegistryError

TRAINING_INFO = "persrm_training.json"


class AdapterMismatchError(ValueError):
    """A PEFT adapter that cannot be applied to the model it was given."""


class AdapterEvidenceError(ValueError):
    """A pair whose evidence setting differs from the one the adapter was trained with."""


class AdapterReplaceError(ValueError):
    """An adapter folder that a training may not replace."""


# What a command that loads a model refuses as bad input (exit status 2, one line): a missing file, a
# model, adapter, chat template or prompt length that cannot be used; each command adds its own errors.
MODEL_INPUT_ERRORS: tuple[type[Exception], ...] = (
    FileNotFoundError,
    ModelRegistryError,
    AdapterMismatchError,
    AdapterEvidenceError,
    ChatTemplateError,
    PromptTooLongError,
)


def check_replaceable(out: str | Path, profile_name: str) -> None:
    """Raise :class:`AdapterReplaceError` (naming ``out`` and why) unless ``out`` is absent, an empty
    folder, or an adapter that :func:`save_adapter` wrote for this profile."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise AdapterReplaceError(
            f"{out} is not an adapter folder (a file or a link): a training replaces only its own"
        )
    if not any(out.iterdir()):
        return
    info = _read_object(out, TRAINING_INFO, AdapterReplaceError)
    if info is None:
        raise AdapterReplaceError(
            f"{out} holds files that no training of this project saved (no {TRAINING_INFO}): move them away, "
            "a training replaces only an adapter it saved"
        )
    if info.get("profile") != profile_name:
        raise AdapterReplaceError(
            f"{out} holds an adapter saved under profile {info.get('profile')!r}, not {profile_name!r}: move it away, "
            "or train in the run folder of that profile"
        )


def training_info(
    profile: Profile, stage: str, backend: str, steps: int, evidence: str | None = None
) -> dict[str, Any]:
    """What :data:`TRAINING_INFO` records about a trained adapter (GRPO adds ``from_sft``);
    ``evidence``: the setting of the prompts trained on (``"none"`` or ``"stylometric"``; None: the
    profile's ``prompt.evidence``; another: ``ValueError``)."""
    return {
        "stage": stage,
        "profile": profile.name,
        "model": profile.model.name,
        "backend": backend,
        "steps": steps,
        "seed": profile.seed,
        "lora": {"r": profile.lora.r, "alpha": profile.lora.alpha, "target_modules": list(profile.lora.target_modules)},
        "evidence": check_kind(profile.prompt.evidence if evidence is None else evidence),
        "mode": profile.prompt.mode,
    }


def _read_object(adapter_dir: str | Path, name: str, error: type[ValueError]) -> dict[str, Any] | None:
    """The JSON object in ``adapter_dir/name`` (None without the file); ``error`` if it is not one."""
    path = Path(adapter_dir) / name
    if not path.is_file():
        return None
    try:
        value = read_json(path)
    except ValueError as exc:
        raise error(f"adapter {adapter_dir}: {name} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise error(f"adapter {adapter_dir}: {name} is not a JSON object")
    return value


def adapter_mode(adapter_dir: str | Path) -> str:
    """The formulation an adapter was trained in (:data:`TRAINING_INFO`'s ``mode``): ``"pairwise"``
    (also without training info or the setting) or ``"pointwise"``; :class:`AdapterEvidenceError` for
    a training info file that is not a JSON object (or names a key twice), or an unknown mode."""
    mode = (_read_object(adapter_dir, TRAINING_INFO, AdapterEvidenceError) or {}).get("mode", "pairwise")
    if mode not in ("pairwise", "pointwise"):
        raise AdapterEvidenceError(
            f"adapter {adapter_dir}: {TRAINING_INFO} names an unknown mode {mode!r} (pairwise or pointwise)"
        )
    return mode


def adapter_evidence(adapter_dir: str | Path) -> str | None:
    """The evidence setting an adapter was trained with: its :data:`TRAINING_INFO`'s ``evidence``
    (``"none"`` when not set); None without training info (nothing to check against);
    :class:`AdapterEvidenceError` as :func:`adapter_mode`, or for an unknown setting."""
    info = _read_object(adapter_dir, TRAINING_INFO, AdapterEvidenceError)
    if info is None:
        return None
    try:
        return check_kind(info.get("evidence", "none"))
    except ValueError as exc:
        raise AdapterEvidenceError(f"adapter {adapter_dir}: {exc}") from exc


def check_evidence_matches(adapter_dir: str | Path, pairs: Sequence[Mapping[str, Any]]) -> None:
    """Refuse (:class:`AdapterEvidenceError`, naming the adapter, its setting and the first pair that
    disagrees) to judge a pair with an adapter trained under the other evidence setting (none against
    stylometric, either way); adapters without training info are not checked."""
    trained = adapter_evidence(adapter_dir)
    if trained is None:
        return
    for pair in pairs:
        pid = pair.get("id", "?")
        if trained != "none" and not has_evidence(pair):
            raise AdapterEvidenceError(
                f"adapter {adapter_dir} was trained with prompt.evidence={trained!r} but pair {pid!r} carries no "
                "evidence record: judge pairs built with that setting (notebook 01), or an adapter trained without it"
            )
        if trained == "none" and has_evidence(pair):
            raise AdapterEvidenceError(
                f"adapter {adapter_dir} was trained without evidence (prompt.evidence='none') but pair {pid!r} "
                "carries an evidence record: a model trained without the table must not be shown one; judge "
                "pairs built with prompt.evidence='none', or an adapter trained with evidence"
            )


def check_adapter(adapter_dir: str | Path, profile: Profile) -> Path:
    """The adapter's weights file, after checking that ``adapter_dir`` holds an adapter of the
    profile's model and LoRA shape (r, alpha, target modules).

    Raises:
        FileNotFoundError: no ``adapter_model.safetensors`` (run 03_sft first).
        AdapterMismatchError: an adapter trained on another model, or of another LoRA shape, or
            whose ``adapter_config.json`` or :data:`TRAINING_INFO` cannot be read.
    """
    adapter_dir = Path(adapter_dir)
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(
            f"no adapter at {adapter_dir} (adapter_model.safetensors is missing); run 03_sft (train_sft) first"
        )
    info = _read_object(adapter_dir, TRAINING_INFO, AdapterMismatchError)
    if info is not None and info.get("model") != profile.model.name:
        raise AdapterMismatchError(
            f"adapter at {adapter_dir} was trained on model {info.get('model')!r}, the profile "
            f"{profile.name!r} uses {profile.model.name!r}"
        )
    config = _read_object(adapter_dir, "adapter_config.json", AdapterMismatchError)
    if config is None:
        raise AdapterMismatchError(f"adapter at {adapter_dir}: adapter_config.json is missing")
    want = {
        "r": profile.lora.r,
        "lora_alpha": profile.lora.alpha,
        "target_modules": sorted(profile.lora.target_modules),
    }
    have = {key: config.get(key) for key in want} | {"target_modules": sorted(config.get("target_modules") or [])}
    if have != want:
        raise AdapterMismatchError(
            f"adapter at {adapter_dir} has LoRA {have}, the profile {profile.name!r} asks for {want}; "
            "use the profile the adapter was trained with"
        )
    return weights


def load_adapter_weights(model: Any, adapter_dir: str | Path, profile: Profile) -> Any:
    """``model`` (from ``load_for_training(profile)``) with a saved adapter's weights copied into its
    fresh LoRA layers; errors of :func:`check_adapter`, and ``ValueError`` for weights that do not
    cover its LoRA layers exactly."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = check_adapter(adapter_dir, profile)
    state = load_file(str(weights))
    result = set_peft_model_state_dict(model, state, adapter_name="default")
    missing = sorted(k for k in result.missing_keys if "lora_" in k and ".default." in k)
    if result.unexpected_keys or missing:
        raise ValueError(
            f"adapter at {adapter_dir} does not fit the model: {len(missing)} LoRA weight(s) missing "
            f"(e.g. {missing[:1]}), {len(result.unexpected_keys)} unexpected (e.g. {list(result.unexpected_keys)[:1]})"
        )
    return model


def load_trained(profile: Profile, adapter_dir: str | Path, backend: str | None = None) -> tuple[Any, Any, str]:
    """The profile's base model with a saved adapter, trainable: ``(model, tokenizer, backend)``."""
    from ..models.backend import load_for_training

    check_adapter(adapter_dir, profile)  # fail before loading a model
    model, tokenizer, name = load_for_training(profile, backend)
    return load_adapter_weights(model, adapter_dir, profile), tokenizer, name


def load_adapter(model: Any, adapter: str | Path, model_name: str) -> Any:
    """``model`` with a PEFT adapter applied and merged (inference).

    Raises:
        FileNotFoundError: no ``adapter_config.json`` at ``adapter``.
        AdapterMismatchError: an unreadable ``adapter_config.json``, or an adapter saved for another
            base, naming the adapter, its base and the model.
    """
    from peft import PeftModel

    path = Path(adapter)
    config = _read_object(path, "adapter_config.json", AdapterMismatchError)
    if config is None:
        raise FileNotFoundError(f"no PEFT adapter at {path} (adapter_config.json is missing)")
    try:
        peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        base, hidden = config.get("base_model_name_or_path"), getattr(model.config, "hidden_size", "?")
        raise AdapterMismatchError(
            f"adapter {path} (saved for base model {base!r}) does not fit model {model_name!r} "
            f"(hidden size {hidden}): {' '.join(str(exc).split())[:400]}"
        ) from exc
    return peft_model.merge_and_unload()


def save_adapter(trainer: Any, tokenizer: Any, out: Path, info: dict[str, Any]) -> None:
    """Save (main process) the trainer's adapter, the tokenizer and ``info`` (:func:`training_info`)
    to ``out``, replacing an adapter this project saved there (:func:`check_replaceable`)."""
    if out.exists() and trainer.accelerator.is_main_process:
        check_replaceable(out, info["profile"])
        shutil.rmtree(out)
    trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        # GRPO with beta > 0 keeps a frozen copy of the starting adapter named "ref"; it is not the result.
        shutil.rmtree(out / "ref", ignore_errors=True)
        tokenizer.save_pretrained(str(out))
        (out / TRAINING_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
