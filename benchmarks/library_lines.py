"""How large is the library, and how much of it is the method a student reads?

Counts the lines of every module of ``persrm_lib`` (all lines, and code lines: not blank, not a
comment, not inside a docstring), grouped as the README's map groups them:

- ``method``: the modules that implement PersRM-R1 itself (arXiv 2508.14076): the prompt, the one
  parser and verdict rule, the reward (pairwise and pointwise), the pair sampler and the swap, the
  persona benchmark and its exact teacher, SFT and GRPO with the joint-order advantage;
- ``ablation``: off-by-default variants (measured evidence in the prompt, hinted traces, the scalar
  reward-model baseline);
- ``rest``: evaluation, analysis, corpora, models, the runner and the plumbing around them.

Usage::

    .venv/bin/python benchmarks/library_lines.py            # one table, totals last
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "persrm_lib"
METHOD = (
    "core/prompt.py", "core/output_format.py", "core/verdict.py", "core/reward.py", "core/pointwise.py",
    "data/sampler.py", "data/personas.py", "teachers/persona.py", "teachers/swap.py",
    "train/sft.py", "train/grpo.py", "train/order_robust.py",
)  # fmt: skip
ABLATION = ("data/evidence.py", "teachers/hinted.py", "train/scalar_rm.py")


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (
            tokenize.COMMENT,
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        ):
            code.update(range(token.start[0], token.end[0] + 1))
    return len(code - docstrings)


def group_of(relative: str) -> str:
    return "method" if relative in METHOD else "ablation" if relative in ABLATION else "rest"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="list every module, not only the method's")
    args = parser.parse_args(argv)
    missing = [m for m in (*METHOD, *ABLATION) if not (ROOT / m).is_file()]
    if missing:
        print(f"error: listed modules missing from persrm_lib: {', '.join(missing)}", file=sys.stderr)
        return 2
    totals: dict[str, list[int]] = {"method": [0, 0], "ablation": [0, 0], "rest": [0, 0]}
    rows = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        source = path.read_text(encoding="utf-8")
        lines, code = len(source.splitlines()), code_lines(source)
        group = group_of(relative)
        totals[group][0] += lines
        totals[group][1] += code
        if args.all or group == "method":
            rows.append((group, relative, lines, code))
    print("| group | module | lines | code lines |\n|---|---|---:|---:|")
    for group, relative, lines, code in rows:
        print(f"| {group} | `{relative}` | {lines} | {code} |")
    for group, (lines, code) in totals.items():
        print(f"| **{group}** | | **{lines}** | **{code}** |")
    all_lines = sum(v[0] for v in totals.values())
    all_code = sum(v[1] for v in totals.values())
    print(f"| **library** | | **{all_lines}** | **{all_code}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
