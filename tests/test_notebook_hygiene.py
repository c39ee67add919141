"""Notebooks are stored without outputs and open the same way: title, what it shows and which paper section,
inputs and outputs, one `parameters` cell right after the imports (README, "The notebooks")."""

from __future__ import annotations

import json

import pytest

from persrm_lib.core.paths import NOTEBOOKS_DIR
from persrm_lib.run.runner import declared_parameters, discover

NOTEBOOKS = discover(NOTEBOOKS_DIR)


def test_the_ordered_notebooks_are_numbered_without_gaps():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterised(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} carries outputs"
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged parameters"
    params = declared_parameters(path)
    assert params["profile"] == "smoke"
    assert "run_dir" in params
    assert cells[-1]["cell_type"] == "markdown"  # ends with a summary and the next notebook
    assert "write_metrics" in "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def _setting_names(settings, prefix: str = "") -> dict[str, str]:
    """Every profile setting's last name -> its dotted name (``max_steps`` -> ``grpo.max_steps``)."""
    from dataclasses import fields, is_dataclass

    found: dict[str, str] = {}
    for spec in fields(settings):
        value = getattr(settings, spec.name)
        if is_dataclass(value):
            found.update(_setting_names(value, f"{prefix}{spec.name}."))
        elif spec.name != "name":
            found[spec.name] = f"{prefix}{spec.name}"
    return found


# a notebook knob that shares a setting's name without being that setting
NOT_SETTINGS = {("05_evaluate", "batch_size")}  # prompts per forward pass; sft/grpo.batch_size are training batches


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_parameter_stands_in_for_a_profile_setting(path):
    # each decision is made once: a profile setting is changed with --profile or --set, never -p
    from persrm_lib.core.config import get_profile
    from persrm_lib.run.runner import declared_parameter_specs

    settings = _setting_names(get_profile("smoke"))
    specs = declared_parameter_specs(path)
    doubles = {n: settings[n] for n in specs if n in settings and (path.stem, n) not in NOT_SETTINGS}
    assert not doubles, f"{path.name}: parameters that are profile settings (use --set): {doubles}"
    assert not [n for n, spec in specs.items() if "the profile's" in spec.help], path.name
