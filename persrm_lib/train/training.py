"""The two training stages of PersRM-R1 (paper §3.2-3.3) through TRL, on either backend.

- **SFT** (:func:`train_sft`): TRL's ``SFTTrainer`` on the faithful teacher traces, in the
  conversational prompt-completion format: prompt = :func:`persrm_lib.core.prompt.build_messages`
  of the pair, completion = one assistant message holding the trace's completion; the loss is on
  the completion only.
- **GRPO** (:func:`train_grpo`): TRL's ``GRPOTrainer`` from the SFT adapter on the training pairs,
  with the sparse reward of :mod:`persrm_lib.core.reward` (``label`` is a dataset column), the KL
  coefficient ``beta`` of the profile (TRL's default is 0; the paper uses 1e-3) and
  ``num_generations`` samples per prompt.

Model and LoRA come from :func:`persrm_lib.models.backend.load_for_training` (Unsloth on a CUDA machine,
transformers + PEFT elsewhere). GRPO starts from the SFT adapter this way: the base model is loaded
with fresh LoRA layers of the profile's shape by ``load_for_training`` and the SFT adapter's weights
are copied into them (:func:`load_adapter_weights`). This keeps the backend choice in one place
(an Unsloth-patched model stays patched), and the adapter's shape is checked against the profile.
With ``beta > 0`` TRL then copies that adapter into a frozen ``ref`` adapter: the KL term keeps the
policy near the SFT model, as in the paper.

Every bad input is refused with a clear error BEFORE a model is loaded or a step is taken: an empty
trace set, a trace not marked faithful, a trace whose completion does not parse or does not prefer
the labelled response, an empty pair set, a profile whose GRPO batch does not divide by
``num_generations``, a missing or mismatched SFT adapter.

Outputs in the run folder (:mod:`persrm_lib.core.runfiles`): ``<stage>/adapter/`` (PEFT adapter plus
tokenizer and ``persrm_training.json``), ``<stage>/log.csv`` (one row per logged step), and for
GRPO ``<stage>/completions.jsonl`` (every sampled completion: step, id, completion, label, reward).
The GRPO stage is ``rft`` (from SFT) or another ``rft*`` folder, e.g. ``rft_from_base`` for GRPO
started from the base model (paper §5.1). Every ``grpo.eval_every`` steps GRPO also decodes the first
``grpo.eval_pairs`` validation pairs greedily (:class:`ValidationEval`) and logs
``validation_accuracy`` (share judged correctly) and ``validation_format`` (share that parses) in
that step's row.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import runfiles
from ..core.config import Profile
from ..core.jsonl import iter_jsonl
from ..core.output_format import outcome, parse_output
from ..core.prompt import build_messages, build_prompt_text
from ..core.reward import OUTCOME_NAMES, RewardTracker, persrm_reward
from ..data.pairs import PairFormatError, validate_pair

TRAINING_INFO = "persrm_training.json"
SFT_LOG_FIELDS: tuple[str, ...] = (
    "step",
    "epoch",
    "loss",
    "learning_rate",
    "grad_norm",
    "seconds_per_step",
    "num_tokens",
    "mean_token_accuracy",
)
GRPO_LOG_FIELDS: tuple[str, ...] = (
    "step",
    "loss",
    "learning_rate",
    "grad_norm",
    "seconds_per_step",
    "num_tokens",
    "reward",
    "reward_std",
    *OUTCOME_NAMES,
    "kl",
    "completion_length",
    "clipped_ratio",
    "entropy",
    "validation_accuracy",  # greedy, on the first grpo.eval_pairs validation pairs; empty between evaluations
    "validation_format",
)
# TRL's log keys -> our CSV columns (where the names differ).
_LOG_KEYS = {"completions/mean_length": "completion_length", "completions/clipped_ratio": "clipped_ratio"}


class TrainingDataError(ValueError):
    """Training input that cannot be trained on; the message names the file, the record and why."""


@dataclass
class TrainResult:
    """What a training stage produced."""

    stage: str  # "sft", "rft" or another GRPO stage ("rft_from_base")
    backend: str  # "unsloth" or "transformers"
    steps: int  # optimiser steps taken
    final_loss: float  # training loss of the last logged step
    seconds: float  # wall time of trainer.train()
    adapter_dir: Path
    log_path: Path
    log: list[dict[str, Any]] = field(default_factory=list)  # the rows of log.csv
    completions_path: Path | None = None  # GRPO only
    examples: int = 0  # training examples (traces or pairs)
    model: Any = field(default=None, repr=False)  # the trained PEFT model, in memory
    tokenizer: Any = field(default=None, repr=False)


# ---- input checks -------------------------------------------------------------------------------


def _records(source: str | Path | Sequence[Mapping[str, Any]], what: str) -> tuple[list[tuple[str, dict]], str]:
    """``[(where, record)]`` from a JSONL file or an in-memory list, and a name for the source."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{what} file {path} does not exist")
        return [(f"{path.name} line {lineno}", rec) for lineno, rec in iter_jsonl(path)], str(path)
    return [(f"{what} {i}", dict(rec)) for i, rec in enumerate(source)], f"the given {what}"


def check_traces(source: str | Path | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Read and check SFT traces: pairs plus ``teacher, completion, scores, faithful``.

    Args:
        source: a JSONL file (``runfiles.faithful_traces_path(run)``) or a list of trace dicts.

    Returns:
        The traces, in order.

    Raises:
        TrainingDataError: no trace at all; a trace that breaks the pair contract; a trace not
            marked ``faithful: true`` (the faithfulness filter did not run or dropped it); a trace
            whose completion does not parse, or whose scores do not prefer the labelled response.
        FileNotFoundError: ``source`` is a path that does not exist.

    >>> from persrm_lib.core.output_format import render_output
    >>> trace = {"id": "p1", "query": "Q", "exemplars": ["E"], "response_a": "A", "response_b": "B",
    ...          "label": "a", "positive_kind": "intra_author", "negative_kind": "random", "author": "x",
    ...          "genre": "speech", "n_exemplars": 1, "teacher": "stylometric", "scores": [8, 2],
    ...          "completion": render_output("rhythm", "A fits", (8, 2)), "faithful": True}
    >>> len(check_traces([trace]))
    1
    """
    records, name = _records(source, "traces")
    if not records:
        raise TrainingDataError(f"no traces to train on: {name} holds no trace (run 01_synthesize and 02_filter_audit)")
    traces = []
    for where, rec in records:
        try:
            trace = validate_pair(rec, where)
        except PairFormatError as exc:
            raise TrainingDataError(f"trace {exc}") from exc
        tid = trace.get("id")
        for key in ("completion", "faithful"):
            if key not in trace:
                raise TrainingDataError(f"{where} (trace {tid!r}): field {key!r} is missing; is this a trace file?")
        if trace["faithful"] is not True:
            raise TrainingDataError(
                f"{where} (trace {tid!r}) is not marked faithful (faithful={trace['faithful']!r}); train on "
                "the filtered traces (runfiles.faithful_traces_path) written by 02_filter_audit"
            )
        parsed = parse_output(trace["completion"])
        if not parsed.ok:
            raise TrainingDataError(f"{where} (trace {tid!r}): completion does not parse: {parsed.reason}")
        if parsed.preferred != trace["label"]:
            raise TrainingDataError(
                f"{where} (trace {tid!r}) is marked faithful but its scores {list(parsed.scores or ())} do not "
                f"prefer the labelled response {trace['label']!r}"
            )
        traces.append(trace)
    return traces


def check_pairs(source: str | Path | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Read and check GRPO pairs (the pair contract; ``label`` is what the reward compares with).

    Raises:
        TrainingDataError: no pair at all, or a pair that breaks the contract (naming where).
        FileNotFoundError: ``source`` is a path that does not exist.
    """
    records, name = _records(source, "pairs")
    if not records:
        raise TrainingDataError(f"no pairs to train on: {name} holds no pair (run 01_synthesize)")
    pairs = []
    for where, rec in records:
        try:
            pairs.append(validate_pair(rec, where))
        except PairFormatError as exc:
            raise TrainingDataError(f"pair {exc}") from exc
    return pairs


def check_grpo_profile(profile: Profile) -> None:
    """Raise ``ValueError`` naming the setting when the profile's GRPO batch cannot be formed."""
    world = _world_size()
    profile.validate()  # batch divisible by num_generations, num_generations >= 2
    if profile.grpo.batch_size % world:
        raise ValueError(
            f"profile {profile.name!r}: grpo.batch_size={profile.grpo.batch_size} does not divide by the "
            f"{world} training processes"
        )


def _n_exemplars(pair: Mapping[str, Any], profile: Profile) -> int:
    """The pair's own ``n_exemplars`` (what the sampler and the teacher used), else the profile's."""
    return int(pair.get("n_exemplars") or profile.data.n_exemplars)


def sft_dataset(traces: Sequence[Mapping[str, Any]], profile: Profile) -> Any:
    """Conversational prompt-completion dataset: prompt = system + user messages, completion =
    one assistant message with the trace's completion."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [build_messages(t, _n_exemplars(t, profile)) for t in traces],
            "completion": [[{"role": "assistant", "content": t["completion"]}] for t in traces],
        }
    )


def grpo_dataset(pairs: Sequence[Mapping[str, Any]], profile: Profile) -> Any:
    """Conversational prompt-only dataset with the ``label`` and ``id`` columns the reward reads."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [build_messages(p, _n_exemplars(p, profile)) for p in pairs],
            "label": [p["label"] for p in pairs],
            "id": [str(p["id"]) for p in pairs],
        }
    )


# ---- trainer settings ---------------------------------------------------------------------------


def _world_size() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def _process_index() -> int:
    return int(os.environ.get("RANK", "0"))


def _precision(backend: str) -> dict[str, Any]:
    """CPU: float32 (TRL configs default to bf16 and fail on CPU unless told); CUDA: bf16 if supported."""
    import torch

    if not torch.cuda.is_available():
        return {"use_cpu": True, "bf16": False, "fp16": False, "gradient_checkpointing": False}
    bf16 = torch.cuda.is_bf16_supported()
    # Unsloth applies its own gradient checkpointing in get_peft_model.
    return {"bf16": bf16, "fp16": not bf16, "gradient_checkpointing": backend != "unsloth"}


def _common_args(profile: Profile, output_dir: Path, backend: str) -> dict[str, Any]:
    import torch

    return {
        "output_dir": str(output_dir),
        "seed": profile.seed,
        "data_seed": profile.seed,
        "report_to": "none",
        "save_strategy": "no",
        "logging_strategy": "steps",
        "dataloader_num_workers": 0,  # deterministic, single-process data loading
        "disable_tqdm": True,
        "full_determinism": not torch.cuda.is_available(),
        **_precision(backend),
    }


def sft_config(profile: Profile, output_dir: Path, backend: str = "transformers") -> Any:
    """TRL ``SFTConfig`` from the profile (``profile.sft`` and ``profile.model``)."""
    from trl import SFTConfig

    sft = profile.sft
    return SFTConfig(
        per_device_train_batch_size=sft.per_device_batch_size,
        gradient_accumulation_steps=max(1, sft.gradient_accumulation_steps // _world_size()),
        learning_rate=sft.learning_rate,
        num_train_epochs=sft.epochs,
        max_steps=sft.max_steps,
        warmup_steps=sft.warmup_ratio,  # a float in [0, 1) is a share of the steps (transformers 5)
        logging_steps=sft.logging_steps,
        max_length=profile.model.max_seq_length,
        completion_only_loss=True,  # loss on the trace, not on the prompt
        packing=False,
        shuffle_dataset=False,  # the trainer's seeded sampler shuffles; no second shuffle
        **_common_args(profile, output_dir, backend),
    )


def grpo_config(profile: Profile, output_dir: Path, backend: str = "transformers") -> Any:
    """TRL ``GRPOConfig`` from the profile: one generation batch of ``grpo.batch_size`` completions
    (``batch_size / num_generations`` prompts) per optimiser step."""
    from trl import GRPOConfig

    grpo = profile.grpo
    world = _world_size()
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
        **_common_args(profile, output_dir, backend),
    )


# ---- the training log ---------------------------------------------------------------------------


def _number(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return value if not (isinstance(value, float) and math.isnan(value)) else ""
    return ""


class TrainingLog:
    """Writes the trainer's logs to ``<stage>/log.csv``: one row per logged step, fixed columns,
    seconds per step measured here (``on_step_begin`` to ``on_step_end``, generation included), and
    for GRPO the outcome shares from the :class:`~persrm_lib.core.reward.RewardTracker`.

    Use :meth:`callback` to get the ``transformers.TrainerCallback`` that feeds it.
    """

    def __init__(
        self, path: str | Path, fields: Sequence[str], tracker: RewardTracker | None = None, verbose: bool = True
    ) -> None:
        self.path = Path(path)
        self.fields = tuple(fields)
        self.tracker = tracker
        self.verbose = verbose
        self.max_steps = 0
        self.rows: list[dict[str, Any]] = []
        self._step_start: float | None = None
        self._durations: list[float] = []
        self._last_logged_step = 0
        self._writes = True
        self._extra: dict[int, dict[str, float]] = {}  # step -> values measured outside the trainer's logs

    def add(self, step: int, values: Mapping[str, float]) -> None:
        """Values for the row of ``step`` (e.g. validation accuracy), merged in when it is recorded."""
        self._extra.setdefault(step, {}).update(values)

    def begin(self, is_main_process: bool = True) -> None:
        """Start a fresh file (a rerun replaces the old log)."""
        self._writes = is_main_process
        if self._writes:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.fields).writeheader()

    def step_begin(self) -> None:
        self._step_start = time.perf_counter()

    def step_end(self) -> None:
        if self._step_start is not None:
            self._durations.append(time.perf_counter() - self._step_start)
            self._step_start = None

    def record(self, step: int, logs: Mapping[str, Any]) -> dict[str, Any] | None:
        """Turn one trainer log into a row and append it; the end-of-training summary is skipped."""
        if "loss" not in logs:
            return None
        values = {_LOG_KEYS.get(k, k): v for k, v in logs.items()}
        values.update(self._extra.pop(step, {}))
        values["step"] = step
        values["seconds_per_step"] = sum(self._durations) / len(self._durations) if self._durations else None
        if self.tracker is not None:
            shares = self.tracker.shares_between(self._last_logged_step + 1, step)
            for name in OUTCOME_NAMES:
                values[name] = shares.get(name, logs.get(f"outcome/{name}"))
        row = {name: (values.get(name) if name == "step" else _number(values.get(name))) for name in self.fields}
        self.rows.append(row)
        self._durations = []
        self._last_logged_step = step
        if self._writes:
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.fields).writerow(row)
            if self.verbose:
                print(self.summary(row), flush=True)
        return row

    def summary(self, row: Mapping[str, Any]) -> str:
        """One short line per logged step (the trainer's own dict printer is switched off)."""
        parts = [f"step {row['step']}/{self.max_steps}" if self.max_steps else f"step {row['step']}"]
        for name, fmt in (
            ("loss", ".4f"),
            ("reward", "+.3f"),
            ("correct", ".2f"),
            ("format_violation", ".2f"),
            ("kl", ".4f"),
            ("completion_length", ".1f"),
            ("seconds_per_step", ".1f"),
            ("validation_accuracy", ".2f"),
        ):
            if name in row and row[name] != "":
                parts.append(f"{name} {row[name]:{fmt}}")
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
                log.step_begin()

            def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
                log.step_end()

            def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
                log.record(state.global_step, logs or {})

        return _Callback()


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``log.csv`` with numbers as floats (``step`` as int) and blanks as None."""
    rows = []
    with Path(path).open(newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = {}
            for key, value in raw.items():
                if value in ("", None):
                    row[key] = None
                elif key == "step":
                    row[key] = int(float(value))
                else:
                    row[key] = float(value)
            rows.append(row)
    return rows


# ---- validation during GRPO ---------------------------------------------------------------------


class ValidationEval:
    """Greedy judgements of a fixed set of validation pairs every ``every`` GRPO steps (paper §5.1:
    accuracy over training). Each evaluation adds ``validation_accuracy`` (share with outcome +1) and
    ``validation_format`` (share that parses) to the :class:`TrainingLog` row of that step.

    Greedy decoding draws no random numbers and dropout is off, so evaluating does not change the
    training run; the model is put in eval mode for the evaluation and back in train mode after.

    >>> # evaluator = ValidationEval(profile, pairs[:2], tokenizer, log, every=1)
    """

    def __init__(
        self,
        profile: Profile,
        pairs: Sequence[Mapping[str, Any]],
        tokenizer: Any,
        log: TrainingLog,
        every: int,
        batch_size: int | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"ValidationEval: every must be at least 1, got {every}")
        if not pairs:
            raise ValueError("ValidationEval: no validation pairs to evaluate")
        self.pairs = list(pairs)
        self.prompts = [build_prompt_text(tokenizer, p, _n_exemplars(p, profile)) for p in self.pairs]
        self.tokenizer = tokenizer
        self.log = log
        self.every = every
        self.max_new_tokens = profile.grpo.max_completion_length
        self.batch_size = batch_size or profile.grpo.batch_size
        self.results: dict[int, dict[str, float]] = {}  # step -> the values logged for it

    def due(self, step: int, max_steps: int) -> bool:
        """Evaluate at every ``every``-th step (never at step 0)."""
        return step > 0 and step % self.every == 0 and (max_steps <= 0 or step <= max_steps)

    def evaluate(self, model: Any) -> dict[str, float]:
        """Accuracy and format share of greedy judgements of the validation pairs by ``model``."""
        import torch

        from ..models.generation import generate

        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                texts = generate(model, self.tokenizer, self.prompts, self.max_new_tokens, self.batch_size).texts
        finally:
            if was_training:
                model.train()
        outcomes = [outcome(t, p["label"]) for t, p in zip(texts, self.pairs, strict=True)]
        n = len(outcomes)
        return {
            "validation_accuracy": sum(o == 1 for o in outcomes) / n,
            "validation_format": sum(o != -1 for o in outcomes) / n,
        }

    def callback(self) -> Any:
        """A ``transformers.TrainerCallback``: evaluates at the end of a due step and makes the trainer
        log that step (so the values land in a row even when ``logging_steps`` skips it). Add it after
        the :class:`TrainingLog` callback so that the evaluation is not counted in ``seconds_per_step``."""
        from transformers import TrainerCallback

        evaluator = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
                step = int(state.global_step)
                if model is not None and evaluator.due(step, int(state.max_steps or 0)):
                    values = evaluator.evaluate(model)
                    evaluator.results[step] = values
                    evaluator.log.add(step, values)
                    control.should_log = True
                return control

        return _Callback()


def _validation_pairs(
    profile: Profile, run: Path, source: str | Path | Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """The validation pairs to evaluate during GRPO: ``[]`` when ``grpo.eval_every`` or
    ``grpo.eval_pairs`` is 0, or when ``source`` is None and the run has no validation pairs."""
    if profile.grpo.eval_every == 0 or profile.grpo.eval_pairs == 0:
        return []
    if source is None:
        source = runfiles.pairs_path(run, "validation")
        if not source.is_file():
            return []
    try:
        pairs = check_pairs(source)
    except TrainingDataError as exc:
        raise TrainingDataError(f"validation pairs: {exc}") from exc
    return pairs[: profile.grpo.eval_pairs]


def check_grpo_stage(stage: str) -> str:
    """A GRPO stage folder name: ``rft`` or ``rft_<something>`` (never a path, never another stage's)."""
    if not isinstance(stage, str) or not (stage == "rft" or stage.startswith("rft_")) or not stage.isidentifier():
        raise ValueError(
            f"GRPO stage {stage!r} is not a run-folder stage name: use 'rft' or 'rft_<name>' such as 'rft_from_base'"
        )
    return stage


# ---- adapters -----------------------------------------------------------------------------------


def _training_info(profile: Profile, stage: str, backend: str, steps: int) -> dict[str, Any]:
    return {
        "stage": stage,
        "profile": profile.name,
        "model": profile.model.name,
        "backend": backend,
        "steps": steps,
        "seed": profile.seed,
        "lora": {"r": profile.lora.r, "alpha": profile.lora.alpha, "target_modules": list(profile.lora.target_modules)},
    }


def check_adapter(adapter_dir: str | Path, profile: Profile) -> Path:
    """Raise a clear error unless ``adapter_dir`` holds an adapter of the profile's model and LoRA shape."""
    adapter_dir = Path(adapter_dir)
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(
            f"no adapter at {adapter_dir} (adapter_model.safetensors is missing); run 03_sft (train_sft) first"
        )
    info_path = adapter_dir / TRAINING_INFO
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("model") != profile.model.name:
            raise ValueError(
                f"adapter at {adapter_dir} was trained on model {info.get('model')!r}, the profile "
                f"{profile.name!r} uses {profile.model.name!r}"
            )
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    want = {
        "r": profile.lora.r,
        "lora_alpha": profile.lora.alpha,
        "target_modules": sorted(profile.lora.target_modules),
    }
    have = {
        "r": config.get("r"),
        "lora_alpha": config.get("lora_alpha"),
        "target_modules": sorted(config.get("target_modules") or []),
    }
    if have != want:
        raise ValueError(
            f"adapter at {adapter_dir} has LoRA {have}, the profile {profile.name!r} asks for {want}; "
            "use the profile the adapter was trained with"
        )
    return weights


def load_adapter_weights(model: Any, adapter_dir: str | Path, profile: Profile) -> Any:
    """Copy a saved adapter's weights into the fresh LoRA layers of ``model`` (from
    ``load_for_training(profile)``); every LoRA weight must be covered. Returns ``model``."""
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
    """The profile's base model with a saved adapter, trainable: ``(model, tokenizer, backend)``.

    >>> # model, tokenizer, backend = load_trained(get_profile("smoke"), runfiles.adapter_dir(run, "sft"))
    """
    from ..models.backend import load_for_training

    check_adapter(adapter_dir, profile)  # fail before loading a model
    model, tokenizer, name = load_for_training(profile, backend)
    return load_adapter_weights(model, adapter_dir, profile), tokenizer, name


def _save_adapter(trainer: Any, tokenizer: Any, out: Path, info: dict[str, Any]) -> None:
    if out.exists() and trainer.accelerator.is_main_process:
        shutil.rmtree(out)
    trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        # GRPO with beta > 0 keeps a frozen copy of the starting adapter named "ref"; it is not the result.
        shutil.rmtree(out / "ref", ignore_errors=True)
        tokenizer.save_pretrained(str(out))
        (out / TRAINING_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def _last_loss(rows: Sequence[Mapping[str, Any]]) -> float:
    losses = [r["loss"] for r in rows if r.get("loss") not in ("", None)]
    return float(losses[-1]) if losses else float("nan")


def _check_lengths(dataset: Any, tokenizer: Any, max_length: int) -> None:
    """SFT truncation would cut the scores off the end of a trace; refuse instead."""
    for i, row in enumerate(dataset):
        text = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if n > max_length:
            raise TrainingDataError(
                f"trace {i} is {n} tokens long with its prompt, more than model.max_seq_length={max_length}; "
                "raise model.max_seq_length or shorten the passages (data.passage_words)"
            )


# ---- trainers -----------------------------------------------------------------------------------


def sft_trainer(
    profile: Profile,
    output_dir: Path,
    traces: Sequence[Mapping[str, Any]],
    model: Any,
    tokenizer: Any,
    backend: str = "transformers",
    callbacks: Sequence[Any] = (),
) -> Any:
    """TRL ``SFTTrainer`` for checked traces on a LoRA model; refuses traces longer than
    ``model.max_seq_length`` (truncation would cut the scores off the end)."""
    from trl import SFTTrainer

    dataset = sft_dataset(traces, profile)
    _check_lengths(dataset, tokenizer, profile.model.max_seq_length)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(profile, output_dir, backend),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    return _quiet(trainer)


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
    :class:`~persrm_lib.core.reward.RewardTracker` that keeps nothing on disk)."""
    from trl import GRPOTrainer

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward if reward is not None else RewardTracker()],
        args=grpo_config(profile, output_dir, backend),
        train_dataset=grpo_dataset(pairs, profile),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    return _quiet(trainer)


def _quiet(trainer: Any) -> Any:
    """Drop the trainer's raw dict printer (tqdm is off): :class:`TrainingLog` prints one line per step."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


# ---- the two stages -----------------------------------------------------------------------------


def train_sft(
    profile: Profile,
    run: str | Path,
    traces: str | Path | Sequence[Mapping[str, Any]] | None = None,
    backend: str | None = None,
) -> TrainResult:
    """Supervised fine-tuning on faithful traces (paper §3.2): learn log p(trace | prompt).

    Args:
        profile: hyper-parameters (``profile.sft``, ``profile.model``, ``profile.lora``, seed).
        run: the run folder; the adapter goes to ``sft/adapter``, the log to ``sft/log.csv``.
        traces: a JSONL file or a list of traces; default ``runfiles.faithful_traces_path(run)``.
        backend: ``unsloth``/``transformers``/None (``persrm_lib.models.backend.select_backend``).

    Returns:
        A :class:`TrainResult`.

    Raises:
        TrainingDataError: see :func:`check_traces`; also a trace longer than ``model.max_seq_length``.

    >>> # result = train_sft(get_profile("smoke"), "runs/smoke"); result.adapter_dir.name
    """
    from ..models.backend import load_for_training

    run = Path(run)
    profile.validate()
    data = check_traces(runfiles.faithful_traces_path(run) if traces is None else traces)
    model, tokenizer, name = load_for_training(profile, backend)
    log = TrainingLog(runfiles.log_path(run, "sft"), SFT_LOG_FIELDS)
    trainer = sft_trainer(
        profile, runfiles.stage_dir(run, "sft") / "trainer", data, model, tokenizer, name, [log.callback()]
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    steps = int(trainer.state.global_step)
    out = runfiles.adapter_dir(run, "sft")
    _save_adapter(trainer, tokenizer, out, _training_info(profile, "sft", name, steps))
    return TrainResult(
        stage="sft",
        backend=name,
        steps=steps,
        final_loss=_last_loss(log.rows),
        seconds=seconds,
        adapter_dir=out,
        log_path=log.path,
        log=log.rows,
        examples=len(data),
        model=trainer.model,
        tokenizer=tokenizer,
    )


def train_grpo(
    profile: Profile,
    run: str | Path,
    pairs: str | Path | Sequence[Mapping[str, Any]] | None = None,
    sft_adapter: str | Path | None = None,
    from_sft: bool = True,
    backend: str | None = None,
    reward_fn: Callable[..., list[float]] = persrm_reward,
    stage: str = "rft",
    validation_pairs: str | Path | Sequence[Mapping[str, Any]] | None = None,
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
        reward_fn: the reward (default the paper's :func:`~persrm_lib.core.reward.persrm_reward`).
        stage: the run-folder stage written: ``rft`` (default) or ``rft_<name>``, e.g.
            ``rft_from_base`` with ``from_sft=False`` for the paper's §5.1 comparison.
        validation_pairs: pairs evaluated greedily every ``grpo.eval_every`` steps (the first
            ``grpo.eval_pairs``); default ``runfiles.pairs_path(run, "validation")`` when it exists.
            Off when ``grpo.eval_every`` or ``grpo.eval_pairs`` is 0.

    Returns:
        A :class:`TrainResult` whose ``log`` rows carry reward, outcome shares, KL, length and, on
        evaluated steps, ``validation_accuracy`` and ``validation_format``.

    Raises:
        ValueError: the GRPO batch does not divide by ``num_generations`` (or the processes); a
            mismatched SFT adapter; a ``stage`` that is not ``rft`` or ``rft_<name>``.
        TrainingDataError: see :func:`check_pairs` (for the training and the validation pairs).
        FileNotFoundError: no SFT adapter where one is expected.

    >>> # result = train_grpo(get_profile("smoke"), "runs/smoke"); result.log[-1]["reward"]
    """
    from ..models.backend import load_for_training

    run = Path(run)
    check_grpo_stage(stage)
    check_grpo_profile(profile)
    data = check_pairs(runfiles.pairs_path(run, "train") if pairs is None else pairs)
    validation = _validation_pairs(profile, run, validation_pairs)
    adapter = Path(sft_adapter) if sft_adapter is not None else runfiles.adapter_dir(run, "sft")
    if from_sft:
        check_adapter(adapter, profile)
    model, tokenizer, name = load_for_training(profile, backend)
    if from_sft:
        load_adapter_weights(model, adapter, profile)
    completions = runfiles.completions_path(run, stage)
    if _process_index() == 0:
        for old in sorted(completions.parent.glob(f"{completions.stem}*{completions.suffix}")):
            old.unlink()  # a rerun replaces the sampled completions
    tracker = RewardTracker(completions, process_index=_process_index(), reward_fn=reward_fn)
    log = TrainingLog(runfiles.log_path(run, stage), GRPO_LOG_FIELDS, tracker=tracker)
    callbacks = [log.callback()]  # first: the evaluation below is not part of seconds_per_step
    if validation:
        callbacks.append(ValidationEval(profile, validation, tokenizer, log, profile.grpo.eval_every).callback())
    output_dir = runfiles.stage_dir(run, stage) / "trainer"
    trainer = grpo_trainer(profile, output_dir, data, model, tokenizer, name, tracker, callbacks)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    steps = int(trainer.state.global_step)
    out = runfiles.adapter_dir(run, stage)
    info = _training_info(profile, stage, name, steps) | {"from_sft": str(adapter) if from_sft else None}
    _save_adapter(trainer, tokenizer, out, info)
    return TrainResult(
        stage=stage,
        backend=name,
        steps=steps,
        final_loss=_last_loss(log.rows),
        seconds=seconds,
        adapter_dir=out,
        log_path=log.path,
        log=log.rows,
        completions_path=tracker.completions_path,
        examples=len(data),
        model=trainer.model,
        tokenizer=tokenizer,
    )
