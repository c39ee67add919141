from __future__ import annotations

import subprocess
import sys

import pytest

from persrm_lib.core.config import get_profile
from persrm_lib.models import backend
from persrm_lib.models.backend import BackendUnavailableError, lora_config, select_backend


@pytest.mark.parametrize(
    ("env", "cuda", "installed", "expected"),
    [
        (None, False, False, "transformers"),  # CPU machine, auto
        ("auto", True, False, "transformers"),  # GPU but no Unsloth
        ("auto", False, True, "transformers"),  # Unsloth installed but no GPU
        (None, True, True, "unsloth"),  # GPU and Unsloth: auto picks Unsloth
        ("transformers", True, True, "transformers"),  # forced transformers wins
        ("unsloth", True, True, "unsloth"),  # forced Unsloth where it can run
    ],
)
def test_select_backend(monkeypatch, env, cuda, installed, expected):
    if env is None:
        monkeypatch.delenv("PERSRM_BACKEND", raising=False)
    else:
        monkeypatch.setenv("PERSRM_BACKEND", env)
    monkeypatch.setattr(backend, "cuda_available", lambda: cuda)
    monkeypatch.setattr(backend, "unsloth_installed", lambda: installed)
    assert select_backend() == expected


@pytest.mark.parametrize(
    ("cuda", "installed", "match"),
    [
        (False, True, "PERSRM_BACKEND=unsloth cannot run: no CUDA device is visible$"),
        (True, False, r"Unsloth is not installed \(pip install -e '.\[gpu\]'"),
        (False, False, "no CUDA device is visible; Unsloth is not installed"),
    ],
)
def test_forcing_unsloth_where_it_cannot_run_fails_clearly(monkeypatch, cuda, installed, match):
    monkeypatch.setenv("PERSRM_BACKEND", "unsloth")
    monkeypatch.setattr(backend, "cuda_available", lambda: cuda)
    monkeypatch.setattr(backend, "unsloth_installed", lambda: installed)
    with pytest.raises(BackendUnavailableError, match=match):
        select_backend()
    with pytest.raises(BackendUnavailableError):
        backend.load_for_training(get_profile("tiny"))


def test_unknown_backend_name(monkeypatch):
    monkeypatch.setenv("PERSRM_BACKEND", "jax")
    with pytest.raises(
        ValueError, match="PERSRM_BACKEND='jax' is not a backend; choose one of auto, unsloth, transformers"
    ):
        select_backend()


def test_lora_config_comes_from_the_profile():
    profile = get_profile("smoke")
    config = lora_config(profile)
    assert (config.r, config.lora_alpha, config.lora_dropout) == (
        profile.lora.r,
        profile.lora.alpha,
        profile.lora.dropout,
    )
    assert set(config.target_modules) == set(profile.lora.target_modules)


def test_importing_the_library_never_imports_unsloth():
    code = (
        "import importlib, pkgutil, sys, persrm_lib\n"
        "for m in pkgutil.walk_packages(persrm_lib.__path__, 'persrm_lib.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('unsloth', 'unsloth_zoo')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("requested", "env", "cuda", "installed", "expected"),
    [
        ("transformers", "unsloth", False, False, "transformers"),  # an explicit choice wins over the variable
        ("auto", "unsloth", False, True, "transformers"),  # explicit auto too: no GPU, so transformers
        ("unsloth", "transformers", True, True, "unsloth"),  # and forced Unsloth where it can run
    ],
)
def test_requested_backend_wins_over_the_variable(monkeypatch, requested, env, cuda, installed, expected):
    monkeypatch.setenv("PERSRM_BACKEND", env)
    monkeypatch.setattr(backend, "cuda_available", lambda: cuda)
    monkeypatch.setattr(backend, "unsloth_installed", lambda: installed)
    assert select_backend(requested) == expected


def test_requested_unsloth_names_the_argument_in_its_error(monkeypatch):
    monkeypatch.delenv("PERSRM_BACKEND", raising=False)
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    monkeypatch.setattr(backend, "unsloth_installed", lambda: True)
    with pytest.raises(BackendUnavailableError, match="^backend=unsloth cannot run: no CUDA device is visible$"):
        select_backend("unsloth")
    with pytest.raises(ValueError, match="^backend='jax' is not a backend; choose one of auto, unsloth, transformers$"):
        select_backend("jax")
