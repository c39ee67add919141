"""Publishing a finished run into results/<profile>/: complete, refused for another profile, atomic."""

from __future__ import annotations

import json

import pytest
from run_fixtures import NOTEBOOK_STEMS, write_executed

from persrm_lib.run import publish
from persrm_lib.run.publish import PublishError


def make_finished_run(run, profile="cpu", adapter_bytes=1000):
    write_executed(run, profile, seconds=12.34)
    (run / "metrics").mkdir(parents=True)
    (run / "metrics" / "05_evaluate.json").write_text(json.dumps({"accuracy_rm_rft": 0.6, "n": {"sotu": 16}}))
    (run / "sft").mkdir()
    (run / "sft" / "log.csv").write_text("step,loss\n1,2.5\n")
    (run / "rft" / "adapter").mkdir(parents=True)
    (run / "rft" / "log.csv").write_text("step,reward_mean\n1,-0.5\n")
    (run / "rft" / "adapter" / "adapter_model.safetensors").write_bytes(b"\x01" * adapter_bytes)
    (run / "rft" / "adapter" / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "/home/someone/.cache/models/smollm2", "r": 8})
    )
    (run / "rft" / "adapter" / "README.md").write_text("base_model: /home/someone/.cache/models/smollm2\n")
    (run / "rft" / "adapter" / "training_args.bin").write_bytes(b"pickled /home/someone/run")
    (run / "rft" / "adapter" / "persrm_training.json").write_text(
        json.dumps({"from_sft": str(run.resolve() / "sft" / "adapter"), "steps": 8})
    )
    (run / "rft" / "completions.jsonl").write_text('{"step": 1}\n')
    (run / "eval" / "completions").mkdir(parents=True)
    (run / "eval" / "completions" / "sft.jsonl").write_text('{"id": "p:3:original"}\n')
    (run / "eval" / "accuracy_by_benchmark.csv").write_text("judge,sotu\nchar-ngram,0.7\n")
    (run / "eval" / "accuracy_by_benchmark.md").write_text("| judge | sotu |\n")
    return run


def test_publish_copies_metrics_logs_tables_adapter_and_a_manifest(tmp_path):
    run = make_finished_run(tmp_path / "run")
    dest = tmp_path / "results" / "cpu"
    manifest = publish.publish(run, "cpu", dest)
    assert json.loads((dest / "metrics.json").read_text()) == {"05_evaluate": {"accuracy_rm_rft": 0.6, "n.sotu": 16}}
    assert (dest / "logs" / "sft.csv").read_text() == "step,loss\n1,2.5\n"
    assert (dest / "logs" / "rft.csv").is_file()
    assert (dest / "tables" / "eval_accuracy_by_benchmark.csv").is_file()
    assert (dest / "tables" / "eval_accuracy_by_benchmark.md").is_file()
    assert (dest / "adapters" / "rft" / "adapter_model.safetensors").stat().st_size == 1000
    # what the model wrote: 05's completions per stage and the GRPO samples (no file for stages that did not run)
    assert sorted(p.name for p in (dest / "completions").iterdir()) == ["eval_sft.jsonl", "grpo_rft.jsonl"]
    assert (dest / "completions" / "eval_sft.jsonl").read_text() == '{"id": "p:3:original"}\n'
    # no path of this machine travels with the adapter
    assert json.loads((dest / "adapters" / "rft" / "adapter_config.json").read_text()) == {
        "base_model_name_or_path": "smollm2-135m-instruct",
        "r": 8,
    }
    assert json.loads((dest / "adapters" / "rft" / "persrm_training.json").read_text())["from_sft"] == "sft/adapter"
    assert not (dest / "adapters" / "rft" / "README.md").exists()
    assert not (dest / "adapters" / "rft" / "training_args.bin").exists()
    on_disk = json.loads((dest / "MANIFEST.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["profile"] == "cpu" and on_disk["settings"]["name"] == "cpu"
    assert on_disk["notebook_seconds"] == {stem: 12.3 for stem in NOTEBOOK_STEMS}
    assert sorted(on_disk["files"]) == sorted(
        str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and p.name != "MANIFEST.json"
    )
    assert sorted(p.name for p in dest.parent.iterdir()) == ["cpu"]  # no staging folder left behind


def test_publishing_the_reference_run_leaves_no_figure_of_an_earlier_run(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(publish, "FIGURES_DIR", tmp_path / "figures")
    figures = tmp_path / "figures"
    figures.mkdir()
    for name in ("05_accuracy.png", "06_rft_order_robustness.png", "persona_learning_curve.png"):
        (figures / name).write_bytes(b"earlier run")
    run = make_finished_run(tmp_path / "run")
    (run / "figures").mkdir()
    (run / "figures" / "05_accuracy.png").write_bytes(b"this run")
    (run / "figures" / "07_behaviors.png").write_bytes(b"this run")
    publish.publish(run, "cpu", tmp_path / "elsewhere")  # not the reference folder: figures untouched
    assert sorted(p.name for p in figures.iterdir()) == [
        "05_accuracy.png", "06_rft_order_robustness.png", "persona_learning_curve.png"
    ]  # fmt: skip
    publish.publish(run, "cpu")
    # the run's figures, none of the earlier run's, and the benchmark's figure left alone
    assert {p.name: p.read_bytes() for p in figures.iterdir()} == {
        "05_accuracy.png": b"this run", "07_behaviors.png": b"this run", "persona_learning_curve.png": b"earlier run"
    }  # fmt: skip


def test_publish_leaves_out_a_large_adapter_and_says_why(tmp_path):
    run = make_finished_run(tmp_path / "run", adapter_bytes=3 * 2**20)
    manifest = publish.publish(run, "cpu", tmp_path / "out", max_adapter_mb=2)
    assert not (tmp_path / "out" / "adapters").exists()
    assert manifest["adapters_left_out"] == {"rft": "3.0 MB is not under 2 MB"}


def test_a_run_with_overrides_is_published_only_beside_the_reference(tmp_path, monkeypatch):
    from persrm_lib.core import runfiles

    monkeypatch.setattr(publish, "RESULTS_DIR", tmp_path / "results")
    run = make_finished_run(tmp_path / "run")
    runfiles.settings_path(run).write_text(json.dumps({"overrides": {"prompt.evidence": "stylometric"}}))
    with pytest.raises(PublishError, match="run with overrides .*prompt.evidence.*publish it with --dest"):
        publish.publish(run, "cpu")
    assert not (tmp_path / "results" / "cpu").exists()
    manifest = publish.publish(run, "cpu", tmp_path / "results" / "cpu-evidence")
    assert manifest["overrides"] == {"prompt.evidence": "stylometric"}
    assert manifest["settings"]["prompt"]["evidence"] == "stylometric"


def test_a_smoke_run_cannot_overwrite_the_cpu_results(tmp_path, capsys):
    dest = tmp_path / "results" / "cpu"
    publish.publish(make_finished_run(tmp_path / "cpu-run"), "cpu", dest)
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    smoke = make_finished_run(tmp_path / "smoke-run", profile="smoke")
    with pytest.raises(PublishError, match="was run with profile 'smoke', not 'cpu'"):
        publish.publish(smoke, "cpu", dest)
    code = publish.main(["--run-dir", str(smoke), "--profile", "cpu", "--dest", str(dest)])
    assert code == 2 and "profile 'smoke'" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before


def test_an_incomplete_or_mixed_run_is_refused(tmp_path):
    run = make_finished_run(tmp_path / "run")
    (run / "executed" / "07_behavior_analysis.ipynb").unlink()
    with pytest.raises(PublishError, match="only 6 of 7 notebooks executed"):
        publish.publish(run, "cpu", tmp_path / "out")
    write_executed(run, "smoke", stems=["07_behavior_analysis"])
    with pytest.raises(PublishError, match="disagree on the profile"):
        publish.publish(run, "cpu", tmp_path / "out")
    with pytest.raises(PublishError, match="holds no notebooks"):
        publish.run_profile(tmp_path / "empty")
    assert not (tmp_path / "out").exists()


def test_a_failure_midway_keeps_the_previous_results(tmp_path, monkeypatch):
    dest = tmp_path / "results" / "cpu"
    run = make_finished_run(tmp_path / "run")
    publish.publish(run, "cpu", dest)
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    monkeypatch.setattr(publish, "sha256_file", lambda path: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        publish.publish(run, "cpu", dest)
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["cpu"]


def test_restore_puts_adapters_back_without_touching_existing_ones(tmp_path):
    dest = tmp_path / "results" / "cpu"
    publish.publish(make_finished_run(tmp_path / "run"), "cpu", dest)
    fresh = tmp_path / "fresh"
    assert publish.restore(dest, fresh) == ["rft"]
    assert (fresh / "rft" / "adapter" / "adapter_model.safetensors").read_bytes() == b"\x01" * 1000
    (fresh / "rft" / "adapter" / "adapter_config.json").write_text('{"mine": 1}')
    assert publish.restore(dest, fresh) == []
    assert (fresh / "rft" / "adapter" / "adapter_config.json").read_text() == '{"mine": 1}'


def test_results_markdown_tabulates_each_judge_and_the_goals(tmp_path):
    run = make_finished_run(tmp_path / "run")
    (run / "metrics" / "05_evaluate.json").write_text(json.dumps({"main_exemplars": 3}))
    header = (
        "id,benchmark,judge,n_exemplars,label,negative_kind,preferred,format_ok,swapped_preferred,swapped_format_ok"
    )
    rows = [header]
    for i in range(4):  # char-ngram right on 3 of 4 sotu pairs; rm-rft right on all, consistent on all
        rows.append(f"p{i},sotu,char-ngram,3,a,random,{'a' if i else 'b'},True,{'b' if i else 'a'},True")
        rows.append(f"p{i},sotu,rm-rft,3,a,random,a,True,b,True")
        rows.append(f"p{i},sotu,rm-rft,1,a,random,b,False,,")  # another exemplar count: left out
    rows.append("q0,aaac,char-ngram,3,a,random,a,True,b,True")
    (run / "eval" / "per_pair.csv").write_text("\n".join(rows) + "\n")
    (run / "eval" / "goals.md").write_text("| goal | met |\n|---|---|\n| format compliance | True |\n")
    dest = tmp_path / "results" / "cpu"
    publish.publish(run, "cpu", dest)
    text = publish.results_markdown(dest)
    lines = text.splitlines()
    assert "| `char-ngram` | 100.0 [100.0, 100.0] (1) | 75.0 [" in text
    assert "| `rm-rft` | – | 100.0 [100.0, 100.0] (4) | 100.0 (4) | 1.00 | 0.50 | 1.00 | 1.00 | – |" in lines
    assert "| format compliance | True |" in lines
    assert lines[-1].startswith("Wall time (minutes): 01 0.2,") and lines[-1].endswith("; 1 in all.")


def test_update_readme_replaces_only_the_block_and_needs_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    start, end = publish.README_START.format(profile="cpu"), publish.README_END.format(profile="cpu")
    readme.write_text(f"# title\n\n{start}\nold numbers\n{end}\n\n## next\n")
    assert publish.update_readme(readme, "new numbers")
    assert readme.read_text() == f"# title\n\n{start}\nnew numbers\n{end}\n\n## next\n"
    assert not publish.update_readme(readme, "new numbers")  # unchanged the second time
    readme.write_text("# no block\n")
    with pytest.raises(PublishError, match="has no results block"):
        publish.update_readme(readme, "x")
    assert readme.read_text() == "# no block\n"


def test_the_readme_shows_the_committed_reference_results():
    """The README's results block is generated from results/cpu, never typed by hand."""
    from persrm_lib.core.paths import REPO_ROOT, RESULTS_DIR

    assert (RESULTS_DIR / "cpu" / "MANIFEST.json").is_file(), "results/cpu is not published"
    text = (REPO_ROOT / "README.md").read_text()
    start, end = publish.README_START.format(profile="cpu"), publish.README_END.format(profile="cpu")
    block = text.split(start, 1)[1].split(end, 1)[0].strip("\n")
    assert block == publish.results_markdown(RESULTS_DIR / "cpu")


def test_every_figure_the_readme_shows_is_committed():
    import re

    from persrm_lib.core.paths import REPO_ROOT

    linked = re.findall(r"\]\((figures/[^)]+\.png)\)", (REPO_ROOT / "README.md").read_text())
    assert linked, "the README shows no figure"
    assert [f for f in linked if not (REPO_ROOT / f).is_file()] == []


# paths the README names as where a result WILL go, with the section that says so
NOT_YET_WRITTEN = {"results/device/": "Checking the GPU path: not run on GPU hardware yet"}


def test_every_file_the_readme_and_design_notes_cite_is_committed():
    """A backticked repository path in README.md or docs/design.md (results, benchmarks, figures, ...)
    names a file or folder that is in the tree: a renamed result cannot leave a dangling citation."""
    import re

    from persrm_lib.core.paths import REPO_ROOT

    cited = re.compile(r"`((?:results|benchmarks|figures|notebooks|persrm_lib|docs|configs|tests|binder)/[^`\s]*)`")
    missing = []
    for doc in ("README.md", "docs/design.md"):
        for path in sorted(set(cited.findall((REPO_ROOT / doc).read_text()))):
            if any(c in path for c in "<>*{}$"):  # a pattern (results/<profile>/...), not a path
                continue
            if not (REPO_ROOT / path).exists() and path not in NOT_YET_WRITTEN:
                missing.append(f"{doc}: {path}")
    assert missing == []
    for path in NOT_YET_WRITTEN:  # once written, the entry goes
        assert not (REPO_ROOT / path).exists(), f"{path} exists now: remove it from NOT_YET_WRITTEN"
