"""Every citation of the design notes points somewhere: the file ships, and each cited section is one
of its headings.

Code, notebooks, tests and benchmarks cite the notes as ``docs/design.md, "<Section>"``. A citation of
a section that was renamed or removed, or of the old document that the repository never shipped,
fails here with the file, the line and the missing name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from persrm_lib.core.paths import REPO_ROOT

DESIGN = REPO_ROOT / "docs" / "design.md"
OLD_NAME = "DESIGN" + ".md"  # the document that was cited but never shipped (spelt so this file does not cite it)
SCANNED = ("persrm_lib", "notebooks", "tests", "benchmarks", "docs", "configs", "binder")
SCANNED_FILES = ("README.md", "Makefile", "pyproject.toml", "environment.yml")
SKIPPED_DIRS = {"__pycache__", ".ipynb_checkpoints"}
# docs/design.md, "Section"   or   docs/design.md ("Section"); the name may follow a line break
CITATION_RE = re.compile(r'docs/design\.md(?:,\s*|\s*\(\s*)"([^"\n]+)"')


def scanned_files() -> list[Path]:
    """Every file that may cite the notes; this file is left out, since it spells out the pattern."""
    files = [REPO_ROOT / name for name in SCANNED_FILES if (REPO_ROOT / name).is_file()]
    for folder in SCANNED:
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(REPO_ROOT).parts):
                files.append(path)
    return [path for path in files if path.resolve() != Path(__file__).resolve()]


def texts(path: Path) -> Iterator[tuple[str, str]]:
    """``(where, text)`` of a file: each cell of a notebook (its source, JSON escapes undone), or the
    whole file; nothing for a file that is not UTF-8 text."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return
    name = path.relative_to(REPO_ROOT).as_posix()
    if path.suffix == ".ipynb":
        for i, cell in enumerate(json.loads(raw)["cells"]):
            source = cell["source"]
            yield f"{name} cell {i}", source if isinstance(source, str) else "".join(source)
    else:
        yield name, raw


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def headings(markdown: str) -> set[str]:
    """The headings of a Markdown text (``#`` lines outside fenced code), without the ``#`` marks."""
    found, fenced = set(), False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.add(line.lstrip("#").strip())
    return found


def cited_sections(text: str) -> list[tuple[int, str]]:
    """``(line, section)`` of every ``docs/design.md, "<Section>"`` citation in ``text``."""
    return [(line_of(text, m.start()), " ".join(m.group(1).split())) for m in CITATION_RE.finditer(text)]


def test_citation_pattern_reads_both_forms_and_line_breaks() -> None:
    text = 'a (docs/design.md, "Known hazards")\nb docs/design.md ("Pair") c docs/design.md,\n    "Era shortcut"'
    assert cited_sections(text) == [(1, "Known hazards"), (2, "Pair"), (2, "Era shortcut")]
    assert headings("# T\n## Pair\n```\n## not a heading\n```\n### Era shortcut\n") == {"T", "Pair", "Era shortcut"}


def test_the_design_notes_ship() -> None:
    assert DESIGN.is_file(), "docs/design.md is missing: code and notebooks cite it"


def test_nothing_cites_the_unshipped_design_document() -> None:
    stale = [
        f"{where} line {line_of(text, m.start())}"
        for path in scanned_files()
        for where, text in texts(path)
        for m in re.finditer(re.escape(OLD_NAME), text)
    ]
    assert not stale, f"{OLD_NAME} is not in the repository; cite docs/design.md instead: " + "; ".join(stale)


def test_every_cited_section_is_a_heading_of_the_design_notes() -> None:
    sections = headings(DESIGN.read_text(encoding="utf-8"))
    cited, missing = 0, []
    for path in scanned_files():
        for where, text in texts(path):
            for line, section in cited_sections(text):
                cited += 1
                if section not in sections:
                    missing.append(f'{where} line {line} cites docs/design.md, "{section}"')
    assert cited, "no citation of docs/design.md found: the pattern no longer matches how the code cites it"
    assert not missing, "sections missing from docs/design.md: " + "; ".join(missing)


def test_the_design_notes_name_no_machine_paths() -> None:
    text = DESIGN.read_text(encoding="utf-8")
    found = re.findall(r"(?<![\w.])/(?:home|work|root|tmp|Users|mnt)/\S*", text)
    assert not found, f"docs/design.md names machine paths: {found}"
