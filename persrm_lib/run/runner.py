"""Run the notebooks in order, headless, with papermill, into a run folder.

Every notebook gets ``profile`` and ``run_dir``, from ``--profile`` and ``--run-dir`` only: ``-p``
naming either is refused, so the command line and the notebooks cannot disagree on where a run
writes. Any other parameter is a knob of the notebooks whose ``parameters`` cell declares it (a
profile setting is never one: it is changed with ``--set``) and goes to them. A name
that no notebook of the run declares is refused (papermill itself only warns). Each value is
converted to the parameter's declared type before any notebook runs (see
:func:`convert_parameter`); a value that does not convert is refused, naming the parameter, the
notebook and the type -- a list or dict literal given to a scalar parameter included. A list
parameter (comma-separated text, :data:`LIST_PARAMETERS`) is parsed and each item checked, before
any notebook runs. The runner stops at the first failing notebook, naming it and the failing cell,
keeps the executed copies under ``<run>/executed/`` and prints one progress line per notebook.
The run folder is locked for the whole run (:mod:`persrm_lib.core.runlock`).

Exit status: 0 done; 1 a notebook failed; 2 refused before any notebook ran (a parameter, a
setting, a folder in use by another writer).

    python -m persrm_lib.run --profile smoke [--run-dir DIR] [--only 01 02] [-p NAME VALUE ...]
                             [--set SETTING VALUE ...]

``--set`` overrides a profile setting for the whole run (``--set prompt.evidence stylometric``); the
overrides are stored in the run folder and apply to every notebook run there later
(:mod:`persrm_lib.run.settings`).
"""

from __future__ import annotations

import ast
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.cli import Parser
from ..core.config import PROFILE_ENV, PROFILES, get_profile
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
    name: str
    executed: Path
    seconds: float


def discover(notebooks_dir: Path = NOTEBOOKS_DIR, only: Sequence[str] | None = None) -> list[Path]:
    """The ordered notebooks ``NN_*.ipynb``; ``only`` keeps those whose name starts with a prefix."""
    found = sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if only:
        missing = [o for o in only if not any(p.name.startswith(o) for p in found)]
        if missing:
            raise FileNotFoundError(f"no notebook matches {', '.join(missing)} in {notebooks_dir}")
        found = [p for p in found if any(p.name.startswith(o) for o in only)]
    return found


# --- declared types ----------------------------------------------------------------------------
# A parameter's type comes from its annotation in the parameters cell, read the way papermill's
# ``inspect_notebook`` reads it (``inferred_type_name``: the annotation, or a ``# type:`` comment):
#     max_steps: int = 0  # comment
#     trace_pairs: "Optional[int]" = None  # comment   (None: the profile's value)
# Papermill's pattern does not read ``int | None`` (it drops the whole line), so a default of None
# is annotated ``"Optional[X]"`` (quoted, and ``from typing import Optional`` in the notebook's first
# cell so that linters resolve the name; ruff keeps the quotes in notebooks, see pyproject). An
# unannotated parameter takes the type of its default; an unannotated ``None`` keeps the old rule
# (a Python literal when the text is one, else the text).

SCALAR_TYPES: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")
NONE_WORDS = ("none", "null")
_OPTIONAL_RE = re.compile(r"^(?:typing\.)?Optional\[\s*(\w+)\s*\]$")
_UNION_NONE_RE = re.compile(r"^(?:(\w+)\s*\|\s*None|None\s*\|\s*(\w+))$")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")


@dataclass(frozen=True)
class ParameterType:
    """What a notebook parameter accepts: a scalar type (or None: anything), possibly None itself."""

    base: type | None
    optional: bool = False

    @property
    def name(self) -> str:
        """How messages write it: ``int``, ``Optional[int]``, ``any``."""
        if self.base is None:
            return "any"
        return f"Optional[{self.base.__name__}]" if self.optional else self.base.__name__

    def describe(self) -> str:
        """The type with the accepted spellings where they are not obvious (booleans, None)."""
        text = self.name
        if self.base is bool:
            text += f" ({'/'.join(w for pair in zip(TRUE_WORDS, FALSE_WORDS, strict=True) for w in pair)})"
        return text


ANY = ParameterType(None)


@dataclass(frozen=True)
class NotebookParameter:
    """One declaration of a ``parameters`` cell."""

    name: str
    default: Any  # the default as a Python value (the source text when it is not a literal)
    type: ParameterType
    help: str = ""


def parse_type_name(text: str) -> ParameterType | None:
    """Read a papermill ``inferred_type_name`` (an annotation): ``int``, ``Optional[int]``,
    ``int | None``; ``None`` (papermill's "no annotation") gives ``None``.

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
    match = _OPTIONAL_RE.match(text) or _UNION_NONE_RE.match(text)
    if match:
        inner = next(g for g in match.groups() if g)
        if inner in SCALAR_TYPES:
            return ParameterType(SCALAR_TYPES[inner], optional=True)
    raise ValueError(f"type {text!r} is not one the runner converts to (bool, int, float, str, Optional[...] of these)")


def _type_of_default(default: Any) -> ParameterType:
    for base in (bool, int, float, str):  # bool before int: True is an int too
        if isinstance(default, base):
            return ParameterType(base)
    return ANY


def convert_parameter(value: Any, ptype: ParameterType) -> Any:
    """Convert a ``-p`` value (text) or a Python value to ``ptype``.

    Text: ``bool`` accepts true/false/yes/no/1/0 in any case; ``int`` accepts only whole numbers
    (``2.5`` and ``2.0`` are refused); ``float`` what ``float()`` reads; ``str`` the text itself
    (a quoted Python string literal is unquoted); ``Optional[...]`` also ``None``/``null``.
    Python values must already have the type (an ``int`` is accepted for a ``float``; a ``bool`` is
    never an ``int``). ``any`` keeps the old rule: a Python literal when the text is one, else text.

    Raises:
        ValueError: ``got <value>``: the value does not convert, or is a list, tuple, dict or set
            literal for a scalar type (the caller names the parameter and the notebook).

    >>> convert_parameter("No", ParameterType(bool)), convert_parameter("3", ParameterType(int))
    (False, 3)
    >>> convert_parameter("none", ParameterType(int, optional=True)) is None
    True
    """
    if ptype.base is None:
        return _parse_value(value) if isinstance(value, str) else value
    if isinstance(value, str) and value.strip().startswith(("[", "{", "(")):
        literal = _parse_value(value.strip())
        if isinstance(literal, list | tuple | dict | set):  # "1,3" stays text: lists are written that way
            raise ValueError(f"got the {type(literal).__name__} literal {value!r}")
    if value is None:
        if ptype.optional:
            return None
        raise ValueError("got None")
    if isinstance(value, str):
        text = value.strip()
        if ptype.optional and text.lower() in NONE_WORDS:
            return None
        if ptype.base is bool:
            if text.lower() in TRUE_WORDS:
                return True
            if text.lower() in FALSE_WORDS:
                return False
        elif ptype.base is int:
            if _INT_RE.match(text):
                return int(text)
        elif ptype.base is float:
            try:
                return float(text)
            except ValueError:
                pass
        else:  # str
            try:
                literal = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return value
            return literal if isinstance(literal, str) else value
        raise ValueError(f"got {value!r}")
    if _is_of(value, ptype):
        return float(value) if ptype.base is float else value
    raise ValueError(f"got {value!r} of type {type(value).__name__}")


def _is_of(value: Any, ptype: ParameterType) -> bool:
    """Whether a Python value already has ``ptype`` (an int counts as a float; a bool never as an int)."""
    if value is None:
        return ptype.optional
    if ptype.base is None or ptype.base is bool:
        return ptype.base is None or isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) if ptype.base is float else isinstance(value, ptype.base)


def _cell_targets(source: str) -> list[str]:
    """Names assigned at the top level of a parameters cell (empty when it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def declared_parameter_specs(notebook: Path) -> dict[str, NotebookParameter]:
    """The parameters of a notebook's ``parameters`` cell, with their types (papermill's inspection).

    Raises:
        ParameterTypeError: a declaration that papermill cannot read (it would drop the name), an
            annotation the runner cannot convert to, or a default that is not of the annotated type;
            each naming the notebook and the parameter.
    """
    import nbformat
    from papermill.inspection import inspect_notebook

    name = Path(notebook).name
    inspected = inspect_notebook(str(notebook))
    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    unread = [t for t in _cell_targets(cells[0].source) if t not in inspected] if cells else []
    if unread:
        raise ParameterTypeError(
            f"{name}: papermill cannot read the declaration of {', '.join(unread)} in the parameters cell; "
            'write it as `name: int = 0  # comment`, or `name: "Optional[int]" = None  # comment` (not `int | None`)'
        )
    specs: dict[str, NotebookParameter] = {}
    for pname, info in inspected.items():
        default = _parse_value(info["default"])
        literal = not (isinstance(default, str) and default == info["default"])  # else an expression
        try:
            declared = parse_type_name(str(info.get("inferred_type_name") or "None"))
        except ValueError as exc:
            raise ParameterTypeError(f"{name}: parameter {pname}: {exc}") from None
        ptype = declared if declared is not None else _type_of_default(default)
        if declared is not None and declared.base is not None and literal and not _is_of(default, declared):
            raise ParameterTypeError(
                f"{name}: parameter {pname} is declared {declared.name} but its default is {info['default']}"
            )
        specs[pname] = NotebookParameter(pname, default, ptype, str(info.get("help") or ""))
    return specs


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The names and default values in a notebook's ``parameters`` cell."""
    return {name: spec.default for name, spec in declared_parameter_specs(notebook).items()}


@dataclass(frozen=True)
class ListParameter:
    """A notebook parameter that holds a comma-separated list of names (or, ``single``, one name)
    from a fixed set."""

    choices: Callable[[], Sequence[str]]  # the allowed names, read when checked
    single: bool = False  # one name, not a list

    def check(self, text: str) -> list[str]:
        """The items of ``text`` (``"a, b"`` -> ``["a", "b"]``), each checked.

        Raises:
            ValueError: an item that is not one of the choices.
        """
        items = [text.strip()] if self.single else [t.strip() for t in text.split(",") if t.strip()]
        allowed = list(self.choices())
        for item in items:
            if item not in allowed:
                raise ValueError(f"{'it' if self.single else 'item'} {item!r} is not one of {', '.join(allowed)}")
        return items


def _baseline_judges() -> list[str]:
    from ..evaluate.judges import JUDGES

    return [j for j in JUDGES if j != "generative"]


def _stages() -> Sequence[str]:
    from ..evaluate.records import STAGES

    return STAGES


def _literature_sets() -> list[str]:
    from ..data.corpora import LITERATURE_SETS

    return sorted(LITERATURE_SETS)


# the project's list parameters (and names from a fixed set), by (notebook stem, parameter): checked
# before any notebook runs, so a typo in 05's judges does not surface after 01-04 have run
LIST_PARAMETERS: dict[tuple[str, str], ListParameter] = {
    ("01_synthesize", "literature_sets"): ListParameter(_literature_sets),
    ("05_evaluate", "judges"): ListParameter(_baseline_judges),
    ("05_evaluate", "stages"): ListParameter(_stages),
    ("05_evaluate", "orders"): ListParameter(lambda: ("both", "original"), single=True),
    ("07_behavior_analysis", "classifier"): ListParameter(lambda: ("rule", "llm", "both"), single=True),
}
# the numeric parameters: the smallest value each accepts
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
    """A converted value of a project notebook's parameter, checked as what it is for.

    Raises:
        ParameterTypeError: a list item not allowed, or a number below its smallest value.
    """
    key = (notebook.stem, name)
    listed = LIST_PARAMETERS.get(key)
    if listed is not None and isinstance(value, str):
        try:
            listed.check(value)
        except ValueError as exc:
            what = "takes one name" if listed.single else "is a comma-separated list"
            raise ParameterTypeError(f"parameter {name} of {notebook.name} {what}: {exc}") from None
    if value is None:
        return
    if key in AT_LEAST and value < AT_LEAST[key]:
        raise ParameterTypeError(f"parameter {name} of {notebook.name} must be at least {AT_LEAST[key]}, got {value}")


def plan_parameters(
    notebooks: Sequence[Path], profile: str, run_dir: Path, params: dict[str, Any]
) -> dict[Path, dict[str, Any]]:
    """Which parameters each notebook receives, converted to each notebook's declared type.

    Raises:
        ReservedParameterError: ``profile`` or ``run_dir`` among ``params`` (the runner sets them).
        UnknownParameterError: a name that no notebook declares, or a notebook without
            ``profile`` and ``run_dir``.
        ParameterTypeError: a value that does not convert, or a list parameter's item that is not
            allowed, naming the parameter, the notebook and what it expects (nothing has run then).
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
    known = set().union(*[set(d) for d in declared.values()]) if declared else set()
    unknown = sorted(set(params) - known)
    if unknown:
        raise UnknownParameterError(
            f"unknown parameter(s) {', '.join(unknown)}: no notebook of this run declares them; known: {', '.join(sorted(known - set(ALWAYS_PASSED)))}"
        )
    base = {"profile": profile, "run_dir": str(run_dir)}
    plan: dict[Path, dict[str, Any]] = {}
    for nb, specs in declared.items():
        plan[nb] = dict(base)
        for key, value in params.items():
            if key not in specs:
                continue
            try:
                plan[nb][key] = convert_parameter(value, specs[key].type)
            except ValueError as exc:
                raise ParameterTypeError(
                    f"parameter {key} of {nb.name} expects {specs[key].type.describe()}, {exc}"
                ) from None
            _check_value(nb, key, plan[nb][key])
    return plan


def _parse_value(text: str) -> Any:
    """Read a value as a Python literal when it is one (``3``, ``0.5``, ``True``), else as text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


IPC_PREFIX_MAX = 100  # bytes of the kernel's IPC socket prefix; longer: TCP


def execute_notebook(notebook: str | Path, output: str | Path, parameters: dict[str, Any], cwd: str | Path) -> None:
    """Execute one notebook with papermill in the ``python3`` kernel, which the runner and the
    notebook tests all use.

    The kernel talks to papermill over IPC sockets in a private temporary folder (removed
    afterwards) instead of TCP: nothing listens on a network port, and ipykernel has no reason to
    print its "running over TCP without encryption" warning for every notebook. Where the
    temporary folder's path is too long for a Unix socket (a long ``TMPDIR``), TCP is used.

    Raises:
        papermill.exceptions.PapermillExecutionError: a cell raised (papermill's error, unchanged).
    """
    import tempfile

    import papermill
    from traitlets.config import Config

    with tempfile.TemporaryDirectory(prefix="persrm-kernel-") as sockets:
        prefix = os.path.join(sockets, "kernel")
        # a socket path (prefix + "-<port>") must fit sockaddr_un's 108 bytes
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
    """Execute the notebooks in order; raise :class:`NotebookFailedError` at the first failure.

    ``settings`` overrides profile settings for the run (stored in the run folder, see
    :func:`persrm_lib.run.settings.store_overrides`, which raises :class:`RunSettingsError`)."""
    from papermill.exceptions import PapermillExecutionError

    run = Path(run_dir).resolve() if run_dir else default_run_dir(profile).resolve()
    notebooks = discover(notebooks_dir, only)
    plan = plan_parameters(notebooks, profile, run, params or {})
    check_overrides(profile, settings or {})  # refused before the lock creates the folder
    with run_lock(run, "python -m persrm_lib.run --profile " + profile):  # one writer per run folder
        overrides = store_overrides(run, profile, settings or {})
        cfg = get_profile(profile, overrides)
        executed_dir = run / EXECUTED_SUBDIR
        executed_dir.mkdir(parents=True, exist_ok=True)
        # Kernels inherit the environment: pin threads and hashing before any starts.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(cfg.num_threads)
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        os.environ["PYTHONHASHSEED"] = str(cfg.seed)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        log(f"run folder {run} (profile {profile}, {len(notebooks)} notebooks)")
        if overrides:
            log("settings: " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())))
        results: list[NotebookRun] = []
        for i, nb in enumerate(notebooks, start=1):
            out = executed_dir / nb.name
            start = time.perf_counter()
            try:
                execute_notebook(nb, out, plan[nb], nb.parent)
            except PapermillExecutionError as exc:
                log(f"[{i}/{len(notebooks)}] {nb.stem:<24} FAILED after {time.perf_counter() - start:6.1f}s")
                raise NotebookFailedError(nb.name, exc.cell_index, f"{exc.ename}: {exc.evalue}", out) from None
            except Exception as exc:  # kernel died, notebook unreadable
                log(f"[{i}/{len(notebooks)}] {nb.stem:<24} FAILED after {time.perf_counter() - start:6.1f}s")
                raise NotebookFailedError(nb.name, None, f"{type(exc).__name__}: {exc}", out) from exc
            seconds = time.perf_counter() - start
            log(f"[{i}/{len(notebooks)}] {nb.stem:<24} ok {seconds:6.1f}s")
            results.append(NotebookRun(nb.name, out, seconds))
    return results


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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a refused argument (one line on stderr) or --help
        return int(exc.code or 0)
    for flag, pairs in (("-p", args.parameter), ("--set", args.set)):
        names = [name for name, _ in pairs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:  # dict() would keep the last one silently
            print(f"error: {flag} {', '.join(repeated)} given more than once", file=sys.stderr)
            return 2
    params = dict(args.parameter)  # text; converted to each notebook's declared type
    try:
        runs = run_notebooks(args.profile, args.run_dir, params, args.only, settings=dict(args.set))
    except NotebookFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (
        UnknownParameterError,
        ParameterTypeError,
        ReservedParameterError,
        FileNotFoundError,
        RunSettingsError,
        RunFolderBusyError,
    ) as exc:  # refused before any notebook ran
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(r.seconds for r in runs)
    print(f"done: {len(runs)} notebooks in {total:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
