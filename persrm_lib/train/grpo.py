"""GRPO reinforcement fine-tuning (PersRM-R1 §3.3) through TRL's ``GRPOTrainer``.

GRPO starts from the SFT adapter on the training pairs, with the sparse reward of
:mod:`persrm_lib.core.reward` (``label`` is a dataset column), the KL coefficient ``beta`` of the
profile (TRL's default is 0; the paper uses 1e-3) and ``num_generations`` samples per prompt.

The base model is loaded with fresh LoRA layers of the profile's shape by ``load_for_training`` and
the SFT adapter's weights are copied into them (:func:`persrm_lib.train.adapters.load_adapter_weights`).
This keeps the backend choice in one place (an Unsloth-patched model stays patched), and the
adapter's shape is checked against the profile. With ``beta > 0`` TRL then copies that adapter into
a frozen ``ref`` adapter: the KL term keeps the policy near the SFT model, as in the paper.

Outputs in the run folder: ``<stage>/adapter/``, ``<stage>/log.csv``
(:data:`~persrm_lib.train.logs.GRPO_LOG_FIELDS`) and ``<stage>/completions.jsonl``
(:data:`~persrm_lib.train.logs.GRPO_COMPLETION_FIELDS`). The stage is ``rft`` (from SFT) or another
``rft_<name>`` folder, e.g. ``rft_from_base`` for GRPO started from the base model (paper §5.1).
Every ``grpo.eval_every`` steps the first ``grpo.eval_pairs`` validation pairs are judged greedily
(:class:`~persrm_lib.train.validation.ValidationEval`).

The trainer is this project's subclass (:func:`persrm_lib.train.order_robust.persrm_grpo_trainer_class`):
with ``grpo.joint_orders`` every pair is trained in both orders in one step and the advantage is
computed over the joint group (EIS-GRPO; TRL's per-prompt groups give an always-A policy zero
advantage), optionally with J1's consistency bonus; with ``grpo.stop_at_scores`` sampling stops once
``</scores>`` is written. The A-preference share and the share of zero-spread groups are logged.

With ``prompt.mode = "pointwise"`` (:mod:`persrm_lib.core.pointwise`) each pair gives two rows,
one per response, rewarded by :func:`~persrm_lib.core.pointwise.pointwise_reward`; the joint group
then holds both responses of a pair, and sampling stops at ``</score>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core import runfiles
from ..core.config import Profile
from ..core.pointwise import pointwise_reward, side_rows
from ..core.reward import persrm_reward
from ..core.runlock import holds_run_lock
from ..data.pairs import SWAPPED_SUFFIX
from ..models.context import check_prompts, known_budget
from ..models.generation import SCORE_STOP, SCORES_STOP
from .adapters import check_adapter, check_evidence_matches, load_adapter_weights
from .common import TrainResult, common_args, process_index, quiet, train_and_save, world_size
from .data import Source, check_pairs, grpo_dataset, grpo_validation_pairs
from .logs import GRPO_LOG_FIELDS, RewardTracker, TrainingLog
from .order_robust import paired_orders, persrm_grpo_trainer_class
from .validation import ValidationEval


def check_grpo_profile(profile: Profile) -> None:
    """Raise ``ValueError`` naming the setting when the profile's GRPO batch cannot be formed."""
    world = world_size()
    profile.validate()  # batch divisible by num_generations, num_generations >= 2
    if profile.grpo.batch_size % world:
        raise ValueError(
            f"profile {profile.name!r}: grpo.batch_size={profile.grpo.batch_size} does not divide by the "
            f"{world} training processes"
        )


def check_grpo_stage(stage: str) -> str:
    """A GRPO stage folder name: ``rft`` or ``rft_<something>`` (never a path, never another stage's)."""
    if not isinstance(stage, str) or not (stage == "rft" or stage.startswith("rft_")) or not stage.isidentifier():
        raise ValueError(
            f"GRPO stage {stage!r} is not a run-folder stage name: use 'rft' or 'rft_<name>' such as 'rft_from_base'"
        )
    return stage


def mode_reward(profile: Profile) -> Callable[..., list[float]]:
    """The -1/0/+1 reward of the profile's ``prompt.mode``: :func:`~persrm_lib.core.reward.persrm_reward`
    (pairwise) or :func:`~persrm_lib.core.pointwise.pointwise_reward` (pointwise)."""
    return pointwise_reward if profile.prompt.mode == "pointwise" else persrm_reward


def grpo_config(profile: Profile, output_dir: Path, backend: str = "transformers") -> Any:
    """TRL ``GRPOConfig`` from the profile: one generation batch of ``grpo.batch_size`` completions
    (``batch_size / num_generations`` prompts) per optimiser step."""
    from trl import GRPOConfig

    grpo = profile.grpo
    world = world_size()
    per_device = grpo.num_generations if grpo.batch_size // world >= grpo.num_generations else grpo.batch_size // world
    return GRPOConfig(
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=max(1, grpo.batch_size // (per_device * world)),
        learning_rate=grpo.learning_rate,
        max_steps=grpo.max_steps,
        logging_steps=grpo.logging_steps,
        num_generations=grpo.num_generations,
        max_completion_length=grpo.max_completion_length,
        temperature=grpo.temperature,
        beta=grpo.beta,
        disable_dropout=True,
        log_completions=False,  # our tracker writes them (rft/completions.jsonl)
        **common_args(profile, output_dir, backend),
    )


def grpo_trainer(
    profile: Profile,
    output_dir: Path,
    pairs: Sequence[Mapping[str, Any]],
    model: Any,
    tokenizer: Any,
    backend: str = "transformers",
    reward: Callable[..., list[float]] | None = None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """TRL ``GRPOTrainer`` for checked pairs on a LoRA model, rewarded by ``reward`` (default a
    :class:`~persrm_lib.train.logs.RewardTracker` of :func:`mode_reward` that keeps nothing on disk).

    Raises:
        PromptTooLongError: a pair whose prompt, with ``grpo.max_completion_length`` tokens to
            sample, does not fit the model's context or ``model.max_seq_length``
            (:mod:`persrm_lib.models.context`), naming the pair and its tokens.
    """
    grpo = profile.grpo
    mode = profile.prompt.mode
    if mode == "pointwise":  # each response of a pair, A then B: the joint group holds both
        rows = side_rows(pairs)
    else:  # with joint_orders each pair then its swap: the joint group holds both orders
        rows = paired_orders(pairs) if grpo.joint_orders else list(pairs)
    dataset = grpo_dataset(rows, tokenizer, mode)  # the model's own special tokens are neutralised too
    budget = known_budget(
        model, tokenizer, reserved=profile.grpo.max_completion_length, max_length=profile.model.max_seq_length
    )
    if budget is not None and len(dataset):  # a swapped copy has its pair's length: each pair checked once
        kept = [
            (m, pid)
            for m, pid in zip(dataset["prompt"], dataset["pair_id"], strict=True)
            if not pid.endswith(SWAPPED_SUFFIX)
        ]
        prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m, _ in kept]
        check_prompts(tokenizer, prompts, [pid for _, pid in kept], budget)
    trainer_class = persrm_grpo_trainer_class(
        joint_orders=grpo.joint_orders,
        consistency_bonus=grpo.consistency_bonus,
        stop_strings=(SCORE_STOP if mode == "pointwise" else SCORES_STOP) if grpo.stop_at_scores else (),
        mode=mode,
    )
    trainer = trainer_class(
        model=model,
        reward_funcs=[reward if reward is not None else RewardTracker(reward_fn=mode_reward(profile))],
        args=grpo_config(profile, output_dir, backend),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    return quiet(trainer)


@holds_run_lock  # one writer per run folder: a second training there is refused, naming this one
def train_grpo(
    profile: Profile,
    run: str | Path,
    pairs: Source | None = None,
    sft_adapter: str | Path | None = None,
    from_sft: bool = True,
    backend: str | None = None,
    reward_fn: Callable[..., list[float]] | None = None,
    stage: str = "rft",
    validation_pairs: Source | None = None,
) -> TrainResult:
    """GRPO reinforcement fine-tuning (paper §3.3) with the sparse -1/0/+1 reward.

    Args:
        profile: hyper-parameters (``profile.grpo``: batch, ``num_generations``, ``beta``,
            ``temperature``, ``max_completion_length``, learning rate, steps; seed).
        run: the run folder; adapter to ``<stage>/adapter``, log to ``<stage>/log.csv``, sampled
            completions to ``<stage>/completions.jsonl``.
        pairs: a JSONL file or a list of pairs; default ``runfiles.pairs_path(run, "train")``.
        sft_adapter: the adapter to start from; default ``runfiles.adapter_dir(run, "sft")``.
        from_sft: False starts from fresh LoRA on the base model (the RFT-only ablation).
        backend: ``unsloth``/``transformers``/None.
        reward_fn: the reward (default the paper's :func:`~persrm_lib.core.reward.persrm_reward`, or
            :func:`~persrm_lib.core.pointwise.pointwise_reward` with ``prompt.mode = "pointwise"``).
        stage: the run-folder stage written: ``rft`` (default) or ``rft_<name>``, e.g.
            ``rft_from_base`` with ``from_sft=False`` for the paper's §5.1 comparison.
        validation_pairs: pairs evaluated greedily every ``grpo.eval_every`` steps (the first
            ``grpo.eval_pairs``); default ``runfiles.pairs_path(run, "validation")`` when it exists.
            Off when ``grpo.eval_every`` or ``grpo.eval_pairs`` is 0.

    Returns:
        A :class:`~persrm_lib.train.common.TrainResult` whose ``log`` rows carry reward, outcome
        shares, KL, length and, on evaluated steps, ``validation_accuracy`` and ``validation_format``.

    Raises:
        ValueError: the GRPO batch does not divide by ``num_generations`` (or the processes); a
            mismatched SFT adapter; a ``stage`` that is not ``rft`` or ``rft_<name>``.
        TrainingDataError: see :func:`~persrm_lib.train.data.check_pairs` (for the training and
            the validation pairs).
        FileNotFoundError: no SFT adapter where one is expected.
        RunFolderBusyError: another process writes to ``run`` (:mod:`persrm_lib.core.runlock`).
        AdapterReplaceError: ``<stage>/adapter`` holds something this project's training did not save.

    >>> # result = train_grpo(get_profile("smoke"), "runs/smoke"); result.log[-1]["reward"]
    """
    from ..models.backend import load_for_training
    from .adapters import check_replaceable

    run = Path(run)
    check_grpo_stage(stage)
    check_grpo_profile(profile)
    data = check_pairs(runfiles.pairs_path(run, "train") if pairs is None else pairs)
    validation = grpo_validation_pairs(profile, run, validation_pairs)
    check_replaceable(runfiles.adapter_dir(run, stage), profile.name)  # before training, not after
    adapter = Path(sft_adapter) if sft_adapter is not None else runfiles.adapter_dir(run, "sft")
    if from_sft:
        check_adapter(adapter, profile)
        check_evidence_matches(adapter, data)  # the SFT model read the table only if these pairs carry it
    model, tokenizer, name = load_for_training(profile, backend)
    if from_sft:
        load_adapter_weights(model, adapter, profile)
    completions = runfiles.completions_path(run, stage)
    if process_index() == 0:
        for old in sorted(completions.parent.glob(f"{completions.stem}*{completions.suffix}")):
            old.unlink()  # a rerun replaces the sampled completions
    reward_fn = mode_reward(profile) if reward_fn is None else reward_fn
    tracker = RewardTracker(completions, process_index=process_index(), reward_fn=reward_fn)
    log = TrainingLog(runfiles.log_path(run, stage), GRPO_LOG_FIELDS, tracker=tracker)
    callbacks = [log.callback()]  # first: the evaluation below is not part of seconds_per_step
    if validation:
        callbacks.append(ValidationEval(profile, validation, tokenizer, log, profile.grpo.eval_every).callback())
    output_dir = runfiles.stage_dir(run, stage) / "trainer"
    trainer = grpo_trainer(profile, output_dir, data, model, tokenizer, name, tracker, callbacks)
    return train_and_save(
        trainer,
        tokenizer,
        profile,
        run,
        stage,
        name,
        log,
        data,
        info={"from_sft": str(adapter) if from_sft else None},
        completions_path=tracker.completions_path,
    )


# ---- one batch, opened up (notebook 04) ----------------------------------------------------------


def inspection_trainer(
    profile: Profile,
    pairs: Sequence[Mapping[str, Any]],
    reference_adapter: str | Path | None,
    policy_adapter: str | Path | None = None,
    output_dir: str | Path | None = None,
    reward: Callable[..., list[float]] | None = None,
) -> Any:
    """The GRPO trainer :func:`train_grpo` builds (same model, LoRA, dataset, reward and subclass),
    to open up one batch; it trains nothing and writes nothing but ``output_dir``.

    Args:
        profile: the run's profile.
        pairs: checked training pairs.
        reference_adapter: the adapter GRPO starts from (the SFT adapter; None: fresh LoRA, GRPO
            from the base model); with ``grpo.beta > 0`` TRL copies it into the frozen ``ref``
            adapter of the KL term, as in training.
        policy_adapter: loaded into the trained (``default``) adapter after that copy, e.g. the RFT
            adapter, so the batch is read where training ended; None keeps the start.
        output_dir: the trainer's folder (default a new temporary folder).
        reward: the reward (default :func:`mode_reward` of the profile).

    Returns:
        The trainer (``PersRMGRPOTrainer``), its model in eval mode.
    """
    import tempfile

    from ..models.backend import load_for_training

    model, tokenizer, name = load_for_training(profile)
    if reference_adapter is not None:
        load_adapter_weights(model, reference_adapter, profile)
    folder = Path(output_dir) if output_dir is not None else Path(tempfile.mkdtemp(prefix="persrm-grpo-"))
    trainer = grpo_trainer(profile, folder, pairs, model, tokenizer, name, reward and RewardTracker(reward_fn=reward))
    if policy_adapter is not None:
        load_adapter_weights(trainer.model, policy_adapter, profile)  # "default" only: "ref" stays the start
    trainer.model.eval()
    return trainer


def scored_batch(trainer: Any, pair_index: int = 0, seed: int = 0) -> dict[str, Any]:
    """One pair's joint group, sampled and scored exactly as in training (TRL's
    ``_generate_and_score_completions`` with this project's joint advantages).

    Args:
        trainer: from :func:`inspection_trainer` (or :func:`grpo_trainer`).
        pair_index: which pair of the trainer's dataset (its rows ``2 i`` and ``2 i + 1``: the two
            orders, or pointwise the two responses).
        seed: torch seed for the sampling.

    Returns:
        TRL's batch: ``prompt_ids``/``prompt_mask`` ``(2G, P)``, ``completion_ids``/``completion_mask``
        ``(2G, T)`` (G = ``num_generations``; rows ``0..G-1`` the first row of the pair),
        ``advantages`` ``(2G,)``, ``num_items_in_batch`` (completion tokens), ``ref_per_token_logps``
        ``(2G, T)`` when ``beta > 0``, ``old_per_token_logps`` (None on-policy: one update per
        generation); the model is left in eval mode.

    Raises:
        IndexError: no such pair in the dataset.
    """
    import torch

    dataset = trainer.train_dataset
    if not 0 <= 2 * pair_index + 1 < len(dataset):
        raise IndexError(f"pair_index {pair_index} is outside the dataset's {len(dataset) // 2} pairs")
    g = trainer.num_generations
    rows = [dataset[2 * pair_index]] * g + [dataset[2 * pair_index + 1]] * g
    torch.manual_seed(seed)
    trainer.model.train()  # the joint advantages are computed in training mode (dropout is disabled)
    try:
        batch = trainer._generate_and_score_completions(rows)
    finally:
        trainer.model.eval()
    return batch


def trainer_loss(trainer: Any, batch: Mapping[str, Any]) -> Any:
    """TRL's own GRPO loss of ``batch`` (``GRPOTrainer._compute_loss``, TRL 1.14) with the model in
    eval mode, so it is not divided by the gradient-accumulation steps: the loss of the whole
    generation batch, as the trainer's micro-batches add up to. Returns a 0-d tensor with its graph."""
    trainer.model.eval()
    return trainer._compute_loss(trainer.model, dict(batch))
