"""RM-R1's hinted second pass (issue 12, item 4): the teacher rewrites, knowing the label, the
traces it got wrong; the rewrites are tagged, filtered like any trace, and capped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from real_pairs import real_pairs

from persrm_lib.core.config import get_profile
from persrm_lib.core.output_format import parse_output, render_output
from persrm_lib.core.prompt import build_messages
from persrm_lib.data.evidence import attach_to_splits, uncited_numbers
from persrm_lib.teachers import hinted
from persrm_lib.teachers.base import Teacher
from persrm_lib.teachers.filtering import faithfulness_filter, merge_hinted
from persrm_lib.teachers.llm import HINT, LLMTeacher
from persrm_lib.teachers.stylometric import StylometricTeacher
from persrm_lib.teachers.swap import swap_trace
from persrm_lib.teachers.traces import generate_traces, make_trace, partial_path, read_traces


def _blind(pairs: list[dict[str, Any]], teacher: StylometricTeacher) -> list[dict[str, Any]]:
    teacher.prepare(pairs)
    return [make_trace(p, teacher.name, teacher.judge(p)) for p in pairs]


@pytest.fixture(scope="module")
def pairs() -> list[dict[str, Any]]:
    return [{**p, "positive_kind": "intra_author", "negative_kind": "cross_author"} for p in real_pairs()]


@pytest.mark.parametrize("compact", [False, True])
def test_stylometric_hinted_trace_keeps_the_measurements_and_concludes_for_the_label(
    pairs: list[dict[str, Any]], compact: bool
) -> None:
    teacher = StylometricTeacher(compact=compact)
    blind = _blind(pairs, teacher)
    wrong = [(p, t) for p, t in zip(pairs, blind, strict=True) if not t["faithful"]]
    assert wrong, "the real pairs must include some the blind teacher gets wrong"
    n_rewritten = 0
    for pair, trace in wrong:
        text = teacher.judge_hinted(pair)
        if text == trace["completion"]:  # no measured criterion favours the label: the blind trace, unchanged
            continue
        n_rewritten += 1
        parsed, before = parse_output(text), parse_output(trace["completion"])
        assert parsed.ok and parsed.preferred == pair["label"]
        # the same criteria and measurements; only the conclusion and the scores change
        assert parsed.criteria == before.criteria
        assert parsed.evaluation.splitlines()[:-1] == before.evaluation.splitlines()[:-1]
        side = pair["label"].upper()
        assert f"{side} is closer to the" in parsed.evaluation.splitlines()[-1]
        assert sorted(parsed.scores) == sorted(before.scores) or before.scores[0] == before.scores[1]
    assert n_rewritten > 0


def test_stylometric_hinted_falls_back_to_the_blind_trace_without_support(pairs: list[dict[str, Any]]) -> None:
    teacher = StylometricTeacher(compact=True)
    teacher.prepare(pairs)
    pair = pairs[0]
    for label in ("a", "b"):
        rows = teacher._compact_rows(*teacher._top({**pair, "label": label})[:4])
        if not any(row["closer"] == label.upper() for row in rows):
            assert teacher.judge_hinted({**pair, "label": label}) == teacher.judge(pair)
    # a pair where A wins every criterion: hinting B has nothing to cite
    same = {**pair, "response_a": pair["exemplars"][0], "label": "b"}
    rows = teacher._compact_rows(*teacher._top(same)[:4])
    assert not any(row["closer"] == "B" for row in rows)
    assert teacher.judge_hinted(same) == teacher.judge(same)
    with pytest.raises(KeyError):
        teacher.judge_hinted({k: v for k, v in pair.items() if k != "label"})


def test_hinted_compact_traces_cite_only_the_evidence_table_and_swap_back(pairs: list[dict[str, Any]]) -> None:
    with_evidence = attach_to_splits({"train": pairs}, StylometricTeacher(compact=True))["train"]
    teacher = StylometricTeacher(compact=True)
    blind = _blind(with_evidence, teacher)
    wrong = [p for p, t in zip(with_evidence, blind, strict=True) if not t["faithful"]]
    written = [make_trace(p, "stylometric+hint", teacher.judge_hinted(p), {"hinted": True}) for p in wrong]
    result = faithfulness_filter(written)
    assert result.n_uncited == 0 and result.kept
    for trace in result.kept:
        assert uncited_numbers(parse_output(trace["completion"]).evaluation, trace) == []
        swapped = swap_trace(trace)
        assert swapped["hinted"] is True and parse_output(swapped["completion"]).preferred == swapped["label"]
        # the swapped copy is what the teacher writes for the swapped pair
        assert swapped["completion"] == teacher.judge_hinted({**swapped, "id": trace["id"]})


def test_hint_budget_caps_the_share_of_the_sft_set() -> None:
    for n_faithful in range(0, 60):
        for share in (0.0, 0.1, 0.25, 1 / 3, 0.5, 0.9):
            h = hinted.hint_budget(n_faithful, share)
            assert h / (n_faithful + h) <= share + 1e-12 if h else h == 0
            assert (h + 1) / (n_faithful + h + 1) > share  # and one more would exceed it
    for bad in (-0.1, 1.0, 1.5, True, "0.2"):
        with pytest.raises(ValueError, match=r"teacher.hinted_share must be a number in \[0, 1\)"):
            hinted.hint_budget(10, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_faithful"):
        hinted.hint_budget(-1, 0.2)


def _traces(faithful: list[bool]) -> list[dict[str, Any]]:
    out = []
    for i, ok in enumerate(faithful):
        scores = (7, 3) if ok else (3, 7)
        out.append(
            {
                "id": f"p{i}",
                "query": "Q",
                "exemplars": ["e"],
                "response_a": f"a{i}",
                "response_b": f"b{i}",
                "label": "a",
                "positive_kind": "intra_author",
                "negative_kind": "random",
                "teacher": "t",
                "completion": render_output("c", "A 1, B 2; A.", scores),
                "scores": list(scores),
                "faithful": ok,
            }
        )
    return out


def test_select_for_hint_takes_the_first_wrong_traces_up_to_the_budget() -> None:
    traces = _traces([True, False, True, False, True, False, True, False])
    picked = hinted.select_for_hint(traces, 0.5)  # 4 faithful -> at most 4 hinted
    assert [p["id"] for p in picked] == ["p1", "p3", "p5", "p7"]
    assert not {"teacher", "completion", "scores", "faithful"} & set(picked[0])
    assert [p["id"] for p in hinted.select_for_hint(traces, 0.25)] == ["p1"]  # floor(0.25 * 4 / 0.75) = 1
    assert hinted.select_for_hint(traces, 0.0) == []
    with pytest.raises(ValueError, match="'p0' is a hinted one"):
        hinted.select_for_hint([{**traces[0], "hinted": True}], 0.5)


class _Recorder(StylometricTeacher):
    def __init__(self) -> None:
        super().__init__(compact=True)
        self.prepared: list[int] = []
        self.hinted_ids: list[str] = []

    def prepare(self, pairs: Any) -> None:
        self.prepared.append(len(pairs))
        super().prepare(pairs)

    def judge_hinted(self, pair: Any) -> str:
        self.hinted_ids.append(pair["id"])
        return super().judge_hinted(pair)


def test_generate_hinted_traces_writes_tagged_traces_resumably(tmp_path: Path, pairs: list[dict[str, Any]]) -> None:
    teacher = _Recorder()
    generate_traces(pairs, teacher, tmp_path / "traces.jsonl")
    traces = read_traces(tmp_path / "traces.jsonl")
    out = tmp_path / "traces_hinted.jsonl"
    report = hinted.generate_hinted_traces(traces, teacher, out, 0.5, fit_pairs=pairs)
    selected = hinted.select_for_hint(traces, 0.5)
    written = hinted.read_hinted_traces(out)
    assert report.n_pairs == report.n_new == len(selected) == len(written) > 0
    assert [t["id"] for t in written] == [p["id"] for p in selected]
    assert all(t["hinted"] is True and t["teacher"] == "stylometric+hint" for t in written)
    assert teacher.prepared[-1] == len(pairs)  # fitted on every traced pair, as the blind pass was
    # a rerun judges nothing again, and the bytes do not change
    before, calls = out.read_bytes(), len(teacher.hinted_ids)
    again = hinted.generate_hinted_traces(traces, teacher, out, 0.5, fit_pairs=pairs)
    assert (again.n_resumed, again.n_new, out.read_bytes(), len(teacher.hinted_ids)) == (
        len(selected),
        0,
        before,
        calls,
    )
    # an interrupted pass resumes from its .partial file
    out.unlink()
    partial_path(out).write_text(json.dumps(written[0]) + "\n")
    resumed = hinted.generate_hinted_traces(traces, teacher, out, 0.5, fit_pairs=pairs)
    assert (resumed.n_resumed, resumed.n_new) == (1, len(selected) - 1) and out.read_bytes() == before


def test_nothing_to_hint_writes_an_empty_file(tmp_path: Path) -> None:
    out = tmp_path / "traces_hinted.jsonl"
    report = hinted.generate_hinted_traces(_traces([True, True]), StylometricTeacher(), out, 0.3, fit_pairs=[])
    assert report.n_pairs == 0 and out.read_bytes() == b"" and hinted.read_hinted_traces(out) == []
    with pytest.raises(FileNotFoundError, match=r"run 01_synthesize with teacher.hinted_share > 0 first"):
        hinted.read_hinted_traces(tmp_path / "missing.jsonl")
    (tmp_path / "untagged.jsonl").write_text(json.dumps(_traces([False])[0]) + "\n")
    with pytest.raises(ValueError, match="untagged.jsonl: trace 'p0' is not tagged hinted: true"):
        hinted.read_hinted_traces(tmp_path / "untagged.jsonl")


def test_a_teacher_without_a_hinted_pass_says_so() -> None:
    class Blind(Teacher):
        name = "blind"

        def judge(self, pair: Any) -> str:
            return render_output("c", "e", (6, 4))

    with pytest.raises(NotImplementedError, match="teacher 'blind' has no hinted pass"):
        hinted.generate_hinted_traces(_traces([True, True, False]), Blind(), Path("unused.jsonl"), 0.5, fit_pairs=[])


def _rewrite(trace: dict[str, Any], scores: tuple[float, float]) -> dict[str, Any]:
    record = {k: v for k, v in trace.items() if k not in ("scores", "faithful")}
    return {**record, "teacher": "t+hint", "hinted": True, "completion": render_output("c", "A 1, B 2; A.", scores)}


def test_merge_hinted_adds_faithful_rewrites_in_order_up_to_the_cap() -> None:
    traces = _traces([True, False, True, False, True, False, False])
    blind = faithfulness_filter(traces)
    rewrites = [_rewrite(traces[i], (8, 2)) for i in (1, 3, 5)] + [_rewrite(traces[6], (2, 8))]  # p6 stays wrong
    merged = merge_hinted(blind, rewrites, 0.4)  # 3 faithful blind -> at most floor(0.4 * 3 / 0.6) = 2
    assert [(t["id"], bool(t.get("hinted"))) for t in merged.kept] == [
        ("p0", False),
        ("p1", True),
        ("p2", False),
        ("p3", True),
        ("p4", False),
    ]
    assert (merged.n_hinted_written, merged.n_hinted_kept, merged.n_hinted_over_cap) == (4, 2, 1)
    assert merged.hinted_share == pytest.approx(2 / 5)
    assert merged.outcomes == blind.outcomes and merged.kept_fraction == blind.kept_fraction == 3 / 7
    assert "t+hint" in set(merged.by_strategy["teacher"])
    # no rewrites: the blind result unchanged
    assert merge_hinted(blind, [], 0.4) is blind


def test_merge_hinted_refuses_rewrites_that_do_not_belong() -> None:
    traces = _traces([True, False])
    blind = faithfulness_filter(traces)
    cases = [
        ({**_rewrite(traces[1], (8, 2)), "hinted": False}, "'p1' is not tagged hinted: true"),
        ({**_rewrite(traces[1], (8, 2)), "id": "p9"}, "'p9' has no blind trace"),
        (_rewrite(traces[0], (8, 2)), "'p0' rewrites a faithful blind trace"),
    ]
    for rewrite, message in cases:
        with pytest.raises(ValueError, match=message):
            merge_hinted(blind, [rewrite], 0.5)
    with pytest.raises(ValueError, match=r"teacher.hinted_share must be a number in \[0, 1\)"):
        merge_hinted(blind, [], 1.0)


class _Client:
    def __init__(self) -> None:
        self.seen: list[list[dict[str, str]]] = []

    def complete(self, messages: list[dict[str, str]]) -> str:
        self.seen.append(messages)
        return render_output("c", "e", (3, 8))

    def complete_batch(self, conversations: Any) -> list[str]:
        return [self.complete(m) for m in conversations]


def test_llm_teacher_hinted_request_names_the_labelled_response(pairs: list[dict[str, Any]]) -> None:
    client = _Client()
    teacher = LLMTeacher(client, "plain")
    pair = pairs[1]  # label b
    assert teacher.judge_hinted(pair) == render_output("c", "e", (3, 8))
    plain = build_messages(pair, 1)
    sent = client.seen[-1]
    assert sent[:-1] == plain[:-1]
    assert sent[-1]["content"] == plain[-1]["content"] + "\n\n" + HINT.format(side="B")
    assert "wrote Response B" in sent[-1]["content"]
    teacher.judge(pair)
    assert client.seen[-1] == plain  # the blind request carries no hint
    results = dict(teacher.judge_each_hinted(pairs[:3]))
    assert sorted(results) == [0, 1, 2]


def test_profile_setting_hinted_share() -> None:
    assert get_profile("smoke").teacher.hinted_share == 0.0  # off unless asked for
    assert get_profile("smoke", {"teacher.hinted_share": 0.25}).teacher.hinted_share == 0.25
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"teacher.hinted_share must be in \[0, 1\)"):
            get_profile("smoke", {"teacher.hinted_share": bad})
