from __future__ import annotations

import pytest

from persrm_lib.core.config import PROFILES, apply_overrides, get_profile


def test_every_profile_validates():
    assert sorted(PROFILES) == ["cpu", "device", "gpu", "paper", "smoke", "tiny"]
    for name in PROFILES:
        assert get_profile(name).name == name


def test_paper_profile_carries_the_papers_settings():
    paper = get_profile("paper")
    assert paper.model.name == "Qwen/Qwen2.5-7B-Instruct"
    assert (paper.sft.batch_size, paper.sft.learning_rate, paper.sft.epochs) == (64, 5e-6, 1.0)
    assert (paper.grpo.batch_size, paper.grpo.num_generations) == (32, 8)
    assert (paper.grpo.learning_rate, paper.grpo.beta) == (3e-7, 1e-3)
    assert paper.teacher.model == "Qwen/Qwen2.5-72B-Instruct"


def test_profile_models():
    assert get_profile("tiny").model.name == "tiny-random"
    assert get_profile("smoke").model.name == "smollm2-135m-instruct"
    assert get_profile("cpu").model.name == "smollm2-135m-instruct"


def test_gpu_and_device_profiles():
    gpu = get_profile("gpu")
    assert gpu.model.name == "Qwen/Qwen2.5-3B-Instruct"  # the paper's smallest model (91.8% CCAT)
    assert (gpu.model.load_in_4bit, gpu.lora.r, gpu.teacher.kind) == (False, 16, "stylometric")
    assert (gpu.grpo.batch_size, gpu.grpo.num_generations, gpu.grpo.beta) == (32, 8, 1e-3)
    device = get_profile("device")
    assert device.model.name == "smollm2-135m-instruct"
    assert (device.sft.max_steps, device.grpo.max_steps, device.grpo.eval_every) == (30, 10, 0)
    # the device check builds its own data (device_check.sh stage: notebooks 01-02 of this profile):
    # the paper's pairwise format on sotu and aaac, as the GPU path of the paper and gpu profiles
    assert (device.prompt.mode, device.data.benchmarks) == ("pairwise", ("sotu", "aaac"))


def test_default_profile_comes_from_environment(monkeypatch):
    monkeypatch.setenv("PERSRM_PROFILE", "tiny")
    assert get_profile().name == "tiny"
    monkeypatch.delenv("PERSRM_PROFILE")
    assert get_profile().name == "smoke"


@pytest.mark.parametrize(
    ("overrides", "path", "expected"),
    [
        ({"seed": 3}, ("seed",), 3),  # top-level int
        ({"grpo.max_steps": "5"}, ("grpo", "max_steps"), 5),  # string coerced to int
        ({"sft.learning_rate": "1e-4"}, ("sft", "learning_rate"), 1e-4),  # string to float
        ({"model.load_in_4bit": "true"}, ("model", "load_in_4bit"), True),  # string to bool
        ({"lora.target_modules": "q_proj,v_proj"}, ("lora", "target_modules"), ("q_proj", "v_proj")),  # list
    ],
)
def test_overrides(overrides, path, expected):
    profile = get_profile("tiny", overrides)
    value = profile
    for part in path:
        value = getattr(value, part)
    assert value == expected
    assert PROFILES["tiny"].seed == 0  # the registered profile is untouched


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"grpo.batch_size": 6, "grpo.num_generations": 4}, ValueError, "does not divide by grpo.num_generations=4"),
        (
            {"grpo.num_generations": 1, "grpo.batch_size": 1},
            ValueError,
            r"num_generations must be an integer in \[2, inf\)",
        ),
        ({"sft.batch_size": 3}, ValueError, "sft.batch_size=3 does not divide"),
        ({"data.n_exemplars": 0}, ValueError, r"n_exemplars must be an integer in \[1, 8\], got 0"),
        ({"teacher.kind": "oracle"}, ValueError, "teacher.kind"),
        ({"grpo.max_stepz": 5}, KeyError, "unknown profile setting 'grpo.max_stepz'"),
        ({"grpo": 5}, KeyError, "unknown profile setting 'grpo'"),
        ({"seed": "x"}, ValueError, "expected int"),
        ({"model.load_in_4bit": "maybe"}, ValueError, "expected a boolean"),
        ({"grpo.eval_every": -1}, ValueError, r"grpo.eval_every must be an integer in \[0, inf\), got -1"),
        ({"grpo.eval_pairs": -3}, ValueError, r"grpo.eval_pairs must be an integer in \[0, inf\), got -3"),
    ],
)
def test_bad_overrides(overrides, error, match):
    with pytest.raises(error, match=match):
        get_profile("tiny", overrides)


def test_unknown_profile():
    with pytest.raises(KeyError, match="unknown profile 'huge'; choose one of tiny, smoke, cpu, paper, device, gpu"):
        get_profile("huge")


def test_apply_overrides_nested_keeps_siblings():
    profile = apply_overrides(PROFILES["smoke"], {"grpo.beta": 0.0})
    assert profile.grpo.beta == 0.0
    assert profile.grpo.num_generations == PROFILES["smoke"].grpo.num_generations


@pytest.mark.parametrize(
    ("name", "eval_every", "eval_pairs", "compare_from_base"),
    [
        ("tiny", 1, 2, False),  # unit tests: every step, two pairs; no second GRPO run
        ("smoke", 2, 2, False),  # once, after the last of two steps; CI time
        ("cpu", 6, 8, False),  # two evaluations over 12 steps; no time for the §5.1 comparison
        ("paper", 50, 200, True),
    ],
)
def test_grpo_validation_and_from_base_settings(name, eval_every, eval_pairs, compare_from_base):
    grpo = get_profile(name).grpo
    assert (grpo.eval_every, grpo.eval_pairs, grpo.compare_from_base) == (eval_every, eval_pairs, compare_from_base)
    assert grpo.eval_every <= grpo.max_steps  # at least one evaluation in a full run


def test_grpo_validation_is_off_by_default():
    from persrm_lib.core.config import GRPOSettings

    assert (GRPOSettings().eval_every, GRPOSettings().eval_pairs, GRPOSettings().compare_from_base) == (0, 0, False)


# ---- the evaluation section (05_evaluate's sizes) -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # model_pairs, generative_pairs, generative_counts, scalar_rm_steps, scalar_rm_batch_size, scalar_rm_max_length
        ("tiny", (2, 2, (), 2, 2, 256)),  # seconds: two pairs of each kind, the profile's exemplar counts
        ("smoke", (2, 2, (1,), 2, 2, 320)),  # minutes: 2 pairs of sotu and aaac (16 of personas), one exemplar
        ("cpu", (24, 32, (1,), 12, 4, 384)),  # the reference run: at the exemplar count it trained with
        ("paper", (0, 0, (), 500, 32, 4096)),  # every pair
    ],
)
def test_evaluation_settings_per_profile(name, expected):
    e = get_profile(name).evaluation
    found = (
        e.model_pairs,
        e.generative_pairs,
        e.generative_counts,
        e.scalar_rm_steps,
        e.scalar_rm_batch_size,
        e.scalar_rm_max_length,
    )
    assert found == expected


def test_evaluation_defaults_for_a_profile_without_its_own():
    from persrm_lib.core.config import EvaluationSettings, Profile

    assert Profile(name="new").evaluation == EvaluationSettings(
        model_pairs=0,
        generative_pairs=0,
        generative_counts=(),
        scalar_rm_steps=50,
        scalar_rm_batch_size=4,
        scalar_rm_max_length=512,
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"evaluation.model_pairs": "0"}, ("model_pairs", 0)),  # text coerced to int
        ({"evaluation.generative_counts": "1,3"}, ("generative_counts", (1, 3))),  # a comma list of ints
        ({"evaluation.generative_counts": [3]}, ("generative_counts", (3,))),  # a list
        ({"evaluation.scalar_rm_steps": 7}, ("scalar_rm_steps", 7)),
    ],
)
def test_evaluation_overrides(overrides, expected):
    field, value = expected
    assert getattr(get_profile("tiny", overrides).evaluation, field) == value
    assert PROFILES["tiny"].evaluation.scalar_rm_steps == 2  # the registered profile is untouched


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"evaluation.model_pairs": -1}, r"evaluation.model_pairs must be an integer in \[0, inf\), got -1"),
        ({"evaluation.generative_pairs": -2}, r"evaluation.generative_pairs must be an integer in \[0, inf\), got -2"),
        ({"evaluation.scalar_rm_steps": 0}, r"evaluation.scalar_rm_steps must be an integer in \[1, inf\), got 0"),
        (
            {"evaluation.generative_counts": "0,3"},
            r"evaluation.generative_counts must be each an integer in \[1, 8\], got \(0, 3\)",
        ),
        (
            {"evaluation.generative_counts": "one"},
            r"generative_counts=\['one'\]: expected a comma-separated list of int",
        ),
        (
            {"evaluation.persona_generative_pairs": -1},
            r"evaluation.persona_generative_pairs must be an integer in \[0, inf\), got -1",
        ),
        ({"sft.lr_scheduler": "cosine"}, r"sft.lr_scheduler must be linear or constant, got 'cosine'"),
        (
            {"evaluation.stop_unparsable": "true", "evaluation.strip_think": "true"},
            r"evaluation.stop_unparsable and evaluation.strip_think exclude each other",
        ),
    ],
)
def test_bad_evaluation_overrides(overrides, match):
    with pytest.raises(ValueError, match=match):
        get_profile("smoke", overrides)
