from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from persrm_lib.run import runner
from persrm_lib.run.runner import NotebookFailedError, UnknownParameterError, discover, plan_parameters, run_notebooks


def _notebook(path: Path, params: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(
        folder / "01_first.ipynb",
        'profile = "smoke"\nrun_dir = "../runs/smoke"\nsteps = 2  # how many lines to write',
        "from pathlib import Path\nPath(run_dir, 'first.txt').write_text('\\n'.join(['x'] * steps))",
    )
    _notebook(
        folder / "02_second.ipynb",
        'profile = "smoke"\nrun_dir = "../runs/smoke"\nscale = 1.0  # a factor',
        "from pathlib import Path\nn = len(Path(run_dir, 'first.txt').read_text().splitlines())\n"
        "Path(run_dir, 'second.json').write_text(str(n * scale))",
    )
    (folder / "notes.ipynb").write_text("{}")  # not numbered: never run
    return folder


def test_discover_orders_numbered_notebooks(notebooks):
    assert [p.name for p in discover(notebooks)] == ["01_first.ipynb", "02_second.ipynb"]
    assert [p.name for p in discover(notebooks, only=["02"])] == ["02_second.ipynb"]
    with pytest.raises(FileNotFoundError, match="no notebook matches 09"):
        discover(notebooks, only=["09"])


def test_parameters_go_only_where_declared(notebooks, tmp_path):
    plan = plan_parameters(discover(notebooks), "tiny", tmp_path, {"steps": 3, "scale": 2.0})
    first, second = (plan[p] for p in discover(notebooks))
    assert first == {"profile": "tiny", "run_dir": str(tmp_path), "steps": 3}
    assert second == {"profile": "tiny", "run_dir": str(tmp_path), "scale": 2.0}


def test_runner_refuses_a_misspelt_parameter(notebooks, tmp_path):
    with pytest.raises(
        UnknownParameterError,
        match="unknown parameter.s. stepz: no notebook of this run declares them; known: scale, steps",
    ):
        run_notebooks("tiny", tmp_path / "run", {"stepz": 3}, notebooks_dir=notebooks, log=lambda s: None)
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_runner_executes_in_order_and_keeps_executed_copies(notebooks, tmp_path):
    lines: list[str] = []
    results = run_notebooks(
        "tiny", tmp_path / "run", {"steps": 3, "scale": 2.0}, notebooks_dir=notebooks, log=lines.append
    )
    assert [r.name for r in results] == ["01_first.ipynb", "02_second.ipynb"]
    assert (tmp_path / "run" / "second.json").read_text() == "6.0"
    for r in results:
        assert r.executed.is_file()
        executed = json.loads(r.executed.read_text())
        assert any(c["metadata"].get("tags") == ["injected-parameters"] for c in executed["cells"])
    assert lines[0].startswith("run folder ")
    assert lines[1].startswith("[1/2] 01_first") and " ok " in lines[1] and lines[1].endswith("s")
    assert lines[2].startswith("[2/2] 02_second")


def test_runner_stops_at_the_first_failing_notebook_naming_the_cell(notebooks, tmp_path):
    _notebook(notebooks / "01_first.ipynb", 'profile = "smoke"\nrun_dir = ""', "raise ValueError('no corpus here')")
    lines: list[str] = []
    with pytest.raises(
        NotebookFailedError, match=r"notebook 01_first.ipynb failed in cell 3: ValueError: no corpus here"
    ) as info:
        run_notebooks("tiny", tmp_path / "run", notebooks_dir=notebooks, log=lines.append)
    assert info.value.executed.is_file()  # the executed copy is kept for reading
    assert "FAILED" in lines[-1]
    assert not (tmp_path / "run" / "second.json").exists()  # 02 never ran


def test_notebook_without_the_standard_parameters_is_refused(notebooks, tmp_path):
    _notebook(notebooks / "02_second.ipynb", "scale = 1.0", "pass")
    with pytest.raises(UnknownParameterError, match="02_second.ipynb has no profile, run_dir in its parameters cell"):
        plan_parameters(discover(notebooks), "tiny", tmp_path, {})


def test_cli_reports_errors_and_parses_values(notebooks, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setattr(runner.run_notebooks, "__defaults__", (None, None, None, notebooks, print))
    code = runner.main(["--profile", "tiny", "--run-dir", str(tmp_path / "r"), "-p", "stepz", "1"])
    assert code == 1
    assert "error: unknown parameter(s) stepz" in capsys.readouterr().err
    assert runner.main(["--profile", "tiny", "--run-dir", str(tmp_path / "r"), "-p", "steps", "4"]) == 0
    assert (tmp_path / "r" / "first.txt").read_text().count("x") == 4
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("done: 2 notebooks in ")
