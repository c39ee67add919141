from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from persrm_lib.run import runner
from persrm_lib.run.runner import (
    NotebookFailedError,
    ParameterType,
    ParameterTypeError,
    UnknownParameterError,
    declared_parameter_specs,
    discover,
    parse_type_name,
    plan_parameters,
    run_notebooks,
)


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
    monkeypatch.setattr(runner.run_notebooks, "__defaults__", (None, None, None, notebooks, print, None))
    code = runner.main(["--profile", "tiny", "--run-dir", str(tmp_path / "r"), "-p", "stepz", "1"])
    assert code == 2  # refused before any notebook ran (1: a notebook failed)
    assert "error: unknown parameter(s) stepz" in capsys.readouterr().err
    assert runner.main(["--profile", "tiny", "--run-dir", str(tmp_path / "r"), "-p", "steps", "4"]) == 0
    assert (tmp_path / "r" / "first.txt").read_text().count("x") == 4
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("done: 2 notebooks in ")


# --- typed parameters (issue 13, item 1) -----------------------------------------------------------

TYPED = Path(__file__).parent / "fixtures" / "typed_notebooks"


def _typed_plan(tmp_path: Path, params: dict) -> dict:
    plan = plan_parameters(discover(TYPED), "tiny", tmp_path, params)
    return {nb.name: {k: v for k, v in p.items() if k not in ("profile", "run_dir")} for nb, p in plan.items()}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("from_sft", "false", False),  # the case: 'false' used to arrive as a true string
        ("from_sft", "No", False),  # any case
        ("from_sft", "YES", True),
        ("from_sft", "0", False),
        ("from_sft", "1", True),
        ("from_sft", " true ", True),  # surrounding spaces ignored
        ("max_steps", "7", 7),
        ("max_steps", "-1", -1),
        ("scale", "2.5", 2.5),
        ("scale", "3", 3.0),  # an int text is a float for a float parameter
        ("judges", "1,3", "1,3"),  # a str stays the text (it used to become the tuple (1, 3))
        ("judges", "123", "123"),
        ("judges", "'quoted'", "quoted"),  # a Python string literal is unquoted, as before
        ("trace_pairs", "None", None),  # Optional[int]: None (the profile's value)
        ("trace_pairs", "null", None),
        ("trace_pairs", "12", 12),
        ("legacy", "5", 5),  # unannotated: the type of its default (int)
    ],
)
def test_values_convert_to_the_declared_type(tmp_path, name, text, expected):
    converted = _typed_plan(tmp_path, {name: text})["01_typed.ipynb"][name]
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # a boolean word outside the accepted six
        ("from_sft", "maybe", "parameter from_sft of 01_typed.ipynb expects bool (true/false/yes/no/1/0), got 'maybe'"),
        # the case: 2.5 steps used to become 2 silently
        ("max_steps", "2.5", "parameter max_steps of 01_typed.ipynb expects int, got '2.5'"),
        ("max_steps", "2.0", "parameter max_steps of 01_typed.ipynb expects int, got '2.0'"),  # no float text either
        ("max_steps", "None", "parameter max_steps of 01_typed.ipynb expects int, got 'None'"),  # not Optional
        ("scale", "fast", "parameter scale of 01_typed.ipynb expects float, got 'fast'"),
        ("trace_pairs", "all", "parameter trace_pairs of 01_typed.ipynb expects Optional[int], got 'all'"),
        ("legacy", "three", "parameter legacy of 01_typed.ipynb expects int, got 'three'"),  # type of the default
        # Python values (run_notebooks(params=...)) must already have the type
        ("max_steps", 2.5, "parameter max_steps of 01_typed.ipynb expects int, got 2.5 of type float"),
        ("max_steps", True, "parameter max_steps of 01_typed.ipynb expects int, got True of type bool"),
        ("from_sft", 0, "parameter from_sft of 01_typed.ipynb expects bool (true/false/yes/no/1/0), got 0 of type int"),
    ],
)
def test_values_that_do_not_convert_are_refused(tmp_path, name, value, message):
    with pytest.raises(ParameterTypeError) as info:
        _typed_plan(tmp_path, {name: value})
    assert str(info.value) == message


def test_each_notebook_converts_to_its_own_declared_type(tmp_path):
    plan = _typed_plan(tmp_path, {"max_steps": "3"})
    assert plan == {"01_typed.ipynb": {"max_steps": 3}, "02_other.ipynb": {"max_steps": 3.0}}
    assert type(plan["02_other.ipynb"]["max_steps"]) is float
    # a value that fits one notebook's type but not the other's is refused, naming that notebook
    with pytest.raises(ParameterTypeError, match="parameter max_steps of 01_typed.ipynb expects int, got '0.5'"):
        _typed_plan(tmp_path, {"max_steps": "0.5"})


def test_a_bad_value_is_refused_before_any_notebook_runs(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(ParameterTypeError, match="parameter from_sft of 01_typed.ipynb expects bool"):
        run_notebooks("tiny", run, {"scale": "2", "from_sft": "maybe"}, notebooks_dir=TYPED, log=lambda s: None)
    assert not run.exists()  # nothing ran, not even the folder was made


def test_cli_hands_the_notebook_a_real_false(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner.run_notebooks, "__defaults__", (None, None, None, TYPED, print, None))
    run = tmp_path / "r"
    argv = ["--profile", "tiny", "--run-dir", str(run), "--only", "01"]
    assert runner.main([*argv, "-p", "from_sft", "maybe"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: parameter from_sft of 01_typed.ipynb expects bool (true/false/yes/no/1/0), got 'maybe'"
    )
    assert not run.exists()
    params = ["-p", "from_sft", "false", "-p", "max_steps", "2", "-p", "judges", "1,3", "-p", "trace_pairs", "None"]
    assert runner.main([*argv, *params]) == 0
    values = json.loads((run / "typed.json").read_text())
    assert values == {
        "from_sft": [False, "bool"],
        "judges": ["1,3", "str"],
        "legacy": [3, "int"],
        "max_steps": [2, "int"],
        "scale": [1.0, "float"],
        "trace_pairs": [None, "NoneType"],
    }


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        # papermill's pattern cannot read `int | None` and would drop the name silently
        (
            'profile = "smoke"\nrun_dir = ""\nsteps: int | None = None  # x',
            r"01_first.ipynb: papermill cannot read the declaration of steps in the parameters cell; "
            r'write it as `name: int = 0  # comment`, or `name: "Optional\[int\]" = None  # comment` \(not `int \| None`\)',
        ),
        # a type the runner does not convert to
        (
            'profile = "smoke"\nrun_dir = ""\nsteps: list[int] = [1]  # x',
            r"01_first.ipynb: parameter steps: type 'list\[int\]' is not one the runner converts to",
        ),
        # a default that contradicts its annotation
        (
            'profile = "smoke"\nrun_dir = ""\nsteps: int = None  # x',
            r"01_first.ipynb: parameter steps is declared int but its default is None",
        ),
        (
            'profile = "smoke"\nrun_dir = ""\nsteps: bool = "yes"  # x',
            r"01_first.ipynb: parameter steps is declared bool but its default is \"yes\"",
        ),
    ],
)
def test_declarations_the_runner_cannot_use_are_refused(notebooks, tmp_path, cell, message):
    _notebook(notebooks / "01_first.ipynb", cell, "pass")
    with pytest.raises(ParameterTypeError, match=message):
        plan_parameters(discover(notebooks), "tiny", tmp_path, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int", ParameterType(int)),
        ("Optional[int]", ParameterType(int, optional=True)),
        ("typing.Optional[str]", ParameterType(str, optional=True)),
        ("float | None", ParameterType(float, optional=True)),  # read, though papermill never reports it
        ("None | bool", ParameterType(bool, optional=True)),
        ("None", None),  # papermill's "no annotation"
        ("Any", ParameterType(None)),
    ],
)
def test_parse_type_name(text, expected):
    assert parse_type_name(text) == expected


def test_every_project_notebook_parameter_has_a_type():
    """Each parameter of notebooks/ is annotated or has a default whose type says it (not None)."""
    from persrm_lib.core.paths import NOTEBOOKS_DIR

    untyped = [
        f"{nb.name}:{name}"
        for nb in discover(NOTEBOOKS_DIR)
        for name, spec in declared_parameter_specs(nb).items()
        if spec.type.base is None
    ]
    assert untyped == []


@pytest.mark.parametrize("long_tmp", [False, True])
def test_execute_notebook_talks_to_the_kernel_over_private_ipc_sockets(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, long_tmp: bool
) -> None:
    """No TCP port, so no "running over TCP without encryption" warning per notebook, and the
    socket folder is removed afterwards; a temporary folder too long for a socket path falls back
    to TCP (and its warning)."""
    import shutil
    import tempfile

    sockets_root = Path(tempfile.mkdtemp(prefix="t"))  # short, as /tmp is
    if long_tmp:
        sockets_root = sockets_root / ("x" * runner.IPC_PREFIX_MAX)
        sockets_root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(x * 7)"),
    ]
    nbformat.write(nb, tmp_path / "t.ipynb")
    try:
        with monkeypatch.context() as patch:
            patch.setattr(tempfile, "tempdir", str(sockets_root))
            runner.execute_notebook(tmp_path / "t.ipynb", tmp_path / "out.ipynb", {"x": 6}, tmp_path)
        executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
        assert executed.cells[-1].outputs[0]["text"] == "42\n"
        assert ("without encryption" in capfd.readouterr().err) == long_tmp
        assert list(sockets_root.iterdir()) == []
    finally:
        shutil.rmtree(sockets_root if not long_tmp else sockets_root.parent)
