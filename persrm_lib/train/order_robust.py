"""Order-robust GRPO: both orders of each pair in one step, the advantage over the joint group.

Why. TRL's ``GRPOTrainer`` normalises rewards within the ``num_generations`` samples of ONE prompt.
A policy that always answers "A" gets reward +1 on every sample of a pair labelled A and 0 on
every sample of the same pair labelled B: each group has zero spread, so every advantage is zero
(``frac_reward_zero_std`` = 1) and nothing pulls the policy out of the collapse (measured on an
H200 with this project's reward: 40 steps x 64 samples, A-preference 98%; docs/design.md,
"Measured on an H200"). Computing the advantage over the *joint* group of both orders of a pair --
J4R's EIS-GRPO (arXiv 2505.13346) -- gives the always-A policy a signal: in the joint group its
samples on the A-labelled order are above the mean and those on the B-labelled order below it.

How. The GRPO dataset holds each pair followed by its swapped copy (:func:`paired_orders`). The
sampler (:class:`PairedOrderSampler`) keeps a pair's two orders together: it draws pairs with
TRL's own ``RepeatSampler`` and expands pair ``u`` into ``num_generations`` copies of row ``2u``
then ``num_generations`` copies of row ``2u + 1``. The trainer (:func:`persrm_grpo_trainer_class`)
lets TRL generate and score as usual, then recomputes the advantages over groups of
``2 * num_generations`` (:func:`joint_advantages`), optionally adding J1's consistency bonus
(arXiv 2505.10320: a sample pair, one per order, that is right in both orders earns ``bonus``).
It logs ``frac_reward_zero_std`` of TRL's per-prompt groups beside ``joint/frac_reward_zero_std``
and the A-preference share of the parsed verdicts (``a_preference``).

Limits: a single optimisation group must hold whole pairs, so ``generation_batch_size`` must be a
multiple of ``2 * num_generations``; generation through vLLM is not supported by this trainer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..core.verdict import a_share, read_verdict
from ..data.pairs import SWAPPED_SUFFIX, swap_pair

EPS = 1e-4  # TRL's GRPOTrainer adds 1e-4 to the group std (trl/trainer/grpo_trainer.py)


def swap_orders(pair: Mapping[str, Any]) -> dict[str, Any]:
    """The pair with responses A and B exchanged, the label (and evidence) with them; the id gains
    ``:swapped`` (:func:`persrm_lib.data.pairs.swap_pair`).

    >>> swap_orders({"id": "p1", "response_a": "x", "response_b": "y", "label": "a"})["label"]
    'b'
    """
    return swap_pair(pair, suffix=True)


def paired_orders(pairs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``[p0, swap(p0), p1, swap(p1), ...]``: the layout :class:`PairedOrderSampler` expects.

    Raises:
        ValueError: an empty list, or a pair that is already a swapped copy (its id ends in ``:swapped``).
    """
    if not pairs:
        raise ValueError("paired_orders got no pairs")
    rows: list[dict[str, Any]] = []
    for pair in pairs:
        if str(pair["id"]).endswith(SWAPPED_SUFFIX):
            raise ValueError(f"pair {pair['id']!r} is already a swapped copy: give each pair once, in one order")
        rows.extend([dict(pair), swap_orders(pair)])
    return rows


def joint_advantages(
    rewards: Any, group_size: int, scale: str = "group", consistency_bonus: float = 0.0
) -> tuple[Any, Any]:
    """Group-normalised advantages over joint groups of both orders.

    Args:
        rewards: float tensor of shape ``(n,)``, ``n`` a multiple of ``group_size``; consecutive
            ``group_size`` rows are one pair: the first half in the original order, the second half
            swapped. NaN marks an unscorable completion (its advantage is 0, as in TRL).
        group_size: ``2 * num_generations``.
        scale: ``"group"`` (divide by the joint group's std + 1e-4, TRL's default), ``"batch"``
            (by the batch std) or ``"none"``.
        consistency_bonus: added to both samples ``i`` (original order) and ``i`` (swapped) when
            both are correct (reward 1), J1's consistency reward.

    Returns:
        ``(advantages, is_std_zero)``, both of shape ``(n,)``.

    Raises:
        ValueError: ``n`` not a multiple of ``group_size``, an odd ``group_size``, or another ``scale``.

    >>> import torch
    >>> adv, zero = joint_advantages(torch.tensor([1., 1., 0., 0.]), group_size=4)  # always-A policy
    >>> [round(x, 3) for x in adv.tolist()], zero.tolist()
    ([0.866, 0.866, -0.866, -0.866], [False, False, False, False])
    """
    import torch

    if group_size < 2 or group_size % 2:
        raise ValueError(f"group_size must be even (2 x num_generations), got {group_size}")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into joint groups of {group_size}")
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    rewards = rewards.clone().float()
    grouped = rewards.view(-1, group_size)
    if consistency_bonus:
        half = group_size // 2
        both = (grouped[:, :half] == 1) & (grouped[:, half:] == 1)
        grouped[:, :half] += consistency_bonus * both
        grouped[:, half:] += consistency_bonus * both
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    centred = grouped - mean
    valid = (~torch.isnan(grouped)).sum(dim=1, keepdim=True).clamp(min=2)
    std = torch.sqrt(torch.nansum(centred**2, dim=1, keepdim=True) / (valid - 1))  # unbiased, like torch.std
    std_rows = std.expand_as(grouped).reshape(-1)
    flat = centred.reshape(-1)
    if scale == "group":
        flat = flat / (std_rows + EPS)
    elif scale == "batch":
        batch_std = torch.sqrt(torch.nansum((rewards - torch.nanmean(rewards)) ** 2) / max(rewards.numel() - 1, 1))
        flat = flat / (batch_std + EPS)
    is_std_zero = torch.isclose(std_rows, torch.zeros_like(std_rows))
    return torch.nan_to_num(flat, nan=0.0), is_std_zero


def a_preference(completions: Sequence[str]) -> float:
    """The A-preference (:func:`persrm_lib.core.verdict.a_share`) of sampled completions that parse;
    NaN when none parses."""
    judged = (read_verdict(text) for text in completions)
    return a_share([verdict.preferred for verdict in judged if verdict.format_ok])


class PairedOrderSampler:
    """Yield row ``2u`` then row ``2u + 1`` of each drawn pair ``u``, ``num_generations`` times each.

    Pairs are drawn by TRL's ``RepeatSampler`` over the pair indices (its shuffling, batching and
    repetition for ``steps_per_generation`` / ``num_iterations``), so a joint group of
    ``2 * num_generations`` consecutive rows always holds one pair in both orders.

    Args:
        n_rows: rows of the dataset (even: pairs and their swapped copies, see :func:`paired_orders`).
        num_generations: completions per prompt.
        pairs_per_batch: pairs per generation batch (``generation_batch_size // (2 * num_generations)``).
        repeat_count: as TRL's ``num_iterations * steps_per_generation``.
        shuffle, seed: as TRL's ``RepeatSampler``.

    >>> list(PairedOrderSampler(4, num_generations=2, pairs_per_batch=2, shuffle=False))
    [0, 0, 1, 1, 2, 2, 3, 3]
    """

    def __init__(
        self,
        n_rows: int,
        num_generations: int,
        pairs_per_batch: int,
        repeat_count: int = 1,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> None:
        from trl.trainer.utils import RepeatSampler

        if n_rows < 2 or n_rows % 2:
            raise ValueError(f"the dataset must hold each pair in both orders (an even number of rows), got {n_rows}")
        if pairs_per_batch < 1:
            raise ValueError(
                f"a generation batch must hold at least one pair in both orders (2 x {num_generations} completions)"
            )
        self.num_generations = num_generations
        self._pairs = RepeatSampler(
            data_source=range(n_rows // 2),
            mini_repeat_count=1,
            batch_size=pairs_per_batch,
            repeat_count=repeat_count,
            shuffle=shuffle,
            seed=seed,
        )

    def __iter__(self) -> Iterator[int]:
        for unit in self._pairs:
            for row in (2 * unit, 2 * unit + 1):
                yield from [row] * self.num_generations

    def __len__(self) -> int:
        return len(self._pairs) * 2 * self.num_generations


def end_at_stop(sequences: Any, prompt_length: int, eos_id: int, pad_id: int | None) -> Any:
    """Close completions that a stop string ended: the first padding token after them becomes EOS.

    ``generate`` pads a sequence that a stopping criterion finished; TRL masks a completion after
    its first EOS token, so where the pad token is not the EOS token the padding would count as
    completion. Rows that already hold an EOS, and rows that ran to the length limit, are unchanged.

    Args:
        sequences: long tensor ``(batch, prompt_length + new_tokens)`` from ``model.generate``.
        prompt_length: columns of the (left-padded) prompt.
        eos_id, pad_id: the tokenizer's ids.

    Returns:
        The tensor, changed in place.
    """
    if pad_id is None or pad_id == eos_id:
        return sequences
    completions = sequences[:, prompt_length:]
    for row in completions:
        ids = row.tolist()
        if eos_id in ids or not ids or ids[-1] != pad_id:
            continue
        first_pad = len(ids)
        while first_pad > 0 and ids[first_pad - 1] == pad_id:
            first_pad -= 1
        row[first_pad] = eos_id
    return sequences


def persrm_grpo_trainer_class(
    joint_orders: bool = True,
    consistency_bonus: float = 0.0,
    stop_strings: Sequence[str] = ("</scores>",),
    mode: str = "pairwise",
) -> type:
    """This project's subclass of TRL's ``GRPOTrainer`` (built lazily: TRL is heavy).

    Args:
        joint_orders: lay out and sample both orders of each pair together and compute the advantage
            over the joint group (:func:`joint_advantages`); False keeps TRL's per-prompt groups
            (the dataset then need not be laid out by :func:`paired_orders`).
        consistency_bonus: J1's bonus for a sample pair right in both orders (``joint_orders`` only).
        stop_strings: sampling stops once one of them is written (anything after ``</scores>``
            is a format violation anyway); empty: stop only at EOS or the length limit.
        mode: ``pairwise`` (rows are pairs in both orders) or ``pointwise`` (rows are the two
            responses of a pair, :func:`persrm_lib.core.pointwise.side_rows`; no A-preference is
            logged: a pointwise completion has no position to prefer).

    Returns:
        The class; construct it like ``GRPOTrainer``. It logs ``a_preference`` every step and, with
        ``joint_orders``, ``joint/frac_reward_zero_std`` beside TRL's ``frac_reward_zero_std``.
    """
    from trl import GRPOTrainer

    if consistency_bonus and not joint_orders:
        raise ValueError("consistency_bonus needs joint_orders: a sample pair spans both orders of a pair")

    class PersRMGRPOTrainer(GRPOTrainer):
        """GRPO with joint-order advantages, sampling that stops at ``</scores>`` (module docstring)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if stop_strings:
                self._stop_at(list(stop_strings))

        def _stop_at(self, strings: list[str]) -> None:
            from transformers import StoppingCriteriaList
            from transformers.generation import StopStringCriteria

            tokenizer = self.processing_class
            criteria = StopStringCriteria(tokenizer, strings)
            model = self.model
            plain_generate = model.generate
            eos_id = self.eos_token_ids[0] if isinstance(self.eos_token_ids, list) else self.eos_token_ids

            def generate(*args: Any, **kwargs: Any) -> Any:
                kwargs.setdefault("stopping_criteria", StoppingCriteriaList([criteria]))
                prompt_length = kwargs["input_ids"].shape[1] if "input_ids" in kwargs else args[0].shape[1]
                out = plain_generate(*args, **kwargs)
                return end_at_stop(out, prompt_length, int(eos_id), tokenizer.pad_token_id)

            model.generate = generate  # the instance TRL unwraps for generation

        def _get_train_sampler(self, dataset: Any = None) -> Any:
            if not joint_orders:
                return super()._get_train_sampler(dataset)
            dataset = self.train_dataset if dataset is None else dataset
            per_batch = self.args.generation_batch_size // (2 * self.num_generations)
            if self.args.generation_batch_size % (2 * self.num_generations):
                raise ValueError(
                    f"generation batch of {self.args.generation_batch_size} completions does not hold whole pairs "
                    f"in both orders (2 x num_generations = {2 * self.num_generations})"
                )
            return PairedOrderSampler(
                len(dataset),
                self.num_generations,
                per_batch,
                repeat_count=self.num_iterations * self.args.steps_per_generation,
                shuffle=self.shuffle_dataset,
                seed=self.args.seed,
            )

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # noqa: ANN001, ANN202
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._joint_rewards_per_func = rewards_per_func  # gathered across processes by TRL
            return rewards_per_func

        def _generate_and_score_completions(self, inputs):  # noqa: ANN001, ANN202
            import torch

            output = super()._generate_and_score_completions(inputs)
            if not self.model.training:
                return output
            if mode == "pairwise":
                texts = self.processing_class.batch_decode(output["completion_ids"], skip_special_tokens=True)
                share = a_preference(texts)
                if share == share:  # not NaN: some verdict parsed
                    self._metrics["train"]["a_preference"].append(share)
            if not joint_orders:
                return output
            per_func = self._joint_rewards_per_func
            weights = self.reward_weights.to(per_func.device).unsqueeze(0)
            rewards = (per_func * weights).nansum(dim=1)
            rewards[torch.isnan(per_func).all(dim=1)] = torch.nan
            advantages, is_std_zero = joint_advantages(
                rewards, 2 * self.num_generations, scale=self.scale_rewards, consistency_bonus=consistency_bonus
            )
            n_local = output["advantages"].shape[0]
            start = self.accelerator.process_index * n_local
            output["advantages"] = advantages[start : start + n_local].to(output["advantages"].device)
            self._metrics["train"]["joint/frac_reward_zero_std"].append(is_std_zero.float().mean().item())
            return output

    return PersRMGRPOTrainer
