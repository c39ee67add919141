"""The canonical pair reader and writer: valid files round-trip, each bad input names its place; the
optional evidence record is checked; THE swap of a pair's order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from persrm_lib.data.pairs import (
    PAIR_FIELDS,
    SWAPPED_SUFFIX,
    PairFormatError,
    read_pairs,
    swap_pair,
    validate_pair,
    write_pairs,
)


def make_pair(i: int = 0, **changes) -> dict:
    pair = {
        "id": f"p{i}",
        "query": "Write about the harvest.",
        "exemplars": ["The fields were golden.", "We gathered at dawn."],
        "response_a": "The harvest came early.",
        "response_b": "Markets closed lower today.",
        "label": "a",
        "positive_kind": "intra_author",
        "negative_kind": "random",
        "author": "alice",
        "genre": "essay",
        "n_exemplars": 2,
    }
    pair.update(changes)
    return pair


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_round_trip_keeps_fields_order_and_extras(tmp_path: Path) -> None:
    pairs = [make_pair(0), make_pair(1, label="b", completion="<criteria>x</criteria>")]
    path = write_pairs(pairs, tmp_path / "sub" / "pairs.jsonl")
    assert read_pairs(path) == pairs
    first_line = json.loads(path.read_text().splitlines()[0])
    assert list(first_line) == list(PAIR_FIELDS)
    # no temporary file is left next to the target
    assert sorted(p.name for p in path.parent.iterdir()) == ["pairs.jsonl"]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(make_pair(0)), "", "   ", json.dumps(make_pair(1))])
    assert [p["id"] for p in read_pairs(path)] == ["p0", "p1"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        # truncated JSON on line 2: the line number is in the message
        ([json.dumps(make_pair(0)), '{"id": "p1", "query": '], r"p\.jsonl line 2: malformed JSON"),
        # a label that is neither a nor b
        ([json.dumps(make_pair(0, label="A"))], r"line 1: field 'label' must be 'a' or 'b', got 'A'"),
        # a missing field
        (
            [json.dumps({k: v for k, v in make_pair(0).items() if k != "response_b"})],
            r"line 1: missing field\(s\): response_b",
        ),
        # a JSON array instead of an object
        (["[1, 2]"], r"line 1: expected a JSON object, got list"),
        # exemplars given as one string
        ([json.dumps(make_pair(0, exemplars="just text"))], r"field 'exemplars' must be a non-empty list"),
        # an empty exemplar list
        ([json.dumps(make_pair(0, exemplars=[]))], r"field 'exemplars' must be a non-empty list"),
        # more exemplars announced than present
        ([json.dumps(make_pair(0, n_exemplars=3))], r"'n_exemplars' is 3 but the pair has 2 exemplar"),
        # an empty response
        ([json.dumps(make_pair(0, response_a="  "))], r"field 'response_a' is empty"),
        # a repeated id
        ([json.dumps(make_pair(0)), json.dumps(make_pair(0))], r"line 2: id 'p0' repeats line 1"),
        # only blank lines: no pair
        (["", " "], r"is empty: no pair to read"),
    ],
)
def test_bad_files_name_what_is_wrong(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write_lines(tmp_path / "p.jsonl", lines)
    with pytest.raises(PairFormatError, match=message):
        read_pairs(path)


def test_truly_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(PairFormatError, match="empty.jsonl is empty"):
        read_pairs(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_pairs(tmp_path / "nope.jsonl")


def test_required_can_be_narrowed(tmp_path: Path) -> None:
    core = {k: v for k, v in make_pair(0).items() if k not in ("author", "genre")}
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(core)])
    with pytest.raises(PairFormatError, match=r"missing field\(s\): author, genre"):
        read_pairs(path)
    assert read_pairs(path, required=("id", "query", "exemplars", "response_a", "response_b", "label"))[0]["id"] == "p0"


def test_write_refuses_bad_pair_and_leaves_target_untouched(tmp_path: Path) -> None:
    path = write_pairs([make_pair(0)], tmp_path / "p.jsonl")
    before = path.read_text()
    with pytest.raises(PairFormatError, match=r"pair 1: field 'label' must be 'a' or 'b'"):
        write_pairs([make_pair(0), make_pair(1, label="c")], path)
    with pytest.raises(PairFormatError, match="pair 1: id 'p0' is repeated"):
        write_pairs([make_pair(0), make_pair(0)], path)
    with pytest.raises(PairFormatError, match="no pair to write"):
        write_pairs([], path)
    assert path.read_text() == before


def test_validate_pair_rejects_boolean_n_exemplars() -> None:
    with pytest.raises(PairFormatError, match="'n_exemplars' must be a positive integer, got True"):
        validate_pair(make_pair(0, n_exemplars=True))


# --- ids that collide as text, identical responses, other encodings (issue 13, items 2 and 6) -----


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        # the case: 1 and "1" are one id once written into a table or a file name
        ([1, "1"], "p.jsonl line 2: id '1' collides with id 1 of line 1 (the same id once written as text)"),
        (["7", 7], "p.jsonl line 2: id 7 collides with id '7' of line 1 (the same id once written as text)"),
        # the collision is found across other lines, naming both
        (
            ["a", 12, "b", "12"],
            "p.jsonl line 4: id '12' collides with id 12 of line 2 (the same id once written as text)",
        ),
        # a plain repeat keeps its message
        ([3, 3], "p.jsonl line 2: id 3 repeats line 1"),
    ],
)
def test_ids_that_collide_once_written_as_text_are_refused(tmp_path: Path, ids: list, message: str) -> None:
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(make_pair(i, id=value)) for i, value in enumerate(ids)])
    with pytest.raises(PairFormatError) as info:
        read_pairs(path)
    assert str(info.value) == f"{tmp_path}/{message}"


def test_write_refuses_colliding_ids(tmp_path: Path) -> None:
    with pytest.raises(PairFormatError) as info:
        write_pairs([make_pair(0, id=5), make_pair(1, id="5")], tmp_path / "p.jsonl")
    assert str(info.value) == "pair 1: id '5' collides with id 5 of pair 0 (the same id once written as text)"
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        # the same text twice: no judge can prefer the labelled one
        ({"response_a": "Same words.", "response_b": "Same words."}, "pair"),
        # the same once the prompt strips the surrounding whitespace
        ({"response_a": "Same words.\n", "response_b": "  Same words."}, "pair"),
        # the same once normalised (issue 20): a zero-width space, a no-break space, a line ending,
        # a run of spaces, a compatibility form
        ({"response_a": "Same words.", "response_b": "Same\u200b words."}, "pair"),
        ({"response_a": "Same words.", "response_b": "Same\u00a0words."}, "pair"),
        ({"response_a": "Same\r\nwords.", "response_b": "Same\nwords."}, "pair"),
        ({"response_a": "Same words.", "response_b": "Same  words."}, "pair"),
        ({"response_a": "Same ﬁne words.", "response_b": "Same fine words."}, "pair"),
    ],
)
def test_identical_responses_are_refused_naming_the_pair(tmp_path: Path, changes: dict, where: str) -> None:
    message = "has identical responses A and B: no judge can prefer the labelled one"
    with pytest.raises(PairFormatError) as info:
        validate_pair(make_pair(3, **changes), where)
    assert str(info.value) == f"pair: pair 'p3' {message}"
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(make_pair(0)), json.dumps(make_pair(3, **changes))])
    with pytest.raises(PairFormatError) as info:
        read_pairs(path)
    assert str(info.value) == f"{path} line 2: pair 'p3' {message}"


def test_responses_that_differ_in_a_visible_character_are_kept() -> None:
    assert validate_pair(make_pair(0, response_a="Same words.", response_b="Same words!"))["id"] == "p0"
    assert validate_pair(make_pair(1, response_a="Same words.", response_b="same words."))["id"] == "p1"


def test_a_pair_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes((json.dumps(make_pair(0, query="Écrivez."), ensure_ascii=False) + "\n").encode("latin-1"))
    with pytest.raises(PairFormatError) as info:
        read_pairs(path)
    assert str(info.value) == (
        f"{path} line 1: not UTF-8 (byte 0xc9 at byte 24 of the line: invalid continuation byte; save the file as UTF-8)"
    )
    path.write_bytes((json.dumps(make_pair(0)) + "\n").encode("utf-8-sig"))  # a UTF-8 byte-order mark is read
    assert read_pairs(path)[0]["id"] == "p0"


def test_evaluate_cli_exits_2_on_a_latin1_pair_file(tmp_path: Path) -> None:
    """``python -m persrm_lib.evaluate --pairs latin1.jsonl`` ends with exit 2 and the message, no traceback."""
    import subprocess
    import sys

    path = tmp_path / "latin1.jsonl"
    path.write_bytes((json.dumps(make_pair(0, query="Écrivez."), ensure_ascii=False) + "\n").encode("latin-1"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "persrm_lib.evaluate",
            "--pairs",
            str(path),
            "--judge",
            "random",
            "--out",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: {path} line 1: not UTF-8 (byte 0xc9 at byte 24 of the line: invalid continuation byte; "
        "save the file as UTF-8)"
    )


ROW = {"criterion": "commas", "exemplars": "4.1", "a": "6.0", "b": "3.9", "better": "closer"}
EVIDENCE = {"rows": [ROW], "n_exemplars": 2, "by_count": {"1": [{**ROW, "exemplars": "2.0"}]}}


def test_a_pair_with_evidence_round_trips(tmp_path: Path) -> None:
    pairs = [make_pair(0, evidence=EVIDENCE), make_pair(1)]
    assert read_pairs(write_pairs(pairs, tmp_path / "pairs.jsonl")) == pairs
    assert validate_pair(make_pair(2, evidence=None))["evidence"] is None  # None: no evidence, not checked


@pytest.mark.parametrize(
    ("evidence", "message"),
    [
        # a record without rows
        ({"n_exemplars": 2}, "pair 1: field 'evidence': pair 'p0' has no evidence record"),
        # a row whose value is a number, not the text the trace cites
        ({"rows": [{**ROW, "b": 3.9}]}, "pair 1: field 'evidence': pair 'p0': evidence row 0 lacks text field(s) b"),
        # an unknown reading of a row
        (
            {"rows": [{**ROW, "better": "more"}]},
            "pair 1: field 'evidence': pair 'p0': evidence row 0 has better='more'",
        ),
        # not a record at all
        ("0.5", "pair 1: field 'evidence': pair 'p0' has no evidence record"),
    ],
)
def test_bad_evidence_is_refused_naming_the_place_and_the_pair(evidence, message: str) -> None:
    with pytest.raises(PairFormatError) as info:
        validate_pair(make_pair(0, evidence=evidence), "pair 1")
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("pair", "suffix", "expected"),
    [
        # responses and label exchanged, id kept (the same pair judged in the other order)
        (
            {"id": "p", "response_a": "x", "response_b": "y", "label": "a", "n_exemplars": 1},
            False,
            {"id": "p", "response_a": "y", "response_b": "x", "label": "b", "n_exemplars": 1},
        ),
        # a training copy: the id gains the suffix
        (
            {"id": 7, "response_a": "x", "response_b": "y", "label": "b"},
            True,
            {"id": "7" + SWAPPED_SUFFIX, "response_a": "y", "response_b": "x", "label": "a"},
        ),
        # an unlabelled pair is swapped without a label
        ({"response_a": "x", "response_b": "y"}, False, {"response_a": "y", "response_b": "x"}),
        (
            {"response_a": "x", "response_b": "y", "label": None},
            False,
            {"response_a": "y", "response_b": "x", "label": None},
        ),
        # the evidence's A and B values follow their responses, in every count
        (
            {"id": "p", "response_a": "x", "response_b": "y", "label": "a", "evidence": EVIDENCE},
            False,
            {
                "id": "p",
                "response_a": "y",
                "response_b": "x",
                "label": "b",
                "evidence": {
                    "rows": [{**ROW, "a": "3.9", "b": "6.0"}],
                    "n_exemplars": 2,
                    "by_count": {"1": [{**ROW, "exemplars": "2.0", "a": "3.9", "b": "6.0"}]},
                },
            },
        ),
    ],
)
def test_swap_pair(pair: dict, suffix: bool, expected: dict) -> None:
    before = json.dumps(pair, sort_keys=True)
    assert swap_pair(pair, suffix=suffix) == expected
    assert json.dumps(pair, sort_keys=True) == before  # the input is not changed
    if not suffix:
        assert swap_pair(swap_pair(pair)) == pair  # swapping twice gives the pair back


@pytest.mark.parametrize(
    ("pair", "suffix", "message"),
    [
        (
            {"id": "p", "response_a": "x", "response_b": "y", "label": "c"},
            False,
            "pair 'p': field 'label' must be 'a' or 'b' to swap, got 'c'",
        ),
        ({"response_a": "x", "response_b": "y"}, True, "a pair without an id cannot be given a swapped id"),
    ],
)
def test_swap_pair_bad_input(pair: dict, suffix: bool, message: str) -> None:
    with pytest.raises(PairFormatError) as info:
        swap_pair(pair, suffix=suffix)
    assert str(info.value) == message
