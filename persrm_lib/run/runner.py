"""Run the notebooks in order, headless, with papermill, into a run folder.

    python -m persrm_lib.run --profile smoke [--run-dir DIR] [--only 01 02] [-p NAME VALUE ...]
                             [--set SETTING VALUE ...]

``-p`` sets a parameter of the notebooks that declare it, converted to the declared type and checked
before any notebook runs (:func:`plan_parameters`); ``--set`` overrides a profile setting for the
run (:mod:`persrm_lib.run.settings`). The runner stops at the first failing notebook, naming it and
the cell, and keeps the executed copies under ``<run>/executed/``.

Exit status: 0 done; 1 a notebook failed; 2 refused before any notebook ran (a parameter, a
setting, a folder in use by another writer).
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.cli import Parser, fail, parse_names, returns_status
from ..core.config import FALSE_WORDS, PROFILE_ENV, PROFILES, TRUE_WORDS, get_profile, pin_thread_env
from ..core.paths import NOTEBOOKS_DIR, default_run_dir
from ..core.runlock import RunFolderBusyError, run_lock
from .settings import RunSettingsError, check_overrides, store_overrides

ALWAYS_PASSED = ("profile", "run_dir")
EXECUTED_SUBDIR = "executed"


class UnknownParameterError(ValueError):
    """A parameter that no notebook of the run declares."""


class ParameterTypeError(ValueError):
    """A ``-p`` value that does not convert to the declared type, or a declaration the runner cannot read."""


class ReservedParameterError(ValueError):
    """A ``-p`` naming a parameter the runner sets itself (``profile``, ``run_dir``)."""


class NotebookFailedError(RuntimeError):
    """A notebook raised; the message names the notebook and the cell."""

    def __init__(self, notebook: str, cell_index: int | None, detail: str, executed: Path):
        self.notebook, self.cell_index, self.executed = notebook, cell_index, executed
        where = f"cell {cell_index}" if cell_index is not None else "before any cell ran"
        super().__init__(f"notebook {notebook} failed in {where}: {detail} (executed copy: {executed})")


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook: its name, the executed copy (with outputs) and its wall time in seconds."""

    name: str
    executed: Path
    seconds: float


def discover(notebooks_dir: Path = NOTEBOOKS_DIR, only: Sequence[str] | None = None) -> list[Path]:
    """The ordered notebooks ``NN_*.ipynb``; ``only`` keeps those whose name starts with a prefix."""
    found = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if only:
        missing = [o for o in only if not any(p.name.startswith(o) for p in found)]
        if missing:
            raise FileNotFoundError(f"no notebook matches {', '.join(missing)} in {notebooks_dir}")
        found = [p for p in found if p.name.startswith(tuple(only))]
    return found


# A parameter's type is its annotation as papermill's ``inspect_notebook`` reads it, e.g.
# ``max_steps: int = 0  # comment``; papermill drops ``int | None``, so write ``"Optional[int]"``.
# An unannotated parameter takes the type of its default (None: anything).
SCALAR_TYPES: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}
NONE_WORDS = ("none", "null")
_OPTIONAL_RE = re.compile(r"^(?:typing\.)?Optional\[\s*(\w+)\s*\]$|^(\w+)\s*\|\s*None$|^None\s*\|\s*(\w+)$")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")


@dataclass(frozen=True)
class ParameterType:
    """What a notebook parameter accepts: a scalar type (None: anything), optionally None too."""

    base: type | None
    optional: bool = False

    @property
    def name(self) -> str:
        if self.base is None:
            return "any"
        return f"Optional[{self.base.__name__}]" if self.optional else self.base.__name__

    def describe(self) -> str:
        """The name, with a boolean's accepted words: ``bool (true/false/yes/no/1/0)``."""
        if self.base is not bool:
            return self.name
        return f"{self.name} ({'/'.join(w for pair in zip(TRUE_WORDS, FALSE_WORDS, strict=True) for w in pair)})"


ANY = ParameterType(None)


@dataclass(frozen=True)
class NotebookParameter:
    """A variable of a notebook's ``parameters`` cell: its default, its declared type and its comment."""

    name: str
    default: Any  # a Python value (the source text when it is not a literal)
    type: ParameterType
    help: str = ""


def parse_type_name(text: str) -> ParameterType | None:
    """Read a papermill ``inferred_type_name`` (``int``, ``Optional[int]``, ``int | None``, ``Any``); its
    ``None`` ("no annotation") gives ``None``.

    Raises:
        ValueError: an annotation the runner cannot convert to (lists, dicts, unions of two types).
    """
    text = text.strip().strip("\"'").strip()
    if text in ("", "None"):
        return None
    if text in ("Any", "typing.Any", "any"):
        return ANY
    if text in SCALAR_TYPES:
        return ParameterType(SCALAR_TYPES[text])
    match = _OPTIONAL_RE.match(text)
    inner = next((g for g in match.groups() if g), None) if match else None
    if inner in SCALAR_TYPES:
        return ParameterType(SCALAR_TYPES[inner], optional=True)
    raise ValueError(f"type {text!r} is not one the runner converts to (bool, int, float, str, Optional[...] of these)")


def _parse_value(text: str) -> Any:
    """A Python literal when the text is one (``3``, ``0.5``, ``True``), else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _is_of(value: Any, ptype: ParameterType) -> bool:
    """Whether ``value`` has ``ptype`` (an int counts as a float; a bool never as an int)."""
    if value is None:
        return ptype.optional
    if ptype.base is None:
        return True
    if ptype.base is bool or isinstance(value, bool):
        return ptype.base is bool and isinstance(value, bool)
    return isinstance(value, int | float) if ptype.base is float else isinstance(value, ptype.base)


def convert_parameter(value: Any, ptype: ParameterType) -> Any:
    """Convert a ``-p`` value (text) or a Python value to ``ptype``.

    Text: ``bool`` accepts true/false/yes/no/1/0 in any case; ``int`` only whole numbers (``2.0`` is
    refused); ``float`` what ``float()`` reads; ``str`` the text (a quoted Python string literal is
    unquoted); ``Optional[...]`` also ``None``/``null``. A Python value must already have the type.

    Raises:
        ValueError: ``got <value>``: the value does not convert, or is a list, tuple, dict or set
            literal for a scalar type (the caller names the parameter and the notebook).
    """
    if ptype.base is None:
        return _parse_value(value) if isinstance(value, str) else value
    if not isinstance(value, str):
        if _is_of(value, ptype):
            return float(value) if ptype.base is float and value is not None else value
        raise ValueError("got None" if value is None else f"got {value!r} of type {type(value).__name__}")
    text = value.strip()
    literal = _parse_value(text)
    if text.startswith(("[", "{", "(")) and isinstance(literal, list | tuple | dict | set):
        raise ValueError(f"got the {type(literal).__name__} literal {value!r}")  # "1,3" stays text: a list
    word = text.lower()
    if ptype.optional and word in NONE_WORDS:
        return None
    if ptype.base is str:
        return literal if isinstance(literal, str) and literal != text else value
    if ptype.base is bool and word in TRUE_WORDS + FALSE_WORDS:
        return word in TRUE_WORDS
    if ptype.base is int and _INT_RE.match(text):
        return int(text)
    if ptype.base is float:
        try:
            return float(text)
        except ValueError:
            pass
    raise ValueError(f"got {value!r}")


def _cell_targets(source: str) -> list[str]:
    """Names assigned at the top level of a parameters cell (empty when it does not parse)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return []
    assigned = [n for n in body if isinstance(n, ast.Assign | ast.AnnAssign)]
    targets = [t for n in assigned for t in (n.targets if isinstance(n, ast.Assign) else [n.target])]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def declared_parameter_specs(notebook: Path) -> dict[str, NotebookParameter]:
    """The parameters of a notebook's ``parameters`` cell with their types (papermill's ``inspect_notebook``).

    Raises:
        ParameterTypeError: a declaration that papermill cannot read (it would drop the name), an
            annotation the runner cannot convert to, or a default that is not of the annotated type.
    """
    import nbformat
    from papermill.inspection import inspect_notebook

    name = Path(notebook).name
    inspected = inspect_notebook(str(notebook))
    cells = [c for c in nbformat.read(str(notebook), as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    unread = [t for t in _cell_targets(cells[0].source) if t not in inspected] if cells else []
    if unread:
        raise ParameterTypeError(
            f"{name}: papermill cannot read the declaration of {', '.join(unread)} in the parameters cell; "
            'write it as `name: int = 0  # comment`, or `name: "Optional[int]" = None  # comment` (not `int | None`)'
        )
    specs: dict[str, NotebookParameter] = {}
    for pname, info in inspected.items():
        default = _parse_value(info["default"])
        try:
            declared = parse_type_name(str(info.get("inferred_type_name") or "None"))
        except ValueError as exc:
            raise ParameterTypeError(f"{name}: parameter {pname}: {exc}") from None
        if declared is None:  # unannotated: the type of its default (bool before int: True is an int)
            declared = next((ParameterType(t) for t in (bool, int, float, str) if isinstance(default, t)), ANY)
        elif declared.base is not None and default != info["default"] and not _is_of(default, declared):
            # a literal default (not an expression) of another type
            raise ParameterTypeError(
                f"{name}: parameter {pname} is declared {declared.name} but its default is {info['default']}"
            )
        specs[pname] = NotebookParameter(pname, default, declared, str(info.get("help") or ""))
    return specs


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The names and default values in a notebook's ``parameters`` cell."""
    return {name: spec.default for name, spec in declared_parameter_specs(notebook).items()}


def _names(module: str, attribute: str, leave_out: str = "") -> Callable[[], list[str]]:
    """The names in ``module.attribute``, imported when a parameter is checked (the import is slow)."""
    return lambda: [n for n in getattr(importlib.import_module(module, __package__), attribute) if n != leave_out]


# Checked before any notebook runs, so a typo in 05's judges does not surface after 01-04 have run.
# (notebook stem, parameter) -> (the allowed names, read when checked; one name rather than a list)
LIST_PARAMETERS: dict[tuple[str, str], tuple[Callable[[], Sequence[str]], bool]] = {
    ("01_synthesize", "literature_sets"): (_names("..data.corpora", "LITERATURE_SETS"), False),
    ("05_evaluate", "judges"): (_names("..evaluate.judges", "JUDGES", leave_out="generative"), False),
    ("05_evaluate", "stages"): (_names("..evaluate.records", "STAGES"), False),
    ("05_evaluate", "orders"): (lambda: ("both", "original"), True),
    ("07_behavior_analysis", "classifier"): (lambda: ("rule", "llm", "both"), True),
}
# (notebook stem, numeric parameter) -> the smallest value it accepts
AT_LEAST: dict[tuple[str, str], int] = {
    ("01_synthesize", "trace_pairs"): 1,
    ("02_filter_audit", "cv_folds"): 2,
    ("03_sft", "n_preview"): 0,
    ("05_evaluate", "batch_size"): 1,
    ("05_evaluate", "n_bootstrap"): 1,
    ("06_training_dynamics", "smooth"): 1,
    ("07_behavior_analysis", "llm_max_new_tokens"): 1,
    ("07_behavior_analysis", "llm_max_traces"): 0,
    ("07_behavior_analysis", "n_examples"): 0,
    ("07_behavior_analysis", "max_criterion_words"): 1,
}


def _check_value(notebook: Path, name: str, value: Any) -> None:
    """Raise :class:`ParameterTypeError` for a list item not allowed or a number below its minimum."""
    key = (notebook.stem, name)
    if key in LIST_PARAMETERS and isinstance(value, str):
        choices, single = LIST_PARAMETERS[key]
        allowed = list(choices())
        items = [value.strip()] if single else parse_names(value)
        for item in items:
            if item not in allowed:
                what = "takes one name: it" if single else "is a comma-separated list: item"
                raise ParameterTypeError(
                    f"parameter {name} of {notebook.name} {what} {item!r} is not one of {', '.join(allowed)}"
                )
    if value is not None and key in AT_LEAST and value < AT_LEAST[key]:
        raise ParameterTypeError(f"parameter {name} of {notebook.name} must be at least {AT_LEAST[key]}, got {value}")


def plan_parameters(
    notebooks: Sequence[Path], profile: str, run_dir: Path, params: dict[str, Any]
) -> dict[Path, dict[str, Any]]:
    """Which parameters each notebook receives, converted to each notebook's declared type
    (:func:`convert_parameter`); an undeclared name is refused (papermill only warns).

    Raises:
        ReservedParameterError: ``profile`` or ``run_dir`` among ``params`` (the runner sets them).
        UnknownParameterError: a name that no notebook declares, or a notebook without ``profile`` and ``run_dir``.
        ParameterTypeError: a value that does not convert, or is not allowed, naming the parameter,
            the notebook and what it expects.
    """
    reserved = [name for name in ALWAYS_PASSED if name in params]
    if reserved:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in reserved)
        raise ReservedParameterError(
            f"-p {', '.join(reserved)}: the runner sets {' and '.join(reserved)} itself; use {flags} instead"
        )
    declared = {nb: declared_parameter_specs(nb) for nb in notebooks}
    for nb, names in declared.items():
        lacking = [n for n in ALWAYS_PASSED if n not in names]
        if lacking:
            raise UnknownParameterError(f"{nb.name} has no {', '.join(lacking)} in its parameters cell")
    known = set().union(*declared.values())
    unknown = sorted(set(params) - known)
    if unknown:
        raise UnknownParameterError(
            f"unknown parameter(s) {', '.join(unknown)}: no notebook of this run declares them; known: {', '.join(sorted(known - set(ALWAYS_PASSED)))}"
        )
    plan: dict[Path, dict[str, Any]] = {}
    for nb, specs in declared.items():
        plan[nb] = {"profile": profile, "run_dir": str(run_dir)}
        for key, value in params.items():
            if key in specs:
                try:
                    plan[nb][key] = convert_parameter(value, specs[key].type)
                except ValueError as exc:
                    raise ParameterTypeError(
                        f"parameter {key} of {nb.name} expects {specs[key].type.describe()}, {exc}"
                    ) from None
                _check_value(nb, key, plan[nb][key])
    return plan


IPC_PREFIX_MAX = 100  # bytes of the kernel's IPC socket prefix (+ "-<port>" must fit sockaddr_un's 108); longer: TCP


def execute_notebook(notebook: str | Path, output: str | Path, parameters: dict[str, Any], cwd: str | Path) -> None:
    """Execute one notebook with papermill in the ``python3`` kernel, over IPC sockets in a private
    temporary folder (no "running over TCP without encryption" warning), or over TCP where that
    folder's path is too long for a Unix socket; a cell that raises gives papermill's ``PapermillExecutionError``."""
    import tempfile

    import papermill
    from traitlets.config import Config

    with tempfile.TemporaryDirectory(prefix="persrm-kernel-") as sockets:
        prefix = os.path.join(sockets, "kernel")
        transport = {"transport": "ipc", "ip": prefix} if len(prefix.encode()) <= IPC_PREFIX_MAX else {}
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(cwd),
            progress_bar=False,
            log_output=False,
            config=Config({"KernelManager": transport}),
        )


def run_notebooks(
    profile: str,
    run_dir: str | Path | None = None,
    params: dict[str, Any] | None = None,
    only: Sequence[str] | None = None,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    log: Callable[[str], None] = print,
    settings: dict[str, Any] | None = None,
) -> list[NotebookRun]:
    """Execute the notebooks in order, holding the run folder's lock; raise :class:`NotebookFailedError`
    at the first failure. ``settings``: profile overrides for the run (:func:`~persrm_lib.run.settings.store_overrides`)."""
    from papermill.exceptions import PapermillExecutionError

    run = Path(run_dir).resolve() if run_dir else default_run_dir(profile).resolve()
    notebooks = discover(notebooks_dir, only)
    plan = plan_parameters(notebooks, profile, run, params or {})
    check_overrides(profile, settings or {})  # refused before the lock creates the folder
    with run_lock(run, "python -m persrm_lib.run --profile " + profile):
        overrides = store_overrides(run, profile, settings or {})
        cfg = get_profile(profile, overrides)
        executed_dir = run / EXECUTED_SUBDIR
        executed_dir.mkdir(parents=True, exist_ok=True)
        # kernels inherit the environment: pin threads and hashing before any starts
        pin_thread_env(cfg.num_threads)
        os.environ["PYTHONHASHSEED"] = str(cfg.seed)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        log(f"run folder {run} (profile {profile}, {len(notebooks)} notebooks)")
        if overrides:
            log("settings: " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())))
        results: list[NotebookRun] = []
        for i, nb in enumerate(notebooks, start=1):
            out, start = executed_dir / nb.name, time.perf_counter()
            try:
                execute_notebook(nb, out, plan[nb], nb.parent)
            except Exception as exc:
                log(f"[{i}/{len(notebooks)}] {nb.stem:<24} FAILED after {time.perf_counter() - start:6.1f}s")
                if isinstance(exc, PapermillExecutionError):
                    raise NotebookFailedError(nb.name, exc.cell_index, f"{exc.ename}: {exc.evalue}", out) from None
                # the kernel died, or the notebook is unreadable
                raise NotebookFailedError(nb.name, None, f"{type(exc).__name__}: {exc}", out) from exc
            seconds = time.perf_counter() - start
            log(f"[{i}/{len(notebooks)}] {nb.stem:<24} ok {seconds:6.1f}s")
            results.append(NotebookRun(nb.name, out, seconds))
    return results


@returns_status
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m persrm_lib.run", description="Execute the notebooks in order with papermill.")
    parser.add_argument("--profile", default=os.environ.get(PROFILE_ENV, "smoke"), choices=sorted(PROFILES))
    parser.add_argument(
        "--run-dir", default=None, help="run folder (default: runs/<profile>, or $PERSRM_RUNS/<profile>)"
    )
    parser.add_argument(
        "--only", nargs="+", default=None, metavar="NN", help="run only notebooks starting with these prefixes"
    )
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("SETTING", "VALUE"),
        help="override a profile setting for the run, e.g. --set prompt.evidence stylometric (stored in the run folder)",
    )
    args = parser.parse_args(argv)
    for flag, pairs in (("-p", args.parameter), ("--set", args.set)):
        repeated = sorted(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
        if repeated:  # dict() would keep the last one silently
            return fail(f"{flag} {', '.join(repeated)} given more than once")
    try:
        runs = run_notebooks(args.profile, args.run_dir, dict(args.parameter), args.only, settings=dict(args.set))
    except NotebookFailedError as exc:
        return fail(str(exc), status=1)
    except (
        UnknownParameterError,
        ParameterTypeError,
        ReservedParameterError,
        FileNotFoundError,
        RunSettingsError,
        RunFolderBusyError,
    ) as exc:  # refused before any notebook ran; any other error keeps its traceback
        return fail(str(exc))
    print(f"done: {len(runs)} notebooks in {sum(r.seconds for r in runs):.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
