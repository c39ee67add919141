"""Loaders for corpus folders you provide: a generic manifest, and the paper's two benchmarks
(PersRM-R1, arXiv 2508.14076, §4): Reuters C50 (CCAT50) and CMCC (Goldstein-Stewart et al., LREC
2008). Each gives a Document table (:mod:`persrm_lib.data.documents`); paragraphs are separated by
blank lines.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from .documents import Document, author_surnames, document_table, passages_of_work, read_text, require_dir

logger = logging.getLogger(__name__)

CMCC_CATEGORIES: tuple[str, ...] = ("Blogs", "Chat", "Discussion", "Emails", "Essays", "Interviews")
MANIFEST_COLUMNS = ("path", "author", "genre")


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def load_folder(
    root: str | Path,
    passage_words: int,
    manifest: str = "manifest.csv",
    encoding: str = "utf-8",
    source: str | None = None,
) -> pd.DataFrame:
    """A folder of plain-text files listed in a CSV manifest with columns ``path, author, genre``
    (paths relative to ``root``).

    Raises:
        FileNotFoundError: the folder, the manifest or a listed file is missing.
        ValueError: an empty folder, a manifest without the columns or rows, an empty cell, or a
            file not valid in ``encoding`` (each message names the file, and the manifest line).
    """
    root = require_dir(root, "corpus")
    manifest_path = root / manifest
    if not manifest_path.is_file():
        raise FileNotFoundError(f"manifest {manifest_path} does not exist (columns: {', '.join(MANIFEST_COLUMNS)})")
    source = source or root.name
    with manifest_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{manifest_path}: missing column(s) {', '.join(missing)} (has {reader.fieldnames})")
        rows = list(enumerate(reader, start=2))
    if not rows:
        raise ValueError(f"{manifest_path}: no rows")
    skipped: Counter = Counter()
    cut = functools.partial(passages_of_work, source=source, passage_words=passage_words, skipped=skipped)
    docs: list[Document] = []
    for line, row in rows:
        empty = [c for c in MANIFEST_COLUMNS if not (row.get(c) or "").strip()]
        if empty:
            raise ValueError(f"{manifest_path} line {line}: empty {', '.join(empty)}")
        path = root / row["path"].strip()
        if not path.is_file():
            raise FileNotFoundError(f"{manifest_path} line {line}: file {path} does not exist")
        author, work = row["author"].strip(), Path(row["path"].strip()).with_suffix("").as_posix()
        paragraphs = _paragraphs(read_text(path, encoding))
        docs += cut(paragraphs, author=author, work=work, genre=row["genre"].strip(), names=author_surnames(author))
    return document_table(docs, skipped, source)


def load_c50(root: str | Path, passage_words: int, encoding: str = "utf-8") -> pd.DataFrame:
    """Reuters C50 (CCAT50): ``root/C50train/<Author>/*.txt`` and ``root/C50test/<Author>/*.txt``, the
    parts pooled (splits here are by author); genre ``news``, author the folder name
    (``AaronPressman``), whose surname (``Pressman``) is kept out of passages.

    Raises:
        FileNotFoundError: ``root`` or both part folders missing.
        ValueError: no author folders or no ``.txt`` files, or a file not valid in ``encoding``.
    """
    root = require_dir(root, "C50")
    parts = [p for p in ("C50train", "C50test") if (root / p).is_dir()]
    if not parts:
        raise FileNotFoundError(f"C50 folder {root} has neither C50train/ nor C50test/")
    skipped: Counter = Counter()
    cut = functools.partial(passages_of_work, genre="news", source="c50", passage_words=passage_words, skipped=skipped)
    docs: list[Document] = []
    for part in parts:
        authors = sorted(p for p in (root / part).iterdir() if p.is_dir())
        if not authors:
            raise ValueError(f"C50 folder {root / part} has no author folders")
        for author_dir in authors:
            files = sorted(author_dir.glob("*.txt"))
            if not files:
                skipped["author folders without .txt files"] += 1
                logger.warning("C50: %s has no .txt files", author_dir)
                continue
            author, names = author_dir.name, author_surnames(author_dir.name)
            for path in files:
                paragraphs, work = _paragraphs(read_text(path, encoding)), f"{part}/{author}/{path.stem}"
                docs += cut(paragraphs, author=author, work=work, names=names)
    return document_table(docs, skipped, "c50")


_CMCC_NAME_RE = re.compile(r"^(?P<author>[A-Z]\d+)(?P<genre>[A-Z])\d+(?P<topic>[A-Z])\d+\.txt$")
_CMCC_KNOWN_TYPOS = {"S1D113.txt": "S1D1I3.txt"}  # the one file that breaks the naming scheme


def load_cmcc(root: str | Path, passage_words: int, encoding: str = "cp1252") -> pd.DataFrame:
    """CMCC: ``root/<Category>/Correlated/<author><g><n><topic><n>.txt`` (or under ``root/raw``);
    genre = the category in lower case (``blogs``, ``chat``, ``discussion``, ``emails``, ``essays``,
    ``interviews``), author = the leading code (``S1``). The ``Extra`` folders are not read (their
    authors did not write every genre).

    Raises:
        FileNotFoundError: ``root`` missing, or no category folder with a ``Correlated`` folder.
        ValueError: a file name outside the scheme, or a file not valid in ``encoding``.
    """
    root = require_dir(root, "CMCC")
    if (root / "raw").is_dir():
        root = root / "raw"
    categories = [c for c in CMCC_CATEGORIES if (root / c / "Correlated").is_dir()]
    if not categories:
        raise FileNotFoundError(
            f"CMCC folder {root} has no <Category>/Correlated/ folder (categories: {CMCC_CATEGORIES})"
        )
    skipped: Counter = Counter()
    cut = functools.partial(passages_of_work, source="cmcc", passage_words=passage_words, names=[], skipped=skipped)
    docs: list[Document] = []
    for category in categories:
        for path in sorted((root / category / "Correlated").glob("*.txt")):
            name = _CMCC_KNOWN_TYPOS.get(path.name, path.name)
            match = _CMCC_NAME_RE.match(name)
            if not match:
                raise ValueError(
                    f"CMCC file {path}: name does not follow <author><genre><n><topic><n>.txt (e.g. S1D1I3.txt)"
                )
            paragraphs, work = _paragraphs(read_text(path, encoding)), f"{category}/{Path(name).stem}"
            docs += cut(paragraphs, author=match["author"], work=work, genre=category.lower())
    return document_table(docs, skipped, "cmcc")
