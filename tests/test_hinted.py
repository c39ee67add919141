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
from persrm_lib.core.verdict import read_verdict
from persrm_lib.data.evidence import attach_to_splits, uncited_numbers
from persrm_lib.teachers import hinted
from persrm_lib.teachers.base import Teacher, TeacherResponseError
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
    supported = [(p, t) for p, t in wrong if teacher.can_hint(p)]
    assert supported, "the real pairs must include wrong ones the teacher can support"
    for pair, trace in wrong:
        text = teacher.judge_hinted(pair)
        if not teacher.can_hint(pair):  # nothing measured favours the label: the blind trace, unchanged
            assert text == trace["completion"]
            continue
        parsed, before = parse_output(text), parse_output(trace["completion"])
        assert parsed.ok and read_verdict(text).preferred == pair["label"]
        # the same criteria and measurements; only the conclusion and the scores change
        assert parsed.criteria == before.criteria
        assert parsed.evaluation.splitlines()[:-1] == before.evaluation.splitlines()[:-1]
        side = pair["label"].upper()
        assert f"{side} is closer to the" in parsed.evaluation.splitlines()[-1]
        high, low = max(before.scores), min(before.scores)
        if high > low:
            assert sorted(parsed.scores) == [low, high]
        else:  # a blind tie is split by half a point
            assert abs(parsed.scores[0] - parsed.scores[1]) == 0.5
        # the conclusion names criteria as the trace named them
        last, cited = parsed.evaluation.splitlines()[-1], "\n".join(parsed.evaluation.splitlines()[:-1])
        named = last.split("(", 1)[1].rsplit(")", 1)[0].split("; ") if not compact else last.split(" is closer on ")[1]
        if compact:
            named = named.split("; weighing")[0].replace(" and ", ", ").split(", ")
        assert named and all(name in cited for name in named), (named, cited)
        # the swapped copy of a hinted trace is what the teacher writes for the swapped pair
        swapped = swap_trace({**trace, "completion": text})
        assert swapped["completion"] == teacher.judge_hinted({**swapped, "id": pair["id"]})


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
        assert swapped["hinted"] is True and read_verdict(swapped["completion"]).preferred == swapped["label"]
        # the swapped copy is what the teacher writes for the swapped pair
        assert swapped["completion"] == teacher.judge_hinted({**swapped, "id": trace["id"]})


def test_hint_budget_caps_the_share_of_the_sft_set() -> None:
    for n_faithful in range(0, 60):
        for share in (0.0, 0.1, 0.25, 1 / 3, 0.5, 0.9):
            h = hinted.hint_budget(n_faithful, share)
            assert h >= 0 and h * (1 - share) <= share * n_faithful + 1e-9  # h / (f + h) <= share
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


def test_select_for_hint_reads_faithfulness_as_the_filter_does() -> None:
    traces = _traces([True, True, False, False])
    # a right answer behind a <think> block: 02 keeps it with strip_think, so it is not rewritten and
    # counts in the budget
    traces[2]["completion"] = "<think>A.</think>\n" + render_output("c", "A 1, B 2; A.", (7, 3))
    assert [p["id"] for p in hinted.select_for_hint(traces, 0.5)] == ["p2", "p3"]
    assert [p["id"] for p in hinted.select_for_hint(traces, 0.5, strip_think=True)] == ["p3"]
    # pairs the teacher cannot support are skipped, and the budget goes to the next
    assert [p["id"] for p in hinted.select_for_hint(traces, 0.5, can_hint=lambda p: p["id"] != "p2")] == ["p3"]


def test_make_trace_refuses_a_tag_that_would_overwrite_a_field() -> None:
    pair = _traces([True])[0]
    with pytest.raises(ValueError, match="tag\\(s\\) faithful would overwrite a field of trace 'p0'"):
        make_trace(pair, "t", pair["completion"], {"faithful": False})


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
    selected = hinted.select_for_hint(traces, 0.5, can_hint=teacher.can_hint)
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


def test_a_rerun_keeps_the_rewrites_still_selected_and_asks_only_for_the_rest(
    tmp_path: Path, pairs: list[dict[str, Any]]
) -> None:
    teacher = _Recorder()
    generate_traces(pairs, teacher, tmp_path / "traces.jsonl")
    traces = read_traces(tmp_path / "traces.jsonl")
    out = tmp_path / "traces_hinted.jsonl"
    # a cap too small for any rewrite: an empty file; then a larger cap over it
    assert hinted.generate_hinted_traces(traces, teacher, out, 0.01, fit_pairs=pairs).n_pairs == 0
    assert out.read_bytes() == b""
    wide = hinted.generate_hinted_traces(traces, teacher, out, 0.5, fit_pairs=pairs)
    assert wide.n_pairs == wide.n_new >= 2
    full = hinted.read_hinted_traces(out)
    # a smaller cap: the first rewrites are kept, none is asked for again
    calls = len(teacher.hinted_ids)
    narrow = hinted.generate_hinted_traces(traces, teacher, out, 0.2, fit_pairs=pairs)
    assert (narrow.n_new, len(teacher.hinted_ids)) == (0, calls)
    assert hinted.read_hinted_traces(out) == full[: narrow.n_pairs]
    # blind traces of other pairs (a changed label): their old rewrites are dropped and redone
    relabelled = [{**t, "label": "b" if t["label"] == "a" else "a"} for t in traces]
    again = hinted.generate_hinted_traces(relabelled, teacher, out, 0.2, fit_pairs=pairs)
    ids = {t["id"] for t in hinted.read_hinted_traces(out)}
    assert again.n_resumed == 0 and again.n_new == again.n_pairs == len(ids)


class _Flaky(_Recorder):
    """Gives no rewrite for one pair, as an endpoint can (e.g. a prompt the hint made too long)."""

    refuse = "p1"

    def judge_hinted(self, pair: Any) -> str:
        if pair["id"] == self.refuse:
            raise TeacherResponseError(f"pair {pair['id']!r}: prompt too long", kind="too_long")
        return super().judge_hinted(pair)


def test_a_rewrite_the_teacher_cannot_give_does_not_block_the_pass(tmp_path: Path, pairs: list[dict[str, Any]]) -> None:
    teacher = _Flaky()
    generate_traces(pairs, teacher, tmp_path / "traces.jsonl")
    traces = read_traces(tmp_path / "traces.jsonl")
    selected = [p["id"] for p in hinted.select_for_hint(traces, 0.5, can_hint=teacher.can_hint)]
    teacher.refuse = selected[0]
    out = tmp_path / "traces_hinted.jsonl"
    report = hinted.generate_hinted_traces(traces, teacher, out, 0.5, fit_pairs=pairs)
    assert report.failures == {"too_long": 1} and report.n_pairs == len(selected)
    assert [t["id"] for t in hinted.read_hinted_traces(out)] == selected[1:]
    assert not partial_path(out).exists()
    # a rerun asks again for the missing one only
    teacher.refuse = "none"
    calls = len(teacher.hinted_ids)
    again = hinted.generate_hinted_traces(traces, teacher, out, 0.5, fit_pairs=pairs)
    assert (again.n_resumed, again.n_new, again.failures) == (len(selected) - 1, 1, {})
    assert teacher.hinted_ids[calls:] == [selected[0]]
    assert [t["id"] for t in hinted.read_hinted_traces(out)] == selected


def test_nothing_to_hint_writes_an_empty_file(tmp_path: Path) -> None:
    out = tmp_path / "traces_hinted.jsonl"
    report = hinted.generate_hinted_traces(_traces([True, True]), StylometricTeacher(), out, 0.3, fit_pairs=[])
    assert report.n_pairs == 0 and out.read_bytes() == b"" and hinted.read_hinted_traces(out) == []
    with pytest.raises(FileNotFoundError, match=r"run 01_synthesize with teacher.hinted_share > 0 first"):
        hinted.read_hinted_traces(tmp_path / "missing.jsonl")
    (tmp_path / "untagged.jsonl").write_text(json.dumps(_traces([False])[0]) + "\n")
    with pytest.raises(ValueError, match="untagged.jsonl: trace 'p0' is not tagged hinted: true"):
        hinted.read_hinted_traces(tmp_path / "untagged.jsonl")


def test_a_teacher_without_a_hinted_pass_says_so_before_touching_files(tmp_path: Path) -> None:
    class Blind(Teacher):
        name = "blind"

        def judge(self, pair: Any) -> str:
            return render_output("c", "e", (6, 4))

    assert not Blind().has_hinted_pass() and StylometricTeacher().has_hinted_pass()
    with pytest.raises(NotImplementedError, match="teacher 'blind' has no hinted pass"):
        hinted.generate_hinted_traces(_traces([True, True, False]), Blind(), tmp_path / "h.jsonl", 0.5, fit_pairs=[])
    assert list(tmp_path.iterdir()) == []


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
        ([{**_rewrite(traces[1], (8, 2)), "hinted": False}], "hinted trace 0 \\(id 'p1'\\) is not tagged hinted: true"),
        ([{**_rewrite(traces[1], (8, 2)), "id": "p9"}], "hinted trace 0 \\(id 'p9'\\) has no blind trace"),
        ([_rewrite(traces[0], (8, 2))], "hinted trace 0 \\(id 'p0'\\) rewrites a trace the filter keeps"),
        ([_rewrite(traces[1], (8, 2))] * 2, "hinted trace 1 \\(id 'p1'\\) repeats an id"),
        ([{**_rewrite(traces[1], (8, 2)), "label": "b"}], "disagrees with its blind trace on 'label'"),
    ]
    for rewrites, message in cases:
        with pytest.raises(ValueError, match=message):
            merge_hinted(blind, rewrites, 0.5)
    with pytest.raises(KeyError, match="hinted trace 0 \\(id 'p1'\\) lacks field\\(s\\): negative_kind"):
        merge_hinted(blind, [{k: v for k, v in _rewrite(traces[1], (8, 2)).items() if k != "negative_kind"}], 0.5)
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
        with pytest.raises(ValueError, match=r"teacher.hinted_share must be a finite number in \[0, 1\)"):
            get_profile("smoke", {"teacher.hinted_share": bad})
