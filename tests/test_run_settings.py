"""Profile overrides for a whole run (python -m persrm_lib.run --set): validated before any notebook
runs, stored in the run folder, applied by every notebook, kept apart from the reference results."""

from __future__ import annotations

import json

import pytest

from persrm_lib.core import runfiles
from persrm_lib.run import notebook, runner
from persrm_lib.run.settings import RunSettingsError, read_overrides, store_overrides


def test_overrides_are_validated_stored_and_applied_by_every_notebook(tmp_path):
    run = tmp_path / "run"
    applied = store_overrides(run, "smoke", {"prompt.evidence": "stylometric", "grpo.max_steps": "3"})
    assert applied == {"prompt.evidence": "stylometric", "grpo.max_steps": "3"}
    assert json.loads(runfiles.settings_path(run).read_text()) == {"profile": "smoke", "overrides": applied}
    cfg, _ = notebook.start("smoke", run)
    assert (cfg.prompt.evidence, cfg.grpo.max_steps) == ("stylometric", 3)
    # a later call without overrides (a re-run of one notebook) keeps the folder's
    assert store_overrides(run, "smoke", {}) == applied
    assert store_overrides(run, "smoke", dict(applied)) == applied


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prompt.evidnce": "stylometric"}, "unknown profile setting 'prompt.evidnce'"),
        ({"grpo.max_steps": "many"}, "grpo.max_steps='many': expected int"),
        ({"prompt.evidence": "tables"}, "evidence"),
    ],
)
def test_bad_overrides_are_refused_before_anything_is_written(tmp_path, overrides, message):
    run = tmp_path / "run"
    with pytest.raises(RunSettingsError, match=message):
        store_overrides(run, "smoke", overrides)
    assert not run.exists()


def test_a_folder_holds_one_configuration(tmp_path):
    run = tmp_path / "run"
    store_overrides(run, "smoke", {"prompt.evidence": "stylometric"})
    with pytest.raises(RunSettingsError, match="holds one configuration"):
        store_overrides(run, "smoke", {"prompt.evidence": "none"})
    # the same settings written differently are the same configuration
    shares = tmp_path / "shares"
    assert store_overrides(shares, "smoke", {"teacher.hinted_share": "0.3"}) == {"teacher.hinted_share": "0.3"}
    assert store_overrides(shares, "smoke", {"teacher.hinted_share": "0.30"}) == {"teacher.hinted_share": "0.3"}
    with pytest.raises(RunSettingsError, match="holds one configuration"):
        store_overrides(shares, "smoke", {"teacher.hinted_share": "0.31"})
    plain = tmp_path / "plain"
    (plain / "data").mkdir(parents=True)  # outputs of a run without overrides
    with pytest.raises(RunSettingsError, match=r"already holds outputs made without overrides \(data\)"):
        store_overrides(plain, "smoke", {"prompt.evidence": "stylometric"})
    assert not runfiles.settings_path(plain).exists()


def test_a_folder_refuses_another_profile_and_a_new_folder_records_its_own(tmp_path):
    run = tmp_path / "run"
    assert store_overrides(run, "tiny", {}) == {}
    assert json.loads(runfiles.settings_path(run).read_text()) == {"profile": "tiny", "overrides": {}}
    (run / "data").mkdir()
    assert store_overrides(run, "tiny", {}) == {}  # a later notebook of the same run
    with pytest.raises(RunSettingsError, match="started with profile 'tiny'.*profile 'smoke' needs another"):
        store_overrides(run, "smoke", {})
    with pytest.raises(RunSettingsError, match="started with no overrides"):
        store_overrides(run, "tiny", {"grpo.max_steps": "3"})


@pytest.mark.parametrize(
    ("setting", "value"), [("sft.epochs", "-1"), ("sft.epochs", "0"), ("sft.max_steps", "0"), ("grpo.max_steps", "0")]
)
def test_out_of_range_step_counts_are_refused(tmp_path, setting, value):
    with pytest.raises(RunSettingsError, match=setting.replace(".", r"\.")):
        store_overrides(tmp_path / "run", "tiny", {setting: value})


def test_an_unreadable_settings_file_is_named(tmp_path):
    runfiles.settings_path(tmp_path).write_text("{not json")
    with pytest.raises(RunSettingsError, match="settings.json: not valid JSON"):
        read_overrides(tmp_path)
    runfiles.settings_path(tmp_path).write_text('{"prompt.evidence": "none"}')
    with pytest.raises(RunSettingsError, match='expected {"overrides"'):
        read_overrides(tmp_path)


def test_runner_cli_refuses_a_bad_setting_with_status_2_and_runs_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    code = runner.main(["--profile", "tiny", "--run-dir", str(run), "--only", "01", "--set", "sft.epoch", "2"])
    assert code == 2
    assert "unknown profile setting 'sft.epoch'" in capsys.readouterr().err
    assert not (run / runner.EXECUTED_SUBDIR).exists()


def test_a_variant_run_does_not_write_the_reference_figures(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    published = tmp_path / "figures"
    monkeypatch.setattr(notebook, "FIGURES_DIR", published)
    plain, variant = tmp_path / "cpu", tmp_path / "cpu-evidence"
    store_overrides(variant, "cpu", {"prompt.evidence": "stylometric"})
    for run in (variant, plain):
        fig, _ = plt.subplots()
        notebook.save_fig(fig, f"05_{run.name}", run, "cpu")
        plt.close(fig)
    assert (variant / "figures" / "05_cpu-evidence.png").is_file()
    assert sorted(p.name for p in published.iterdir()) == ["05_cpu.png"]
