"""The training stages' run files, each with ONE writer and ONE reader, and their headline numbers:
``<stage>/log.csv`` (one row per logged optimiser step; :class:`TrainingLog`, :func:`read_log`) and,
for GRPO, ``<stage>/completions.jsonl`` (every sampled completion; :class:`RewardTracker`,
:func:`read_grpo_completions`).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.jsonl import JsonlAppender, iter_jsonl
from ..core.reward import OUTCOME_NAMES, Completion, completion_text, outcome_shares, persrm_reward
from ..core.verdict import LABELS

SFT_LOG_FIELDS: tuple[str, ...] = (
    "step", "epoch", "loss", "learning_rate", "grad_norm", "seconds_per_step", "num_tokens", "mean_token_accuracy",
)  # fmt: skip
GRPO_LOG_FIELDS: tuple[str, ...] = (
    "step",
    "loss",
    "learning_rate",
    "grad_norm",
    "seconds_per_step",
    "num_tokens",
    "reward",
    "reward_std",
    *OUTCOME_NAMES,  # format_violation, wrong, correct: shares of the step's sampled completions
    "kl",
    "completion_length",
    "clipped_ratio",
    "entropy",
    "validation_accuracy",  # greedy, on the first grpo.eval_pairs validation pairs; empty between evaluations
    "validation_format",
    "frac_reward_zero_std",  # TRL's per-prompt groups whose rewards are all equal (no learning signal)
    "joint_frac_reward_zero_std",  # the same over joint groups of both orders (grpo.joint_orders)
    "a_preference",  # share of the step's parsed verdicts that prefer response A
)
# The columns 06_training_dynamics draws and reports (a blank one is listed as missing).
SFT_CURVES: tuple[str, ...] = ("step", "loss", "learning_rate", "mean_token_accuracy", "seconds_per_step")
GRPO_CURVES: tuple[str, ...] = (
    "step", "loss", "learning_rate", "seconds_per_step", "reward", *OUTCOME_NAMES, "kl", "completion_length",
    "validation_accuracy",
)  # fmt: skip
GRPO_COMPLETION_FIELDS: tuple[str, ...] = ("step", "pair_id", "label", "completion", "reward")
# TRL's log keys -> our CSV columns (where the names differ); applied once, by the writer.
_TRL_KEYS = {
    "completions/mean_length": "completion_length",
    "completions/clipped_ratio": "clipped_ratio",
    "joint/frac_reward_zero_std": "joint_frac_reward_zero_std",
}
_SUMMARY_FORMATS = {
    "loss": ".4f", "reward": "+.3f", "correct": ".2f", "format_violation": ".2f", "kl": ".4f",
    "completion_length": ".1f", "seconds_per_step": ".1f", "validation_accuracy": ".2f",
}  # fmt: skip


def _number(value: Any) -> Any:
    """A number for the CSV, or "" (blank) for None, a bool, NaN or text."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return value if is_number and not math.isnan(value) else ""


PRINTED_ROWS = 20  # training-log lines printed per run; the CSV keeps every logged step


class TrainingLog:
    """Writes ``<stage>/log.csv`` (columns ``fields``) as training goes, fed by :meth:`callback`: one
    row per logged step, appended at once (a crash keeps the steps before it), with
    ``seconds_per_step`` measured here (generation included) and for GRPO the outcome shares of the
    :class:`RewardTracker`; the trainer's ``state.log_history`` has neither.
    """

    def __init__(self, path: str | Path, fields: Sequence[str], tracker: RewardTracker | None = None) -> None:
        self.path = Path(path)
        self.fields = tuple(fields)
        self.tracker = tracker
        self.max_steps = 0
        self.rows: list[dict[str, Any]] = []
        self._step_start = 0.0
        self._durations: list[float] = []
        self._last_logged_step = 0
        self._last_printed_step: int | None = None
        self._writes = True
        self._extra: dict[int, dict[str, float]] = {}  # step -> values measured outside the trainer's logs

    def add(self, step: int, values: Mapping[str, float]) -> None:
        """Values for the row of ``step`` (e.g. validation accuracy), merged in when it is recorded."""
        self._extra.setdefault(step, {}).update(values)

    def begin(self, is_main_process: bool = True) -> None:
        """Start a fresh file (a rerun replaces the old log); only the main process writes."""
        self._writes = is_main_process
        self._last_printed_step = None
        if self._writes:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.fields).writeheader()

    def record(self, step: int, logs: Mapping[str, Any]) -> dict[str, Any] | None:
        """Turn one trainer log into a row and append it; the end-of-training summary is skipped."""
        if "loss" not in logs:
            return None
        values = {_TRL_KEYS.get(k, k): v for k, v in logs.items()}
        values.update(self._extra.pop(step, {}))
        values["seconds_per_step"] = sum(self._durations) / len(self._durations) if self._durations else None
        if self.tracker is not None:
            shares = self.tracker.shares_between(self._last_logged_step + 1, step)
            for name in OUTCOME_NAMES:
                values[name] = shares.get(name, logs.get(f"outcome/{name}"))
        row = {name: step if name == "step" else _number(values.get(name)) for name in self.fields}
        self.rows.append(row)
        self._durations = []
        self._last_logged_step = step
        if self._writes:
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.fields).writerow(row)
            if self.prints(step):
                print(self.summary(row), flush=True)
                self._last_printed_step = step
        return row

    def prints(self, step: int) -> bool:
        """Whether ``step``'s row is also printed: every row goes to the CSV, but a notebook shows at
        most about :data:`PRINTED_ROWS` lines: the first logged row, the last step, and a row once at
        least ``ceil(max_steps / PRINTED_ROWS)`` steps have passed since the last printed one (so a
        ``logging_steps`` above 1 thins the lines, never hides them); every row when ``max_steps`` is unknown."""
        if self._last_printed_step is None or not self.max_steps or step >= self.max_steps:
            return True
        return step - self._last_printed_step >= math.ceil(self.max_steps / PRINTED_ROWS)

    def summary(self, row: Mapping[str, Any]) -> str:
        """One short line for a logged step (the trainer's own dict printer is switched off)."""
        parts = [f"step {row['step']}/{self.max_steps}" if self.max_steps else f"step {row['step']}"]
        parts += [f"{name} {row[name]:{fmt}}" for name, fmt in _SUMMARY_FORMATS.items() if row.get(name, "") != ""]
        return "  ".join(parts)

    def callback(self) -> Any:
        """A ``transformers.TrainerCallback`` that feeds this log."""
        from transformers import TrainerCallback

        log = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
                log.max_steps = int(state.max_steps or 0)
                log.begin(state.is_world_process_zero)

            def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
                log._step_start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
                log._durations.append(time.perf_counter() - log._step_start)

            def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
                log.record(state.global_step, logs or {})

        return _Callback()


def read_log(path: str | Path) -> pd.DataFrame:
    """THE reader of a training ``log.csv``: one row per logged step sorted by step, columns
    :data:`SFT_LOG_FIELDS` or :data:`GRPO_LOG_FIELDS`; ``step`` as int, the rest float, a blank as NaN.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: another header, no row, or a cell that is not a number (naming file and column).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log {path} does not exist")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"training log {path} is empty (no header)") from exc
    columns = tuple(str(c) for c in frame.columns)
    if columns not in (SFT_LOG_FIELDS, GRPO_LOG_FIELDS):
        raise ValueError(
            f"training log {path} has columns {', '.join(columns)}; expected the SFT log's "
            f"({', '.join(SFT_LOG_FIELDS)}) or the GRPO log's ({', '.join(GRPO_LOG_FIELDS)})"
        )
    if frame.empty:
        raise ValueError(f"training log {path} has no rows")
    for column in columns:
        try:
            frame[column] = pd.to_numeric(frame[column]).astype(int if column == "step" else float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"training log {path}: column {column!r} holds a value that is not a number") from exc
    return frame.sort_values("step", kind="stable").reset_index(drop=True)


def empty_columns(log: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The names among ``columns`` that ``log`` lacks or leaves blank on every row."""
    return [c for c in columns if c not in log.columns or log[c].isna().all()]


class RewardTracker:
    """``reward_fn`` (default :func:`persrm_lib.core.reward.persrm_reward`, the name TRL logs it
    under) with a memory: the outcome shares per call, and every sampled completion appended to
    ``completions_path`` (None: nothing on disk); the process of rank ``process_index`` k > 0 writes
    ``<stem>.rank<k>.jsonl`` beside it.
    """

    def __init__(
        self,
        completions_path: str | Path | None = None,
        process_index: int = 0,
        reward_fn: Callable[..., list[float]] = persrm_reward,
    ) -> None:
        self.__name__ = "persrm_reward"
        self.reward_fn = reward_fn
        self.history: list[dict[str, float]] = []
        path = Path(completions_path) if completions_path is not None else None
        if path is not None and process_index > 0:
            path = path.with_name(f"{path.stem}.rank{process_index}{path.suffix}")
        self.completions_path = path  # JsonlAppender creates its folder

    def __call__(self, completions: Sequence[Completion], label: Sequence[str], **kwargs: Any) -> list[float]:
        rewards = [float(r) for r in self.reward_fn(completions, label, **kwargs)]
        state = kwargs.get("trainer_state")
        # Completions are sampled before the optimiser step they train; number them by that step.
        step = int(state.global_step) + 1 if state is not None else len(self.history) + 1
        shares = outcome_shares(rewards)
        self.history.append({"step": step, "n": len(rewards), "reward_mean": sum(rewards) / len(rewards), **shares})
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        if callable(log_metric):
            for name, share in shares.items():
                log_metric(f"outcome/{name}", share)
        if self.completions_path is not None:
            pair_ids = kwargs.get("pair_id") or [None] * len(rewards)
            sides = kwargs.get("side")  # pointwise: the response each completion scores
            with JsonlAppender(self.completions_path) as out:
                for i, (pair_id, completion, lab, reward) in enumerate(
                    zip(pair_ids, completions, label, rewards, strict=True)
                ):
                    text = completion_text(completion)
                    values = (step, pair_id, lab, text if isinstance(text, str) else "", reward)
                    record = dict(zip(GRPO_COMPLETION_FIELDS, values, strict=True))
                    if sides is not None:
                        record["side"] = sides[i]
                    out.write(record)
        return rewards

    def shares_between(self, first_step: int, last_step: int) -> dict[str, float]:
        """Outcome shares over the completions of steps ``first_step..last_step`` (weighted by count)."""
        calls = [h for h in self.history if first_step <= h["step"] <= last_step]
        total = sum(h["n"] for h in calls)
        if total == 0:
            return {}
        return {name: sum(h[name] * h["n"] for h in calls) / total for name in OUTCOME_NAMES}


def read_grpo_completions(path: str | Path) -> list[dict[str, Any]]:
    """THE reader of a GRPO stage's ``completions.jsonl`` and the ``<stem>.rank<k>.jsonl`` files beside
    it (in name order): ``step`` (int), ``pair_id`` (str), ``label`` ("a"/"b"), ``completion`` (str),
    ``reward`` (float), and, pointwise, ``side`` ("a"/"b": the response the completion scores).

    Raises:
        FileNotFoundError: the file is missing (run 04_rft_grpo first).
        ValueError: a record lacks a field or has a bad value; the message names file and line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run notebook 04_rft_grpo first (it writes the RFT completions)")
    ranks = sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"))
    records: list[dict[str, Any]] = []
    for source, number, row in ((p, n, r) for p in [path, *ranks] for n, r in iter_jsonl(p)):
        missing = next((name for name in GRPO_COMPLETION_FIELDS if name not in row), None)
        step, pair_id, label, completion, reward = (row.get(name) for name in GRPO_COMPLETION_FIELDS)
        checks = [  # a JSON number is exactly an int or a float (a bool is neither)
            (missing is None, f"record lacks field {missing!r}"),
            (type(step) is int and step >= 0, f"step must be a non-negative integer, got {step!r}"),
            (type(pair_id) in (str, int) and pair_id != "", f"pair_id must be a non-empty string, got {pair_id!r}"),
            (label in LABELS, f"label must be 'a' or 'b', got {label!r}"),
            (isinstance(completion, str), f"completion must be text, got {type(completion).__name__}"),
            (type(reward) in (int, float), f"reward must be a number, got {reward!r}"),
            (row.get("side", "a") in LABELS, f"side must be 'a' or 'b', got {row.get('side')!r}"),
        ]
        for ok, problem in checks:
            if not ok:
                raise ValueError(f"{source}:{number}: {problem}")
        values = (step, str(pair_id), label, completion, float(reward))
        record = dict(zip(GRPO_COMPLETION_FIELDS, values, strict=True))
        records.append(record | ({"side": row["side"]} if "side" in row else {}))
    return records


def _at(log: pd.DataFrame, column: str, index: int) -> float | None:
    """The ``index``-th non-blank value of ``column`` rounded to 4 decimals; None when there is none."""
    values = log[column].dropna() if column in log.columns else ()
    return round(float(values.iloc[index]), 4) if len(values) else None


def sft_headline(log: pd.DataFrame) -> dict[str, float]:
    """03_sft's headline numbers from its log: ``first_loss`` and ``final_loss`` (the last logged loss)."""
    losses = log["loss"].dropna()
    return {"first_loss": float(log["loss"].iloc[0]), "final_loss": float(losses.iloc[-1])}


def grpo_headline(log: pd.DataFrame) -> dict[str, float | int | None]:
    """04_rft_grpo's headline numbers: reward (mean, final), final outcome shares and KL (0 if not
    logged), mean completion length, validation evaluations (how many; the last accuracy or None)."""
    validated = log["validation_accuracy"].dropna()
    return {
        "mean_reward": float(log["reward"].mean()),
        "final_reward": float(log["reward"].iloc[-1]),
        "final_correct": float(log["correct"].iloc[-1]),
        "final_format_violation": float(log["format_violation"].iloc[-1]),
        "final_kl": float(log["kl"].fillna(0.0).iloc[-1]),
        "mean_completion_length": float(log["completion_length"].mean()),
        "validation_evaluations": int(len(validated)),
        "final_validation_accuracy": float(validated.iloc[-1]) if len(validated) else None,
    }


def training_dynamics(logs: Mapping[str, pd.DataFrame]) -> dict[str, float | int | None]:
    """06_training_dynamics' headline numbers from the logs of ``sft``, ``rft`` and ``rft_from_base``
    (an absent one: 0 steps, None values), rounded to 4 decimals; ``rft_missing_columns`` counts the
    :data:`GRPO_CURVES` the ``rft`` log lacks or leaves blank."""
    none = pd.DataFrame({"step": []})
    sft, rft, base = (logs.get(stage, none) for stage in ("sft", "rft", "rft_from_base"))
    return {
        "sft_steps": len(sft),
        "sft_first_loss": _at(sft, "loss", 0),
        "sft_final_loss": _at(sft, "loss", -1),
        "rft_steps": len(rft),
        "rft_first_reward": _at(rft, "reward", 0),
        "rft_final_reward": _at(rft, "reward", -1),
        "rft_final_share_correct": _at(rft, "correct", -1),
        "rft_final_share_format_violation": _at(rft, "format_violation", -1),
        "rft_final_completion_length": _at(rft, "completion_length", -1),
        "rft_from_base_steps": len(base),
        "rft_from_base_final_reward": _at(base, "reward", -1),
        "rft_missing_columns": len(empty_columns(rft, GRPO_CURVES)) if "rft" in logs else 0,
    }
