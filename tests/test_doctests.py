"""The ``>>>`` examples in the library's docstrings run, and say what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import persrm_lib


def _modules_with_examples() -> list[str]:
    names = []
    finder = doctest.DocTestFinder()
    for info in pkgutil.walk_packages(persrm_lib.__path__, prefix="persrm_lib."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        if any(test.examples for test in finder.find(module)):
            names.append(info.name)
    return names


MODULES = _modules_with_examples()


def test_the_library_has_docstring_examples() -> None:
    assert len(MODULES) >= 10, MODULES  # 33 examples in 16 modules when this test was written


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, report=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail (python -m doctest -v)"
