"""What every command line of the project shares: one-line refusals (exit status 2), checked numbers
(``type=``), input and output files checked before the work starts, partial results on failure."""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .setting_ranges import RANGES, Range


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose refusals are one line: ``<prog>: error: <message>`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def returns_status(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Decorate a command's ``main(argv)`` so that argparse's exit (a refusal: 2, ``--help``: 0) is
    returned as its exit status instead of raised."""

    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv)
        except SystemExit as exc:
            return int(exc.code or 0)

    return run


def _number_type(convert: Callable[[str], Any], allowed: Callable[[Any], bool], what: str) -> Any:
    """An argparse ``type=`` that refuses text ``convert`` cannot read or a value not ``allowed``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text.strip())
        except ValueError:
            value = None
        if value is None or not allowed(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` for a whole number in ``[low, high]`` (no upper bound when None); a refusal
    reads ``must be a whole number of at least 1, got '0'``."""
    where = f"of at least {low}" if high is None else f"in [{low}, {high}]"
    return _number_type(int, lambda value: value >= low and (high is None or value <= high), f"a whole number {where}")


def finite_number(low: float, high: float = math.inf, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type=`` for a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    where = f"above {low:g}" if low_open else f"of at least {low:g}"
    if high != math.inf:
        where = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    return _number_type(float, Range(low, high, low_open).__contains__, f"a finite number {where}")


seed_number = whole_number(0, int(RANGES["seed"].high))  # an argparse ``type=`` for a seed


def parse_names(value: str | Sequence[str]) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (blank items dropped): a comma-separated option
    (also as ``type=``) or a notebook parameter, which may be either."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def output_problem(path: str | Path, flag: str, inputs: Sequence[str | Path | None] = ()) -> str | None:
    """Why ``path`` cannot be written as a command's output file (an existing folder, a path below a
    file, one of the command's ``inputs``), or None when it can."""
    out = Path(path)
    if out.is_dir():
        return f"{flag} {path}: is a folder; name a file, e.g. {flag} {out / 'result.json'}"
    resolved = out.resolve()
    for parent in resolved.parents:
        if parent.exists() and not parent.is_dir():
            return f"{flag} {path}: {parent} is a file, not a folder"
    for source in inputs:
        if source is not None and Path(source).resolve() == resolved:
            return f"{flag} {path}: is an input of this command; writing it would overwrite what it reads"
    return None


def files_problem(
    inputs: Mapping[str, str | Path | None], out_flag: str | None = None, out: str | Path | None = None
) -> str | None:
    """Why a command cannot start, checked before anything is read: an input file (``{flag: path}``,
    None when not given) that does not exist, an ``out`` that :func:`output_problem` refuses, or one
    whose :func:`partial_path` is an input; None when it can."""
    for flag, path in inputs.items():
        if path is not None and not Path(path).is_file():
            return f"{flag}: {path} does not exist"
    if out_flag is None or out is None:
        return None
    sources = [Path(p).resolve() for p in inputs.values() if p is not None]
    problem = output_problem(out, out_flag, sources)
    if problem is None and partial_path(out).resolve() in sources:
        problem = f"{out_flag} {out}: its partial results file would overwrite an input"
    return problem


def partial_path(path: str | Path) -> Path:
    """Where a command that failed after work began writes what it finished: ``x.json`` -> ``x.partial.json``."""
    out = Path(path)
    return out.with_name(f"{out.stem}.partial{out.suffix or '.json'}")


def fail(message: str, status: int = 2) -> int:
    """Print ``error: <message>`` on stderr (one line) and return ``status`` for ``main`` to return."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return status
