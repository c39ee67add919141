"""The allowed range of every numeric profile setting, checked by
:meth:`persrm_lib.core.config.Profile.validate` before any arithmetic on it or any model load. A float
must also be finite: NaN compares false with every bound, so it would pass a plain ``x <= 0`` check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

INF = math.inf


@dataclass(frozen=True)
class Range:
    """An interval of allowed values: ``[low, high]``, a bound open when ``*_open`` is set."""

    low: float = -INF
    high: float = INF
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        """``[2, inf)``, ``(0, 1]``, ``[0, 1)``: the interval as a message writes it."""
        left = "(" if self.low_open or self.low == -INF else "["
        right = ")" if self.high_open or self.high == INF else "]"
        return f"{left}{_number(self.low)}, {_number(self.high)}{right}"


def _number(value: float) -> str:
    return str(int(value)) if math.isfinite(value) and float(value).is_integer() else f"{value:g}"


AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
SHARE = Range(0, 1, high_open=True)  # a fraction of something: 0 allowed, 1 not
POSITIVE = Range(0, low_open=True)  # finite and above 0
LEARNING_RATE = Range(0, 1)  # 0 is a frozen run (a test of what a step leaves unchanged)
EXEMPLARS = Range(1, 8)  # the prompt numbers up to eight exemplars

RANGES: dict[str, Range] = {
    "seed": Range(0, 2**32 - 1),  # numpy and torch seeds
    "num_threads": Range(1, 256),
    "data.passage_words": AT_LEAST_1,
    "data.n_exemplars": EXEMPLARS,
    "data.eval_exemplar_counts": EXEMPLARS,  # each count
    "data.train_pairs": AT_LEAST_1,
    "data.eval_pairs": AT_LEAST_1,
    "data.val_fraction": SHARE,
    "data.test_fraction": SHARE,
    "data.query_words": AT_LEAST_1,
    # the persona benchmark's settings
    "data.persona_words": Range(5, 400),
    "data.persona_max_operators": Range(1, 4),
    "data.persona_test_share": Range(0, 1, low_open=True, high_open=True),
    "model.max_seq_length": AT_LEAST_1,
    "model.max_completion_length": AT_LEAST_1,
    "lora.r": AT_LEAST_1,
    "lora.alpha": AT_LEAST_1,
    "lora.dropout": SHARE,
    "sft.batch_size": AT_LEAST_1,
    "sft.per_device_batch_size": AT_LEAST_1,
    "sft.learning_rate": LEARNING_RATE,
    "sft.epochs": POSITIVE,
    "sft.max_steps": Range(-1),  # -1: run the epochs; 0 is refused by Profile.validate
    "sft.warmup_ratio": SHARE,
    "sft.logging_steps": AT_LEAST_1,
    "grpo.batch_size": AT_LEAST_1,
    "grpo.num_generations": Range(2),  # GRPO compares samples of one prompt
    "grpo.learning_rate": LEARNING_RATE,
    "grpo.beta": AT_LEAST_0,
    "grpo.max_steps": AT_LEAST_1,
    "grpo.temperature": POSITIVE,
    "grpo.max_completion_length": AT_LEAST_1,
    "grpo.logging_steps": AT_LEAST_1,
    "grpo.eval_every": AT_LEAST_0,
    "grpo.eval_pairs": AT_LEAST_0,
    "grpo.consistency_bonus": AT_LEAST_0,
    "teacher.max_concurrency": AT_LEAST_1,
    "teacher.max_new_tokens": AT_LEAST_1,
    "teacher.n_criteria": AT_LEAST_1,
    "teacher.hinted_share": SHARE,
    "evaluation.model_pairs": AT_LEAST_0,
    "evaluation.generative_pairs": AT_LEAST_0,
    "evaluation.persona_generative_pairs": AT_LEAST_0,
    "evaluation.generative_counts": EXEMPLARS,  # each count
    "evaluation.scalar_rm_steps": AT_LEAST_1,
    "evaluation.scalar_rm_batch_size": AT_LEAST_1,
    "evaluation.scalar_rm_max_length": AT_LEAST_1,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def numeric_settings(settings: Any, prefix: str = "") -> dict[str, tuple[Any, str]]:
    """Every numeric setting (a number, or a tuple of numbers) of a profile, by dotted name, with
    what it holds as messages name it: ``"an integer"`` or ``"a finite number"`` (a float setting)."""
    found: dict[str, tuple[Any, str]] = {}
    for spec in fields(settings):
        value = getattr(settings, spec.name)
        name = f"{prefix}{spec.name}"
        if is_dataclass(value):
            found.update(numeric_settings(value, f"{name}."))
        elif _is_number(value) or (isinstance(value, tuple) and value and all(_is_number(v) for v in value)):
            kind = "a finite number" if "float" in str(spec.type) else "an integer"
            found[name] = (value, kind)
    return found


def check_ranges(profile: Any) -> None:
    """Refuse a :class:`~persrm_lib.core.config.Profile` whose numeric setting is not finite or not
    in its range (:data:`RANGES`).

    Raises:
        ValueError: the first setting out of range, in field order: ``profile 'smoke':
            grpo.num_generations must be an integer in [2, inf), got 0``.
    """
    for name, (value, kind) in numeric_settings(profile).items():
        allowed = RANGES.get(name, Range())
        each = " each" if isinstance(value, tuple) else ""
        for item in value if isinstance(value, tuple) else (value,):
            if item not in allowed:
                raise ValueError(
                    f"profile {profile.name!r}: {name} must be{each} {kind} in {allowed.describe()}, got {value!r}"
                )
