"""Training the Bradley-Terry scalar reward model, the paper's ScalarRM contrast (PersRM-R1 §4):
``r(exemplars + query + response)`` trained to maximise ``log sigmoid(r(chosen) - r(rejected))``
with TRL's ``RewardTrainer``. Training and scoring read the token ids of :func:`scalar_rm_tokens`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.verdict import exemplars_of

EXEMPLARS_HEAD = "Writing exemplars by the author:\n\n"


def scalar_rm_tokens(
    tokenizer: Any,
    exemplars: Sequence[str],
    query: str,
    response: str,
    max_length: int = 512,
    max_response_tokens: int = 192,
) -> list[int]:
    """The token ids the scalar reward model reads for one response:
    ``head + "Query:" + query + "Response:" + response + eos``.

    The response is cut to ``max_response_tokens``, then the exemplars from the front to keep the
    whole within ``max_length`` tokens. Special-token strings in the texts are encoded as plain text.
    """
    plain = {"add_special_tokens": False, "split_special_tokens": True}
    head = tokenizer(EXEMPLARS_HEAD + "\n\n".join(e.strip() for e in exemplars), **plain)["input_ids"]
    tail = tokenizer(f"\n\nQuery:\n{query.strip()}\n\nResponse:\n", **plain)["input_ids"]
    body = tokenizer(response.strip(), **plain)["input_ids"][:max_response_tokens]
    budget = max_length - len(tail) - len(body) - 1
    head = head[-budget:] if budget > 0 else []
    return head + tail + body + [tokenizer.eos_token_id]


@dataclass
class TrainedScalarRM:
    """A trained scalar reward model (eval mode), its tokenizer and the trainer's ``log_history``."""

    model: Any
    tokenizer: Any
    log_history: list[dict[str, Any]] = field(default_factory=list)


def train_scalar_rm(
    model_name: str,
    train_pairs: Sequence[Mapping[str, Any]],
    *,
    max_steps: int = 20,
    learning_rate: float = 1e-4,
    batch_size: int = 4,
    max_length: int = 512,
    max_response_tokens: int = 192,
    lora_r: int | None = 8,
    seed: int = 0,
    output_dir: str | Path | None = None,
) -> TrainedScalarRM:
    """Train a Bradley-Terry reward model on labelled pairs with TRL's ``RewardTrainer``.

    Args:
        model_name: a registry name, folder or hub id, loaded as ``AutoModelForSequenceClassification``
            with one label (a new score head, initialised with ``seed``).
        batch_size: pairs per optimiser step.
        max_length, max_response_tokens: token budgets (:func:`scalar_rm_tokens`).
        lora_r: LoRA rank (alpha ``2 r``, all linear layers); None or 0 trains every weight.
        output_dir: where the trainer saves the model; None: nothing kept.

    Raises ``ValueError`` without training pairs.
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification, PrinterCallback, set_seed
    from transformers.utils import logging as transformers_logging
    from trl import RewardConfig, RewardTrainer

    from ..models.registry import load_tokenizer, resolve

    if not train_pairs:
        raise ValueError("scalar-rm: no training pairs to fit on")
    where = resolve(model_name)
    set_seed(seed)  # the score head is initialised at random
    tokenizer = load_tokenizer(str(where))  # the eos token pads when it has no pad token
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # the new score head is "missing" from the checkpoint, as meant
    try:
        model = AutoModelForSequenceClassification.from_pretrained(where, num_labels=1, dtype=torch.float32)
    finally:
        transformers_logging.set_verbosity(verbosity)
    model.config.pad_token_id = tokenizer.pad_token_id
    rows: dict[str, list[list[int]]] = {"chosen_ids": [], "rejected_ids": []}
    for pair in train_pairs:
        chosen, rejected = ("response_a", "response_b") if pair["label"] == "a" else ("response_b", "response_a")
        exemplars = exemplars_of(pair)
        for column, key in (("chosen_ids", chosen), ("rejected_ids", rejected)):
            rows[column].append(
                scalar_rm_tokens(tokenizer, exemplars, pair["query"], pair[key], max_length, max_response_tokens)
            )
    peft_config = (
        LoraConfig(task_type="SEQ_CLS", r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0, target_modules="all-linear")
        if lora_r
        else None
    )
    with tempfile.TemporaryDirectory(prefix="persrm-scalar-rm-") as tmp:
        args = RewardConfig(
            output_dir=str(output_dir or tmp),
            max_steps=max_steps,
            learning_rate=learning_rate,
            per_device_train_batch_size=batch_size,
            max_length=None,  # sequences are cut to max_length above, never dropped
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            seed=seed,
            data_seed=seed,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            gradient_checkpointing=False,
            disable_tqdm=True,
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict(rows),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        trainer.remove_callback(PrinterCallback)  # the log is kept in log_history, not printed
        trainer.train()
        log_history = [dict(entry) for entry in trainer.state.log_history]
        if output_dir is not None:
            trainer.save_model(str(output_dir))
    return TrainedScalarRM(model=trainer.model.eval(), tokenizer=tokenizer, log_history=log_history)
