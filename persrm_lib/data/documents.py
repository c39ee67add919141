"""The Document table: one row per passage of one author's text (docs/design.md, "Document").

The table (a ``pandas.DataFrame``) has the contract's columns ``doc_id, author, text, genre, source,
split`` plus three that the sampler needs: ``work`` (the address, essay or chapter the passage was
cut from; exemplars never share a work with the chosen passage), ``year`` (sotu only; the era
shortcut and the ``same-era`` negative) and ``position`` (passage index within the work). Here too
what every corpus loader shares: file reading, passage cutting, the author-name check.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.jsonl import read_jsonl, write_jsonl_atomic

logger = logging.getLogger(__name__)

DOCUMENT_COLUMNS: tuple[str, ...] = ("doc_id", "author", "text", "genre", "source", "split", "work", "year", "position")
Document = dict[str, Any]  # one passage: a row of the table, keyed by DOCUMENT_COLUMNS


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """Read a text file strictly in its declared encoding; newlines normalised to ``\\n``.

    Raises:
        FileNotFoundError: the file does not exist (``Path.read_bytes`` names it).
        ValueError: the bytes are not valid ``encoding`` (the message names the file and offset).
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not valid {encoding} (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "declare the file's real encoding"
        ) from exc
    # Some files end lines with CR CR LF (a CRLF file converted twice): one line end, not two.
    return re.sub(r"\r*\n|\r", "\n", text).lstrip("\ufeff")


def require_dir(root: str | Path, what: str) -> Path:
    """``root`` as a ``Path``, checked to be a folder (else FileNotFoundError naming ``what`` and
    ``root``) with something in it (else ValueError)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder {root} does not exist")
    if not any(root.iterdir()):
        raise ValueError(f"{what} folder {root} is empty")
    return root


_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr messrs hon gen col capt lt gov sen rep rev prof no nos vs etc co inc ltd "
    "jan feb mar apr jun jul aug sep sept oct nov dec mt ft vol pp ch art sec esq viz cf ibid u.s "
    "i.e e.g a.m p.m".split()
)
_BOUNDARY_RE = re.compile(r"[.!?]+[\"'\u2019\u201d)\]]*\s+(?=[\"'\u2018\u201c(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split running text into sentences on ``. ! ?`` followed by a capital or a digit.

    Abbreviations (``Mr.``, ``U.S.``, ``etc.``) and initials (``H. Truman``) do not end a sentence.
    """
    text = " ".join(text.split())
    sentences, start = [], 0
    for match in _BOUNDARY_RE.finditer(text):
        before = text[start : match.start() + 1].split()
        last = before[-1].rstrip(".!?\"')]\u2019\u201d").lower() if before else ""
        if text[match.start()] == "." and (last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())):
            continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def cut_passages(paragraphs: Iterable[str], passage_words: int) -> list[str]:
    """Cut text into passages of at least ``passage_words`` words, ending on sentence boundaries;
    the shorter remainder is dropped. ValueError when ``passage_words`` is below 1."""
    if passage_words < 1:
        raise ValueError(f"passage_words must be at least 1, got {passage_words}")
    passages: list[str] = []
    current: list[str] = []
    count = 0
    for paragraph in paragraphs:
        for sentence in split_sentences(paragraph):
            current.append(sentence)
            count += len(sentence.split())
            if count >= passage_words:
                passages.append(" ".join(current))
                current, count = [], 0
    return passages


def _fold(text: str) -> str:
    """``text`` without accents."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def author_surnames(name: str) -> list[str]:
    """The surname of a person-like author name (last alphabetic token, 3+ letters), with its
    accent-free spelling (``Anne Brontë`` -> ``['Brontë', 'Bronte']``, ``AaronPressman`` ->
    ``['Pressman']``); codes such as ``Author01`` or ``S1`` give none.
    """
    tokens = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.replace("_", " ")).split()
    tokens = [t for t in tokens if t.isalpha() and len(t) >= 3]
    if not tokens:
        return []
    surname = tokens[-1][0].upper() + tokens[-1][1:]
    return sorted({surname, _fold(surname)}, key=lambda s: (s != surname, s))


def mentions_name(text: str, names: Sequence[str]) -> bool:
    """True when ``text`` contains one of ``names`` as a whole word (as written or in capitals)."""
    both = _fold(text) + " " + text
    return any(re.search(rf"\b(?:{re.escape(name)}|{re.escape(name.upper())})\b", both) for name in names)


def document_table(docs: Sequence[Document], skipped: Counter, source: str) -> pd.DataFrame:
    """The Document table of ``docs`` (columns :data:`DOCUMENT_COLUMNS`, ``year`` as ``Int64``),
    with ``skipped`` (reason -> count) in ``attrs["skipped"]`` and logged. ValueError naming ``source``
    when there is no passage at all or a ``doc_id`` twice.
    """
    frame = pd.DataFrame(list(docs), columns=list(DOCUMENT_COLUMNS))
    frame["year"] = frame["year"].astype("Int64")
    frame.attrs["skipped"] = dict(sorted(skipped.items()))
    for reason, n in sorted(skipped.items()):
        logger.info("%s: skipped %d %s", source, n, reason)
    if frame.empty:
        raise ValueError(f"{source}: no passage survived loading (skipped: {dict(skipped)})")
    if frame["doc_id"].duplicated().any():
        raise ValueError(f"{source}: duplicate doc_id {frame.loc[frame['doc_id'].duplicated(), 'doc_id'].iloc[0]!r}")
    return frame


def passages_of_work(
    paragraphs: Sequence[str],
    *,
    author: str,
    work: str,
    genre: str,
    source: str,
    passage_words: int,
    names: Sequence[str],
    skipped: Counter,
    year: int | None = None,
) -> list[Document]:
    """The passages of one work (:func:`cut_passages`) as Documents with ids
    ``<source>/<work>#<position:03d>``; a passage that names its author (any of ``names``,
    :func:`mentions_name`) is dropped, and drops and too-short works are counted in ``skipped``."""
    passages = cut_passages(paragraphs, passage_words)
    if not passages:
        skipped["works shorter than one passage"] += 1
        return []
    docs = []
    for position, text in enumerate(passages):
        if names and mentions_name(text, names):
            skipped["passages naming their author"] += 1
            continue
        row = (f"{source}/{work}#{position:03d}", author, text, genre, source, "", work, year, position)
        docs.append(dict(zip(DOCUMENT_COLUMNS, row, strict=True)))
    return docs


def concat_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Stack Document tables, summing their skip counters."""
    skipped = sum((Counter(t.attrs.get("skipped", {})) for t in tables), Counter())
    out = pd.concat(list(tables), ignore_index=True)
    out.attrs["skipped"] = dict(sorted(skipped.items()))
    return out


def write_documents(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a Document table as JSONL (one passage per line), atomically."""
    records = [
        {k: (None if pd.isna(v) else (int(v) if k in ("year", "position") else v)) for k, v in row.items()}
        for row in table[list(DOCUMENT_COLUMNS)].to_dict(orient="records")
    ]
    return write_jsonl_atomic(records, path)


def read_documents(path: str | Path) -> pd.DataFrame:
    """Read a Document table written by :func:`write_documents` (checks the columns)."""
    records = read_jsonl(path)
    frame = pd.DataFrame(records)
    missing = [c for c in DOCUMENT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: documents lack column(s) {', '.join(missing)}")
    frame["year"] = frame["year"].astype("Int64")
    return frame[list(DOCUMENT_COLUMNS)]
