"""Supervised fine-tuning on faithful teacher traces (PersRM-R1 §3.2): learn log p(trace | prompt).

TRL's ``SFTTrainer`` in the conversational prompt-completion format: prompt =
:func:`persrm_lib.core.prompt.build_messages` of the pair, completion = one assistant message
holding the trace's completion; the loss is on the completion only. Model and LoRA come from
:func:`persrm_lib.models.backend.load_for_training` (Unsloth on a CUDA machine, transformers + PEFT
elsewhere). Every bad input is refused before a model is loaded (:func:`persrm_lib.train.data.check_traces`).

Outputs in the run folder (:mod:`persrm_lib.core.runfiles`): ``sft/adapter/`` (PEFT adapter plus
tokenizer and ``persrm_training.json``) and ``sft/log.csv`` (:data:`persrm_lib.train.logs.SFT_LOG_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core import runfiles
from ..core.config import Profile
from ..core.runlock import holds_run_lock
from ..teachers.swap import both_orders
from .common import TrainResult, common_args, quiet, train_and_save, world_size
from .data import Source, TrainingDataError, check_traces, sft_dataset, sft_rows
from .logs import SFT_LOG_FIELDS, TrainingLog


class CompletionLogits:
    """A data collator that makes the language-model head run only where the loss is.

    Wraps the trainer's own collator (TRL's ``DataCollatorForLanguageModeling``: right padding,
    label -100 on prompt and padding tokens) and cuts each batch to the positions whose logits the
    next-token loss reads: from the token before the earliest completion in the batch to the end.
    It adds transformers' ``logits_to_keep`` (the model projects only the last ``logits_to_keep``
    hidden states onto the vocabulary) and cuts ``labels`` to the same last positions, so the loss
    is the same sum over the same completion tokens (``ForCausalLMLoss``: the logit at position i
    predicts the label at i + 1) with the same token count. On SmolLM2-135M the head is a
    576 x 49,152 matrix product that the 130 prompt tokens of a 178-token pointwise example do not
    need: a smoke SFT step took 0.97 s with this collator against 1.37 s with TRL's default loss,
    same losses (two CPU threads, ``benchmarks/sft_step_cost.py``).

    Input: the wrapped collator's batch, ``labels`` of shape (batch, width). Output: the batch with
    ``labels`` of shape (batch, keep) and ``logits_to_keep = keep``, ``keep = width - first + 1``
    where ``first`` is the earliest column holding a label (``keep = width`` when it is column 0).
    """

    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, examples: Sequence[Any]) -> Any:
        batch = self.collate(examples)
        labels = batch["labels"]
        width = labels.shape[1]
        scored = (labels != -100).any(dim=0).nonzero()
        first = int(scored[0]) if len(scored) else width - 1
        keep = min(width, width - first + 1)
        batch["labels"] = labels[:, width - keep :]
        batch["logits_to_keep"] = keep
        return batch


def _cuts_logits(backend: str, completion_logits: bool) -> bool:
    """Whether SFT runs the head only where the loss is: asked for, and not on Unsloth (its own fused loss)."""
    return completion_logits and backend == "transformers"


def sft_config(
    profile: Profile, output_dir: Path, backend: str = "transformers", completion_logits: bool = True
) -> Any:
    """TRL ``SFTConfig`` from the profile (``profile.sft`` and ``profile.model``). On the transformers
    backend with ``completion_logits`` the loss is TRL's plain ``nll`` over the logits
    :class:`CompletionLogits` keeps (TRL's default ``chunked_nll`` rounds the scored tokens up to
    chunks of 256 and recomputes the head in the backward pass: over short examples it projects
    every position twice); otherwise TRL's default."""
    from trl import SFTConfig

    sft = profile.sft
    return SFTConfig(
        per_device_train_batch_size=sft.per_device_batch_size,
        gradient_accumulation_steps=max(1, sft.gradient_accumulation_steps // world_size()),
        learning_rate=sft.learning_rate,
        num_train_epochs=sft.epochs,
        max_steps=sft.max_steps,
        warmup_steps=sft.warmup_ratio,  # a float in [0, 1) is a share of the steps (transformers 5)
        lr_scheduler_type=sft.lr_scheduler,
        logging_steps=sft.logging_steps,
        max_length=profile.model.max_seq_length,
        completion_only_loss=True,  # loss on the trace, not on the prompt
        packing=False,
        shuffle_dataset=False,  # the trainer's seeded sampler shuffles; no second shuffle
        **({"loss_type": "nll"} if _cuts_logits(backend, completion_logits) else {}),
        **common_args(profile, output_dir, backend),
    )


def _check_lengths(dataset: Any, ids: Sequence[str], tokenizer: Any, max_length: int) -> None:
    """SFT truncation would cut the scores off the end of a trace; refuse instead, naming the trace."""
    for i, (row, tid) in enumerate(zip(dataset, ids, strict=True)):
        text = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if n > max_length:
            raise TrainingDataError(
                f"trace {i} (id {tid!r}) is {n} tokens long with its prompt, more than "
                f"model.max_seq_length={max_length}; raise model.max_seq_length or shorten the passages "
                "(data.passage_words)"
            )


def sft_trainer(
    profile: Profile,
    output_dir: Path,
    traces: Sequence[Mapping[str, Any]],
    model: Any,
    tokenizer: Any,
    backend: str = "transformers",
    callbacks: Sequence[Any] = (),
    completion_logits: bool = True,
) -> Any:
    """TRL ``SFTTrainer`` for checked traces on a LoRA model. On the transformers backend its
    collator is wrapped in :class:`CompletionLogits` (``completion_logits=False``: TRL's default
    collator and loss, which ``benchmarks/sft_step_cost.py`` times against it).

    Raises:
        TrainingDataError: a trace longer than ``model.max_seq_length`` with its prompt (truncation
            would cut the scores off the end), or a trace that does not hold its verdict under the
            one rule (:func:`persrm_lib.train.data.check_verdicts`): every example is checked here,
            right before training, whatever transformed it on the way.
    """
    from .data import check_verdicts

    check_verdicts(traces)  # every example, right before training, whatever transformed it on the way
    from trl import SFTTrainer

    mode = profile.prompt.mode
    dataset = sft_dataset(traces, tokenizer, mode)  # the model's own special tokens are neutralised too
    _check_lengths(
        dataset, [tid for tid, _, _ in sft_rows(traces, None, mode)], tokenizer, profile.model.max_seq_length
    )
    trainer = SFTTrainer(
        model=model,
        args=sft_config(profile, output_dir, backend, completion_logits),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    if _cuts_logits(backend, completion_logits):
        trainer.data_collator = CompletionLogits(trainer.data_collator)
    return quiet(trainer)


@holds_run_lock  # one writer per run folder: a second training there is refused, naming this one
def train_sft(
    profile: Profile,
    run: str | Path,
    traces: Source | None = None,
    backend: str | None = None,
) -> TrainResult:
    """Supervised fine-tuning on faithful traces (paper §3.2): learn log p(trace | prompt).

    Args:
        profile: hyper-parameters (``profile.sft``, ``profile.model``, ``profile.lora``, seed).
        run: the run folder; the adapter goes to ``sft/adapter``, the log to ``sft/log.csv``.
        traces: a JSONL file or a list of traces; default ``runfiles.faithful_traces_path(run)``.
            With ``sft.both_orders`` each trace is followed by its copy for the swapped pair
            (:func:`persrm_lib.teachers.swap.both_orders`: responses, label, scores and the A/B
            mentions of the trace exchanged), so the chosen response is A exactly half the time.
        backend: ``unsloth``/``transformers``/None (``persrm_lib.models.backend.select_backend``).

    Returns:
        A :class:`~persrm_lib.train.common.TrainResult`.

    Raises:
        TrainingDataError: see :func:`~persrm_lib.train.data.check_traces`; also a trace longer
            than ``model.max_seq_length``, or one that does not hold its verdict after the swap.
        RunFolderBusyError: another process writes to ``run`` (:mod:`persrm_lib.core.runlock`).
        AdapterReplaceError: ``sft/adapter`` holds something this project's training did not save.

    >>> # result = train_sft(get_profile("smoke"), "runs/smoke"); result.adapter_dir.name
    """
    from ..models.backend import load_for_training
    from .adapters import check_replaceable

    run = Path(run)
    profile.validate()
    check_replaceable(runfiles.adapter_dir(run, "sft"), profile.name)  # refused before training, not after
    data = check_traces(runfiles.faithful_traces_path(run) if traces is None else traces)
    if profile.sft.both_orders and profile.prompt.mode == "pairwise":
        data = both_orders(data)  # each trace, then its swapped copy with the trace rewritten
    elif profile.prompt.mode == "pointwise":
        sft_rows(data, None, "pointwise")  # every trace has its pointwise form, before a model is loaded
    model, tokenizer, name = load_for_training(profile, backend)
    log = TrainingLog(runfiles.log_path(run, "sft"), SFT_LOG_FIELDS)
    trainer = sft_trainer(
        profile, runfiles.stage_dir(run, "sft") / "trainer", data, model, tokenizer, name, [log.callback()]
    )
    return train_and_save(trainer, tokenizer, profile, run, "sft", name, log, data)


def trainer_view(
    profile: Profile, trace: Mapping[str, Any], model: Any, tokenizer: Any, row: int = 0
) -> dict[str, Any]:
    """One SFT example exactly as TRL's ``SFTTrainer`` trains on it (notebook 03): the trainer is
    built by :func:`sft_trainer` for this one trace, and its tokenised row is split where the labels
    start (TRL sets the label of every prompt token to -100: no loss there).

    Args:
        profile: the run's profile (template, mode, lengths).
        trace: one checked trace.
        model, tokenizer: a LoRA model and its tokenizer (e.g. the trained ones).
        row: which example of the trace (pointwise traces give two, one per response).

    Returns:
        ``id``, ``prompt_text`` and ``completion_text`` (decoded with the chat template's special
        tokens), ``prompt_tokens`` and ``completion_tokens`` (counts; the loss is on the latter only).

    Raises:
        IndexError: the trace has no such example.
    """
    import tempfile

    ids = [tid for tid, _, _ in sft_rows([trace], None, profile.prompt.mode)]
    if not 0 <= row < len(ids):
        raise IndexError(f"trace {trace.get('id')!r} gives {len(ids)} SFT example(s), not an example {row}")
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    shown = is_progress_bar_enabled()
    disable_progress_bar()  # four bars for one example would bury it
    try:
        with tempfile.TemporaryDirectory(prefix="persrm-sft-view-") as folder:
            example = sft_trainer(profile, Path(folder), [trace], model, tokenizer).train_dataset[row]
    finally:
        if shown:
            enable_progress_bar()
    input_ids, labels = list(example["input_ids"]), list(example["labels"])
    start = next((i for i, label in enumerate(labels) if label != -100), len(labels))
    return {
        "id": ids[row],
        "prompt_text": tokenizer.decode(input_ids[:start]),
        "completion_text": tokenizer.decode(input_ids[start:]),
        "prompt_tokens": start,
        "completion_tokens": len(input_ids) - start,
    }
