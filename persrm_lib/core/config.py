"""Named profiles: one typed config decides data size, model, lengths and hyper-parameters
(docs/design.md, "Profiles"; ``paper`` holds the hyper-parameters of PersRM-R1, arXiv 2508.14076, §4.1).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field, fields, is_dataclass, replace
from operator import attrgetter
from typing import Any

from .cli import parse_names
from .setting_ranges import check_ranges

PROFILE_ENV = "PERSRM_PROFILE"
EVIDENCE_KINDS: tuple[str, ...] = ("none", "stylometric")
# the settings that name one of a few choices: (the choices, how a refusal lists them)
CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "data.query_mode": (("neutral", "opening"), "neutral or opening"),
    "teacher.kind": (("stylometric", "local", "http"), "stylometric, local or http"),
    "teacher.trace_style": (("full", "compact"), "full or compact"),
    "sft.lr_scheduler": (("linear", "constant"), "linear or constant"),
    "prompt.evidence": (EVIDENCE_KINDS, "one of " + ", ".join(EVIDENCE_KINDS)),
    "prompt.mode": (("pairwise", "pointwise"), "pairwise or pointwise"),
}
TRUE_WORDS = ("true", "yes", "1")  # how a boolean is written on a command line (any case)
FALSE_WORDS = ("false", "no", "0")


@dataclass(frozen=True)
class DataSettings:
    """What 01_synthesize builds: benchmarks, passage length, exemplars per pair, pair counts per split
    (PersRM-R1 §3.1 for the contrastive strategies; ``personas``: README, "The persona benchmark")."""

    benchmarks: tuple[str, ...] = ("sotu", "aaac")  # named benchmarks built by 01_synthesize
    passage_words: int = 150  # passages are cut to about this many words, on sentence boundaries
    n_exemplars: int = 3  # exemplars per training pair (the paper uses up to 3)
    eval_exemplar_counts: tuple[int, ...] = (1, 3)  # exemplar counts reported in 05_evaluate
    train_pairs: int = 200  # contrastive pairs drawn from training authors
    eval_pairs: int = 60  # pairs per benchmark drawn from held-out test authors
    val_fraction: float = 0.15  # share of authors held out for validation
    test_fraction: float = 0.25  # share of authors held out for testing
    query_words: int = 24  # the query is the opening of the author's text, this many words
    # "neutral": one instruction that fits both responses; "opening": the paper's setup, which leaks
    # the label (docs/design.md, "Query leak"), so it is opt-in
    query_mode: str = "neutral"
    # the persona benchmark (data.personas; listed in benchmarks to build it): short base passages,
    # personas of up to persona_max_operators style operators, one operator never taught
    persona_words: int = 20
    persona_max_operators: int = 2
    persona_held_out_operator: str = "ellipsis"
    persona_test_share: float = 0.3  # share of the multi-operator combinations held out for test
    # the benchmarks whose training authors (personas) give the train and validation pairs; empty:
    # every listed benchmark that is not test-only. The others are still built as test sets.
    train_benchmarks: tuple[str, ...] = ()

    def trains_on(self, benchmark: str) -> bool:
        """Whether a built benchmark gives training pairs: ``train_benchmarks`` is empty or names it
        (a test-only benchmark never does; :mod:`persrm_lib.data.synthesis` checks that)."""
        return not self.train_benchmarks or benchmark in self.train_benchmarks


@dataclass(frozen=True)
class ModelSettings:
    """The reward model: which base model, and its token budgets (prompt + completion, completion alone)."""

    name: str = "smollm2-135m-instruct"  # a registry name, a hub id or a local path
    max_seq_length: int = 2048  # prompt + completion, in tokens
    max_completion_length: int = 256  # tokens the reward model may write
    load_in_4bit: bool = False  # Unsloth only: QLoRA-style 4-bit base weights


@dataclass(frozen=True)
class LoRASettings:
    """The one place LoRA is configured; both backends read it."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class SFTSettings:
    """Supervised fine-tuning on the faithful traces (notebook 03; PersRM-R1 §3.2), LoRA through PEFT and TRL's
    ``SFTTrainer``; the paper's values are in the ``paper`` profile."""

    batch_size: int = 8  # effective batch = per_device_batch_size * gradient_accumulation_steps
    per_device_batch_size: int = 2
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1  # -1: run the epochs
    warmup_ratio: float = 0.0
    # transformers' schedule after the warm-up: "linear" decays to 0 at the last step; "constant"
    # keeps learning_rate (what the persona learning curves measured)
    lr_scheduler: str = "linear"
    logging_steps: int = 1
    # every trace also in the swapped order, its trace rewritten (teachers.swap): positions exactly 50/50
    both_orders: bool = True

    @property
    def gradient_accumulation_steps(self) -> int:
        return max(1, self.batch_size // self.per_device_batch_size)


@dataclass(frozen=True)
class GRPOSettings:
    """Reinforcement fine-tuning with GRPO and the sparse -1/0/+1 reward (notebook 04; PersRM-R1 §3.3;
    TRL's ``GRPOTrainer``): sampling, learning rate, KL weight, validation cadence."""

    batch_size: int = 8  # completions per optimiser step; must divide by num_generations
    num_generations: int = 4  # samples per prompt (the paper uses 8)
    learning_rate: float = 1e-5
    beta: float = 1e-3  # KL coefficient (TRL's default is 0; the paper uses 1e-3)
    max_steps: int = 10
    temperature: float = 1.0
    max_completion_length: int = 192
    logging_steps: int = 1
    eval_every: int = 0  # GRPO steps between greedy validation evaluations (0: off)
    eval_pairs: int = 0  # validation pairs evaluated each time (the first ones of validation.jsonl)
    compare_from_base: bool = False  # 04 also runs GRPO from the base model into rft_from_base/ (paper §5.1)
    # both orders of each pair in one step, the advantage over the joint group (EIS-GRPO); False:
    # TRL's per-prompt groups, which give an always-A policy zero advantage (train/order_robust.py)
    joint_orders: bool = True
    consistency_bonus: float = 0.0  # J1's bonus for a sample pair right in both orders (joint_orders only)
    stop_at_scores: bool = True  # sampling stops once </scores> is written


@dataclass(frozen=True)
class TeacherSettings:
    """Who writes the reasoning traces that SFT imitates (notebook 01; PersRM-R1 §3.2 uses a large LLM): the
    offline stylometric teacher, a local model or an OpenAI-compatible endpoint, and how traces are written."""

    kind: str = "stylometric"  # stylometric | local | http
    model: str | None = None  # registry name for kind=local, model id for kind=http
    base_url: str | None = None  # OpenAI-compatible endpoint for kind=http
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never logged
    max_concurrency: int = 8
    max_new_tokens: int = 512
    trace_style: str = "full"  # stylometric teacher: full (about 430 tokens) or compact (about 120)
    n_criteria: int = 3  # stylometric teacher: named features that separate the responses most
    # a teacher served by a reasoning model (DeepSeek-R1, Qwen3, QwQ): strip ONE leading
    # <think>...</think> block before parsing (output_format.strip_think); the filter reports how many
    strip_think: bool = False
    # RM-R1's hinted second pass (teachers.hinted): the teacher rewrites, knowing the label, the traces
    # it got wrong; the faithful rewrites (tagged hinted) make up at most this share of the SFT set. 0: off
    hinted_share: float = 0.0


@dataclass(frozen=True)
class PromptSettings:
    """What the prompt shows besides the exemplars, the query and the responses."""

    # stylometric: the exemplars', A's and B's measurements (persrm_lib.data.evidence); off in every
    # profile: no accuracy gained on the cpu run, 22% more SFT time (results/evidence_ablation.json)
    evidence: str = "none"  # one of EVIDENCE_KINDS
    # pairwise: the paper's format (A and B -> <scores>[s_a, s_b]); pointwise: one response at a time
    # (-> <score>s</score>, persrm_lib.core.pointwise). The adapters record it; the judges read it there.
    mode: str = "pairwise"


@dataclass(frozen=True)
class EvaluationSettings:
    """How much of 05_evaluate's suite runs (:func:`persrm_lib.evaluate.suite.run_suite`)."""

    model_pairs: int = 0  # pairs per benchmark for loglik and scalar-rm (a seeded draw); 0: all
    generative_pairs: int = 0  # pairs per benchmark for each generative stage (each also judged swapped); 0: all
    # the persona benchmark's count instead, where learning is measured (0: generative_pairs there too)
    persona_generative_pairs: int = 0
    generative_counts: tuple[int, ...] = ()  # exemplar counts for the generative stages; (): data.eval_exemplar_counts
    scalar_rm_steps: int = 50  # RewardTrainer steps of the scalar reward model
    scalar_rm_batch_size: int = 4  # pairs per RewardTrainer step (and sequences per scoring pass)
    scalar_rm_max_length: int = 512  # tokens per scored sequence (exemplars are cut from the front)
    # generative judges served by a reasoning model: strip ONE leading <think>...</think> block before
    # parsing (output_format.strip_think; never for the trained stages' reward); the results count them
    strip_think: bool = False
    # a pair whose prompt does not fit the judge's context (minus the generation budget) is refused
    # (False) or counted in a too_long column, kept out of accuracy and format rates (True)
    count_too_long: bool = False
    # generative stages: end a completion at the first token after which it can no longer parse
    # (output_format.can_still_parse): the same scores and format verdicts, fewer tokens for a base model
    # that never writes the format, but the kept completion (07's tallies, the parser's reason) is only
    # that beginning (not with strip_think)
    stop_unparsable: bool = False

    def __post_init__(self) -> None:
        # an override may give the counts as text ("1,3" -> ("1", "3")): store them as integers
        object.__setattr__(self, "generative_counts", tuple(int(k) for k in self.generative_counts))


@dataclass(frozen=True)
class Profile:
    """One named configuration of the whole pipeline: every setting a run reads, grouped by stage. A run is a
    function of its profile and seed; ``get_profile(name, overrides)`` returns one with dotted overrides applied."""

    name: str
    seed: int = 0
    num_threads: int = 1  # torch and BLAS threads; two on a busy 2-core machine can be far slower
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    lora: LoRASettings = field(default_factory=LoRASettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    prompt: PromptSettings = field(default_factory=PromptSettings)

    def validate(self) -> Profile:
        """Raise ``ValueError`` naming the setting when the profile cannot run; every numeric
        setting is range-checked first (:func:`persrm_lib.core.setting_ranges.check_ranges`), before
        any arithmetic on it."""
        from ..data.personas import OPERATORS

        check_ranges(self)
        for name, (allowed, listing) in CHOICES.items():
            value = attrgetter(name)(self)
            if value not in allowed:
                raise ValueError(f"profile {self.name!r}: {name} must be {listing}, got {value!r}")
        data, sft, grpo, prompt = self.data, self.sft, self.grpo, self.prompt
        unlisted = [b for b in data.train_benchmarks if b not in data.benchmarks]
        problems = [
            (
                grpo.batch_size % grpo.num_generations,
                f"grpo.batch_size={grpo.batch_size} does not divide by grpo.num_generations={grpo.num_generations}",
            ),
            (
                grpo.joint_orders and grpo.batch_size % (2 * grpo.num_generations),
                f"grpo.joint_orders needs grpo.batch_size={grpo.batch_size} to hold whole pairs in both orders, "
                f"a multiple of 2 x grpo.num_generations={grpo.num_generations}",
            ),
            (grpo.consistency_bonus and not grpo.joint_orders, "grpo.consistency_bonus needs grpo.joint_orders"),
            (
                sft.max_steps == 0,  # the other values out of range are refused by check_ranges
                "sft.epochs must be above 0 and sft.max_steps -1 (run the epochs) or at least 1, "
                f"got {sft.epochs} and {sft.max_steps}",
            ),
            (
                sft.batch_size % sft.per_device_batch_size,
                f"sft.batch_size={sft.batch_size} does not divide by sft.per_device_batch_size={sft.per_device_batch_size}",
            ),
            (
                prompt.evidence != "none" and self.teacher.kind == "stylometric" and self.teacher.trace_style == "full",
                f"prompt.evidence={prompt.evidence!r} needs teacher.trace_style='compact' with the stylometric "
                "teacher: its full trace cites distances (d=...) and Delta values that the evidence table does not "
                "show, so the faithfulness filter would reject every trace",
            ),
            (unlisted, f"data.train_benchmarks {unlisted} are not in data.benchmarks {list(data.benchmarks)}"),
            (
                self.evaluation.stop_unparsable and self.evaluation.strip_think,
                "evaluation.stop_unparsable and evaluation.strip_think exclude each other: a leading <think> "
                "block would end the completion before its answer",
            ),
            (
                data.persona_held_out_operator not in OPERATORS,
                f"data.persona_held_out_operator must be one of {sorted(OPERATORS)}, "
                f"got {data.persona_held_out_operator!r}",
            ),
        ]
        for bad, message in problems:
            if bad:
                raise ValueError(f"profile {self.name!r}: {message}")
        return self


PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        data=DataSettings(
            passage_words=60, n_exemplars=1, eval_exemplar_counts=(1,), train_pairs=16, eval_pairs=8, query_words=12
        ),
        model=ModelSettings(name="tiny-random", max_completion_length=32),
        lora=LoRASettings(r=4, alpha=8),
        teacher=TeacherSettings(trace_style="compact"),
        sft=SFTSettings(batch_size=2, per_device_batch_size=2, learning_rate=1e-3, max_steps=2),
        grpo=GRPOSettings(
            batch_size=4,
            num_generations=2,
            learning_rate=1e-3,
            max_steps=1,
            max_completion_length=16,
            eval_every=1,
            eval_pairs=2,
        ),
        evaluation=EvaluationSettings(
            model_pairs=2, generative_pairs=2, scalar_rm_steps=2, scalar_rm_batch_size=2, scalar_rm_max_length=256
        ),
    ),
    # CI's run, the regression reference: ONE example per step learns fastest per CPU second
    # (results/personas/cpu-short-prompt-w10-lr1e-3-batch1.csv); 600 steps clear persrm_lib.run.regression's
    # learning gate with a margin. GRPO: 2 steps of one pair, plumbing only.
    "smoke": Profile(
        name="smoke",
        num_threads=2,
        data=DataSettings(
            benchmarks=("sotu", "aaac", "personas"),
            train_benchmarks=("personas",),
            passage_words=80,
            n_exemplars=1,
            train_pairs=600,
            eval_pairs=24,
            query_words=16,
            persona_words=10,
        ),
        model=ModelSettings(max_seq_length=1024, max_completion_length=96),
        prompt=PromptSettings(mode="pointwise"),
        sft=SFTSettings(
            batch_size=1, per_device_batch_size=1, learning_rate=1e-3, lr_scheduler="constant", max_steps=600
        ),
        grpo=GRPOSettings(
            batch_size=4,
            num_generations=2,
            learning_rate=1e-5,
            max_steps=2,
            max_completion_length=96,
            eval_every=2,  # once, after the last of the two steps
            eval_pairs=2,
        ),
        teacher=TeacherSettings(trace_style="compact"),
        evaluation=EvaluationSettings(
            model_pairs=2,
            generative_pairs=2,
            persona_generative_pairs=16,
            generative_counts=(1,),
            scalar_rm_steps=2,
            scalar_rm_batch_size=2,
            scalar_rm_max_length=320,
            stop_unparsable=True,  # the base model never writes the format: stop it at its first token
        ),
    ),
    # Pointwise: the pairwise format does not learn at 135M (README, "Does a small model learn it?");
    # 10-word personas and lr 1e-3 learn fastest (results/personas/h100/smoke-*.csv).
    "cpu": Profile(
        name="cpu",
        num_threads=2,
        data=DataSettings(
            benchmarks=("sotu", "aaac", "personas"),
            train_benchmarks=("personas",),
            passage_words=100,
            n_exemplars=1,
            train_pairs=1500,
            eval_pairs=96,
            query_words=20,
            persona_words=10,
        ),
        # pointwise persona traces are about 50 SmolLM2 tokens (measured); 96 leaves room
        model=ModelSettings(max_seq_length=1536, max_completion_length=96),
        # r 8 keeps each adapter near 12 MB, under the 20 MB that results/ takes (r 16 measured 23 MB)
        lora=LoRASettings(r=8, alpha=16),
        prompt=PromptSettings(mode="pointwise"),
        sft=SFTSettings(batch_size=2, per_device_batch_size=2, learning_rate=1e-3, max_steps=1500),
        # a batch of 8 is one pair's two responses x 4 samples: the joint group of grpo.joint_orders
        grpo=GRPOSettings(
            batch_size=8,
            num_generations=4,
            learning_rate=2e-5,
            max_steps=12,
            max_completion_length=96,
            eval_every=6,
            eval_pairs=8,
        ),
        teacher=TeacherSettings(trace_style="compact"),
        # every pair for the cheap baselines; generative stages at the one exemplar they trained with
        evaluation=EvaluationSettings(
            model_pairs=24,
            generative_pairs=32,
            generative_counts=(1,),
            scalar_rm_steps=12,
            scalar_rm_batch_size=4,
            scalar_rm_max_length=384,
        ),
    ),
    # The paper's settings (arXiv 2508.14076 §4.1): Qwen2.5-7B-Instruct, SFT batch 64 / lr 5e-6 /
    # 1 epoch; GRPO 8 samples per prompt, batch 32, lr 3e-7, KL 1e-3; teacher Qwen2.5-72B-Instruct.
    "paper": Profile(
        name="paper",
        data=DataSettings(
            benchmarks=("ccat50", "cmcc"),  # folders you provide: $PERSRM_CCAT50_DIR, $PERSRM_CMCC_DIR
            passage_words=300,
            train_pairs=17200,
            eval_pairs=1000,
            query_words=32,
        ),
        model=ModelSettings(name="Qwen/Qwen2.5-7B-Instruct", max_seq_length=4096, max_completion_length=1024),
        lora=LoRASettings(r=64, alpha=128),
        sft=SFTSettings(batch_size=64, per_device_batch_size=4, learning_rate=5e-6, epochs=1.0),
        grpo=GRPOSettings(
            batch_size=32,
            num_generations=8,
            learning_rate=3e-7,
            max_steps=500,
            max_completion_length=1024,
            eval_every=50,
            eval_pairs=200,
            compare_from_base=True,
        ),
        teacher=TeacherSettings(kind="http", model="Qwen/Qwen2.5-72B-Instruct", base_url="http://localhost:8000/v1"),
        # every test pair for every judge and stage
        evaluation=EvaluationSettings(
            model_pairs=0, scalar_rm_steps=500, scalar_rm_batch_size=32, scalar_rm_max_length=4096
        ),
    ),
    # benchmarks/device_check.sh: both backends' SFT and GRPO plus judging well inside ten minutes on an H200.
    "device": Profile(
        name="device",
        data=DataSettings(passage_words=80, n_exemplars=1, train_pairs=48, eval_pairs=24, query_words=16),
        model=ModelSettings(max_seq_length=1024, max_completion_length=160),
        sft=SFTSettings(batch_size=8, per_device_batch_size=8, learning_rate=5e-4, max_steps=30),
        # a throughput check: compact traces (180-230 tokens) cut at 160 are mostly format violations
        grpo=GRPOSettings(
            batch_size=16,
            num_generations=4,
            learning_rate=2e-5,
            max_steps=10,
            max_completion_length=160,
            eval_every=0,  # the device check judges the held-out pairs after training instead
            eval_pairs=0,
        ),
        teacher=TeacherSettings(trace_style="compact"),
        evaluation=EvaluationSettings(model_pairs=8, generative_pairs=8, generative_counts=(1,)),
    ),
    # README "The gpu profile": NOT RUN at this size here, sized from the 135M runs and Unsloth's VRAM table.
    "gpu": Profile(
        name="gpu",
        data=DataSettings(train_pairs=1500, eval_pairs=200),
        model=ModelSettings(name="Qwen/Qwen2.5-3B-Instruct", max_seq_length=3072, max_completion_length=320),
        sft=SFTSettings(batch_size=16, per_device_batch_size=8, learning_rate=1e-4),
        grpo=GRPOSettings(
            batch_size=32,
            num_generations=8,
            learning_rate=5e-6,
            max_steps=100,
            max_completion_length=320,
            eval_every=25,
            eval_pairs=32,
        ),
        teacher=TeacherSettings(trace_style="compact"),
        evaluation=EvaluationSettings(
            model_pairs=100,
            generative_pairs=50,
            generative_counts=(1, 3),
            scalar_rm_steps=100,
            scalar_rm_batch_size=16,
            scalar_rm_max_length=2048,
        ),
    ),
}


def _coerce(current: Any, value: Any, key: str) -> Any:
    if isinstance(current, bool):
        if not isinstance(value, str):
            return bool(value)
        if value.lower() in TRUE_WORDS + FALSE_WORDS:
            return value.lower() in TRUE_WORDS
        raise ValueError(f"override {key}={value!r}: expected a boolean")
    if isinstance(current, tuple):
        if isinstance(value, str):
            value = parse_names(value)
        inner = type(current[0]) if current else str
        try:
            return tuple(inner(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"override {key}={value!r}: expected a comma-separated list of {inner.__name__}") from exc
    if current is None or isinstance(value, type(current)):
        return value
    if isinstance(current, int) and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"override {key}={value!r}: expected int")
    try:
        return type(current)(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"override {key}={value!r}: expected {type(current).__name__}") from exc


def _replace_setting(settings: Any, parts: list[str], value: Any, key: str) -> Any:
    """A copy of ``settings`` with the dotted setting ``parts`` replaced by ``value``."""
    if not is_dataclass(settings) or parts[0] not in {f.name for f in fields(settings)}:
        raise KeyError(f"unknown profile setting {key!r}")
    current = getattr(settings, parts[0])
    if len(parts) > 1:
        return replace(settings, **{parts[0]: _replace_setting(current, parts[1:], value, key)})
    if is_dataclass(current):
        raise KeyError(f"unknown profile setting {key!r}")
    return replace(settings, **{parts[0]: _coerce(current, value, key)})


def apply_overrides(profile: Profile, overrides: dict[str, Any]) -> Profile:
    """Return a copy with dotted keys replaced, e.g. ``{"grpo.max_steps": 5, "seed": 1}``.

    Raises:
        KeyError: ``unknown profile setting 'grpo.max_stepz'``.
        ValueError: a value that does not convert to the setting's type.
    """
    for key, value in overrides.items():
        profile = _replace_setting(profile, key.split("."), value, key)
    return profile


def get_profile(name: str | None = None, overrides: dict[str, Any] | None = None) -> Profile:
    """Look a profile up by name (default: ``$PERSRM_PROFILE`` or ``smoke``) and validate it."""
    name = name or os.environ.get(PROFILE_ENV, "smoke")
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return apply_overrides(PROFILES[name], overrides or {}).validate()


def pin_thread_env(n: int) -> None:
    """Pin the BLAS thread pools of this process and of the processes it starts to ``n`` threads."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def set_threads(n: int) -> None:
    """Pin torch and BLAS thread pools to ``n`` threads (call before heavy work)."""
    pin_thread_env(n)  # before torch is first imported: it reads them then
    import torch

    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # already set once in this process
        torch.set_num_interop_threads(n)
