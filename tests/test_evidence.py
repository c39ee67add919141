"""Evidence in the prompt (prompt.evidence = stylometric): the table, its swap, the cited-number check,
and the stylometric teacher citing only what the table shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from real_pairs import passages, real_pairs

from persrm_lib.core.config import get_profile
from persrm_lib.core.output_format import parse_output
from persrm_lib.data.evidence import (
    EvidenceError,
    attach_to_splits,
    check_kind,
    evidence_kind,
    evidence_rows,
    evidence_table,
    has_evidence,
    swap_evidence,
    table_numbers,
    uncited_numbers,
)
from persrm_lib.evaluate.lm_judges import GenerativeJudge
from persrm_lib.teachers.stylometric import StylometricTeacher
from persrm_lib.teachers.swap import swap_trace
from persrm_lib.train.adapters import (
    TRAINING_INFO,
    AdapterEvidenceError,
    adapter_evidence,
    check_evidence_matches,
    training_info,
)

ROW = {"criterion": "character 3-5-gram cosine", "exemplars": "-", "a": "0.11", "b": "0.16", "better": "higher"}


def test_table_puts_a_and_b_side_by_side():
    pair = {"id": "p", "evidence": {"rows": [ROW]}}
    assert evidence_table(pair) == (
        "Measurements (exemplars | A | B):\n- character 3-5-gram cosine: - | 0.11 | 0.16 (higher is closer)"
    )
    assert table_numbers(pair) == {"3", "5", "0.11", "0.16"}


def test_the_core_prompt_builder_shows_the_table_without_importing_this_module():
    """persrm_lib.core imports nothing of the evidence ablation; the package registers the table
    (core.prompt.register_pair_block), so a process that imports only the prompt builder shows it."""
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    pair = {
        "id": "p",
        "query": "Q",
        "exemplars": ["E"],
        "response_a": "A",
        "response_b": "B",
        "evidence": {"rows": [ROW]},
    }
    code = f"from persrm_lib.core.prompt import build_user_message; print(build_user_message({pair!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.endswith("Response B:\nB\n\n" + evidence_table(pair) + "\n")
    importing = re.compile(r"^\s*(from|import)\s.*\bevidence\b", re.M)
    assert [p.name for p in (root / "persrm_lib" / "core").glob("*.py") if importing.search(p.read_text())] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A 0.11, B 0.16; B.", []),  # every value is in the table
        ("A 0.11, B 0.17; B.", ["0.17"]),  # a value the table does not show
        ("character 3-5-gram cosine: A 0.11.", []),  # digits of a criterion name
        ("A 0.110, B 16", ["0.110", "16"]),  # written differently is not the same text
    ],
)
def test_uncited_numbers(text, expected):
    assert uncited_numbers(text, {"id": "p", "evidence": {"rows": [ROW]}}) == expected


NGRAMS = {**ROW, "criterion": "character n-grams"}  # no digit in its name
TWO_ROWS = {"id": "p", "exemplars": ["e1", "e2", "e3"], "evidence": {"rows": [NGRAMS, NGRAMS], "n_exemplars": 3}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A is closer on 1 of 2 criteria, B on 1 of 2.", []),  # a tally over the table's rows
        ("B wins 2 out of 2.", []),  # the same, spelled "out of"
        ("B wins 3 of 3.", ["3", "3"]),  # more criteria than the table has rows: not a tally of it
        ("B wins 2 of 1.", ["2", "1"]),  # a count above its total
        ("1. n-grams: A 0.11\n2) B 0.16", []),  # list markers that open a line, within the rows
        ("3. n-grams: A 0.11", ["3"]),  # a third item of a two-row table is not a count of it
        ("see 1. the ngrams", ["1"]),  # not at the start of a line: a number like any other
        ("Exemplar 3 uses dashes; exemplar #2 too.", []),  # references to exemplars shown
        ("Exemplar 4 uses dashes.", ["4"]),  # a fourth exemplar is not shown
        ("score 7 of 10 for A", ["7", "10"]),  # a made-up score is not a count of the table
        ("A 0.5 of 2", ["0.5", "2"]),  # a decimal is never a count, nor is the total after it
    ],
)
def test_counts_are_allowed_as_such(text, expected):
    assert uncited_numbers(text, TWO_ROWS) == expected
    if expected == [] and any(ch.isdigit() for ch in text):
        assert uncited_numbers(text, TWO_ROWS, allow_counts=False) != []  # the rule is what allows them


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        # no record at all
        ({"id": "p"}, "pair 'p' has no evidence record: build the pairs with prompt.evidence='stylometric'"),
        # a value that is not text
        ({"id": "p", "evidence": {"rows": [{**ROW, "a": 0.11}]}}, "pair 'p': evidence row 0 lacks text field(s) a"),
        # an unknown reading
        ({"id": "p", "evidence": {"rows": [{**ROW, "better": "best"}]}}, "pair 'p': evidence row 0 has better='best'"),
        # a row that is not an object
        ({"id": "p", "evidence": {"rows": ["0.11"]}}, "pair 'p': evidence row 0 is a str, not an object"),
        # an exemplar count that is not a positive integer
        (
            {"id": "p", "evidence": {"rows": [ROW], "n_exemplars": 0}},
            "pair 'p': evidence n_exemplars must be a positive integer, got 0",
        ),
        # other counts keyed by something else
        (
            {"id": "p", "evidence": {"rows": [ROW], "by_count": {"one": [ROW]}}},
            "pair 'p': evidence by_count key 'one' is not an exemplar count",
        ),
        # a malformed row of another count
        (
            {"id": "p", "evidence": {"rows": [ROW], "by_count": {"1": []}}},
            "pair 'p': evidence by_count['1'] must be a non-empty list of rows",
        ),
    ],
)
def test_bad_evidence_is_refused_naming_the_pair(pair, message):
    with pytest.raises(EvidenceError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        evidence_table(pair)


def test_has_evidence():
    assert [has_evidence(p) for p in ({"id": "p"}, {"evidence": None}, {"evidence": {"rows": [ROW]}})] == [
        False,
        False,
        True,
    ]


ONE = {**ROW, "a": "0.2", "b": "0.3"}  # the same row measured on the first exemplar only


def test_rows_follow_the_exemplars_shown():
    pair = {"id": "p", "evidence": {"rows": [ROW], "n_exemplars": 3, "by_count": {"1": [ONE]}}}
    assert evidence_rows(pair) == [ROW]  # the pair's own count
    assert evidence_rows(pair, 3) == [ROW]
    assert evidence_rows(pair, 1) == [ONE]
    assert evidence_table(pair, 1).endswith("- character 3-5-gram cosine: - | 0.2 | 0.3 (higher is closer)")
    assert table_numbers(pair, 1) == {"3", "5", "0.2", "0.3"}
    with pytest.raises(EvidenceError) as info:
        evidence_rows(pair, 2)
    assert str(info.value) == (
        "pair 'p': its evidence was measured on 1, 3 exemplar(s), the prompt shows 2: build the pairs with that "
        "count among the evidence counts (attach_to_splits counts=...)"
    )
    # a record without its count (hand-made) is read as it is
    assert evidence_rows({"id": "q", "evidence": {"rows": [ROW]}}, 2) == [ROW]


def test_swap_exchanges_a_and_b_in_every_count():
    record = {"rows": [ROW], "n_exemplars": 3, "by_count": {"1": [ONE]}}
    swapped = swap_evidence(record)
    assert swapped == {
        "rows": [{**ROW, "a": "0.16", "b": "0.11"}],
        "n_exemplars": 3,
        "by_count": {"1": [{**ONE, "a": "0.3", "b": "0.2"}]},
    }
    assert swap_evidence(swapped) == record and record["rows"] == [ROW]  # an involution; the input is kept


def test_unknown_kind():
    assert check_kind("none") == "none"
    with pytest.raises(ValueError, match="prompt.evidence must be one of none, stylometric, got 'numbers'"):
        check_kind("numbers")


def test_the_teacher_cites_only_table_values_and_the_swap_is_exact_on_real_pairs():
    pairs = real_pairs()
    teacher = StylometricTeacher(compact=True)
    teacher.prepare(pairs)
    for pair in pairs:
        pair = {**pair, "evidence": teacher.evidence(pair)}
        completion = teacher.judge(pair)
        assert uncited_numbers(parse_output(completion).evaluation, pair) == []
        swapped = swap_trace({**pair, "completion": completion})
        assert swapped["evidence"] == swap_evidence(pair["evidence"]) == teacher.evidence(swapped)
        assert uncited_numbers(parse_output(swapped["completion"]).evaluation, swapped) == []
    assert [row["better"] for row in pair["evidence"]["rows"]] == ["closer"] * 3 + ["lower", "higher"]


def two_exemplar_pairs() -> list[dict]:
    """Real pairs read with 2 exemplars (the evaluation also reads them with 1)."""
    texts = passages()
    names = sorted(texts)[:4]
    return [
        {
            "id": f"t{i}",
            "query": "Write a passage.",
            "exemplars": [texts[name][0], texts[name][3]],
            "response_a": texts[name][1],
            "response_b": texts[names[(i + 1) % len(names)]][2],
            "label": "a",
            "n_exemplars": 2,
        }
        for i, name in enumerate(names)
    ]


def test_attach_to_splits_fits_on_training_texts_and_measures_every_split_at_every_count():
    train, test = real_pairs()[:8], two_exemplar_pairs()
    splits = {"train": train, "test_sotu": test}
    teacher = StylometricTeacher(n_criteria=2, compact=True)
    out = attach_to_splits(splits, teacher, counts=(1, 2, 3))
    assert list(out) == ["train", "test_sotu"] and [len(v) for v in out.values()] == [8, 4]
    reference = StylometricTeacher(n_criteria=2, compact=True)
    reference.prepare(train)  # the training texts alone set the scales
    assert (teacher.scales == reference.scales).all()
    for pair, attached in zip(train + test, out["train"] + out["test_sotu"], strict=True):
        assert {k: v for k, v in attached.items() if k != "evidence"} == pair and "evidence" not in pair
        record = attached["evidence"]
        assert {k: v for k, v in record.items() if k != "by_count"} == reference.evidence(pair)
        assert len(record["rows"]) == 4  # 2 named features, function words, character n-grams
    # train pairs have 1 exemplar: no other count fits; test pairs have 2: count 1 is measured too
    assert all("by_count" not in p["evidence"] for p in out["train"])
    for pair, attached in zip(test, out["test_sotu"], strict=True):
        assert list(attached["evidence"]["by_count"]) == ["1"]
        assert attached["evidence"]["by_count"]["1"] == reference.evidence({**pair, "n_exemplars": 1})["rows"]
    # with fit_pairs, those pairs set the scales (the subset the teacher traces)
    attach_to_splits(splits, teacher, fit_pairs=train[:4])
    reference.prepare(train[:4])
    assert (teacher.scales == reference.scales).all()


@pytest.mark.parametrize(
    ("splits", "kwargs", "error", "message"),
    [
        ({"test_sotu": real_pairs()[:2]}, {}, KeyError, "attach_to_splits: no 'train' split among test_sotu"),
        ({"train": []}, {}, ValueError, "attach_to_splits: no training pair to fit the teacher on"),
        ({"train": real_pairs()[:2]}, {"counts": (0,)}, ValueError, "exemplar counts must be at least 1, got (0,)"),
    ],
)
def test_attach_to_splits_bad_input(splits, kwargs, error, message):
    with pytest.raises(error) as info:
        attach_to_splits(splits, StylometricTeacher(compact=True), **kwargs)
    assert message in str(info.value)


def test_attach_to_splits_refuses_a_teacher_that_ignores_the_count():
    with pytest.raises(ValueError) as info:
        attach_to_splits({"train": two_exemplar_pairs()}, StylometricTeacher(compact=True, n_exemplars=2), counts=(1,))
    assert str(info.value) == (
        "attach_to_splits: the teacher measured pair 't0' on 2 exemplar(s) when asked for 1: build it with n_exemplars=None"
    )


def test_evidence_kind():
    assert evidence_kind([{"id": "p", "evidence": {"rows": [ROW]}}]) == "stylometric"
    assert evidence_kind([{"id": "p"}, {"id": "q", "evidence": None}]) == "none"
    with pytest.raises(EvidenceError) as info:
        evidence_kind([{"id": "p", "evidence": {"rows": [ROW]}}, {"id": "q"}], where="traces_faithful.jsonl")
    assert str(info.value) == (
        "traces_faithful.jsonl: 1 of 2 pairs carry evidence (e.g. 'p') and the others do not (e.g. 'q'): "
        "build every split with one prompt.evidence setting"
    )
    with pytest.raises(EvidenceError, match="^the pairs: no pairs to read the evidence setting from$"):
        evidence_kind([])


# --- the setting in the profile -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # an unknown setting
        (
            {"prompt.evidence": "numbers"},
            "profile 'smoke': prompt.evidence must be one of none, stylometric, got 'numbers'",
        ),
        # the stylometric teacher's full trace cites distances the table does not show
        (
            {"prompt.evidence": "stylometric", "teacher.trace_style": "full"},
            "profile 'smoke': prompt.evidence='stylometric' needs teacher.trace_style='compact' with the stylometric "
            "teacher: its full trace cites distances (d=...) and Delta values that the evidence table does not show, "
            "so the faithfulness filter would reject every trace",
        ),
    ],
)
def test_profile_validation(overrides, message):
    with pytest.raises(ValueError) as info:
        get_profile("smoke", overrides)
    assert str(info.value) == message


def test_profile_settings():
    assert {name: get_profile(name).prompt.evidence for name in ("tiny", "smoke", "cpu", "paper")} == dict.fromkeys(
        ("tiny", "smoke", "cpu", "paper"), "none"
    )
    assert get_profile("smoke", {"prompt.evidence": "stylometric"}).prompt.evidence == "stylometric"
    # an LLM teacher may write any trace: only the filter checks what it cites
    llm = {"prompt.evidence": "stylometric", "teacher.kind": "http", "teacher.trace_style": "full"}
    assert get_profile("smoke", llm).prompt.evidence == "stylometric"


# --- the setting travels with the adapter ---------------------------------------------------------


def adapter(tmp_path: Path, info: dict | None) -> Path:
    folder = tmp_path / "sft" / "adapter"
    folder.mkdir(parents=True)
    if info is not None:
        (folder / TRAINING_INFO).write_text(json.dumps(info))
    return folder


def test_training_info_records_the_setting():
    profile = get_profile("smoke", {"prompt.evidence": "stylometric"})
    assert training_info(profile, "sft", "transformers", 3)["evidence"] == "stylometric"
    assert training_info(profile, "sft", "transformers", 3, evidence="none")["evidence"] == "none"
    with pytest.raises(ValueError, match="prompt.evidence must be one of none, stylometric, got 'yes'"):
        training_info(profile, "sft", "transformers", 3, evidence="yes")


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"evidence": "stylometric"}, "stylometric"),  # recorded
        ({"stage": "sft"}, "none"),  # saved before the setting existed: trained without
        (None, None),  # no training info: an adapter from elsewhere, not checked
    ],
)
def test_adapter_evidence(tmp_path, info, expected):
    assert adapter_evidence(adapter(tmp_path, info)) == expected


EV_PAIR = {"id": "e1", "evidence": {"rows": [ROW]}}
PLAIN_PAIR = {"id": "n1"}


@pytest.mark.parametrize(
    ("trained", "pairs", "message"),
    [
        # trained with the table, shown a pair without it
        (
            "stylometric",
            [EV_PAIR, PLAIN_PAIR],
            "adapter {dir} was trained with prompt.evidence='stylometric' but pair 'n1' carries no evidence record: "
            "judge pairs built with that setting (notebook 01), or an adapter trained without it",
        ),
        # trained without the table, shown one
        (
            "none",
            [PLAIN_PAIR, EV_PAIR],
            "adapter {dir} was trained without evidence (prompt.evidence='none') but pair 'e1' carries an evidence "
            "record: a model trained without the table must not be shown one; judge pairs built with "
            "prompt.evidence='none', or an adapter trained with evidence",
        ),
    ],
)
def test_a_judge_refuses_pairs_of_the_other_setting(tmp_path, trained, pairs, message):
    folder = adapter(tmp_path, {"evidence": trained})
    with pytest.raises(AdapterEvidenceError) as info:
        check_evidence_matches(folder, pairs)
    assert str(info.value) == message.format(dir=folder)
    # the generative judge refuses before it loads any model
    with pytest.raises(AdapterEvidenceError) as info:
        GenerativeJudge(model="no-such-model", adapter=folder).score_batch(pairs)
    assert str(info.value) == message.format(dir=folder)


def test_matching_pairs_pass(tmp_path):
    check_evidence_matches(adapter(tmp_path, {"evidence": "stylometric"}), [EV_PAIR])
    check_evidence_matches(tmp_path / "sft" / "adapter", [EV_PAIR])  # same folder, same answer
    check_evidence_matches(adapter(tmp_path / "x", None), [EV_PAIR, PLAIN_PAIR])  # no training info: no check
