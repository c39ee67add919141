"""The faithfulness filter (PersRM-R1, arXiv 2508.14076, §3.2) and the audit of what the kept traces
would teach (notebook 02_filter_audit): counts, lengths, position balance, style separability.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.jsonl import write_jsonl_atomic
from ..core.output_format import parse_output
from ..core.output_format import strip_think as strip_leading_think
from ..core.verdict import CORRECT, LABELS, exemplars_of, read_verdict
from ..data.evidence import has_evidence, uncited_numbers
from ..data.stylometry import SCALAR_FEATURES, feature_matrix, words

TRACE_REQUIRED = ("id", "label", "completion", "teacher", "positive_kind", "negative_kind")
STRATEGY = ("teacher", "positive_kind", "negative_kind")


def reason_category(reason: str) -> str:
    """Group a parser reason by kind: quoted details and the offending number are dropped
    (``score '11' is not a number`` -> ``score … is not a number``)."""
    reason = reason.split(", got ")[0]
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "…", reason)
    return re.sub(r"^score \S+ is", "score … is", reason)


@dataclass(frozen=True)
class FilterResult:
    """The outcome of :func:`faithfulness_filter`."""

    traces: list[dict[str, Any]]  # every trace, with ``scores`` and ``faithful`` set
    kept: list[dict[str, Any]]  # the faithful ones, in input order
    by_strategy: pd.DataFrame  # per teacher x positive_kind x negative_kind
    parse_failures: dict[str, int] = field(default_factory=dict)  # reason category -> count
    n_stripped: int = 0  # completions whose leading <think> block was stripped (teacher.strip_think)
    n_uncited: int = 0  # faithful by the label, dropped for citing a number their evidence table lacks
    # RM-R1's hinted second pass (merge_hinted): rewrites read, kept in ``kept``, dropped by the cap
    n_hinted_written: int = 0
    n_hinted_kept: int = 0
    n_hinted_over_cap: int = 0

    @property
    def kept_fraction(self) -> float:
        """The share of blind traces kept (hinted rewrites not counted)."""
        return (len(self.kept) - self.n_hinted_kept) / len(self.traces)

    @property
    def hinted_share(self) -> float:
        """The share of ``kept`` that hinted rewrites make up (0 without them)."""
        return self.n_hinted_kept / len(self.kept) if self.kept else 0.0

    @property
    def outcomes(self) -> dict[str, int]:
        """Blind traces per outcome (faithful, unfaithful, uncited, unparsed); each in exactly one."""
        unparsed = sum(self.parse_failures.values())
        faithful = len(self.kept) - self.n_hinted_kept
        return {
            "faithful": faithful,
            "unfaithful": len(self.traces) - faithful - self.n_uncited - unparsed,
            "uncited": self.n_uncited,
            "unparsed": unparsed,
        }


def _check_trace(trace: Any, i: int, what: str = "trace") -> None:
    """TypeError, KeyError or ValueError naming trace ``i`` when it is not a labelled trace record."""
    if not isinstance(trace, Mapping):
        raise TypeError(f"{what} {i} is a {type(trace).__name__}, not a mapping")
    missing = [name for name in TRACE_REQUIRED if name not in trace]
    if missing:
        raise KeyError(f"{what} {i} (id {trace.get('id', '?')!r}) lacks field(s): {', '.join(missing)}")
    if trace["label"] not in LABELS:
        raise ValueError(f"{what} {i} (id {trace['id']!r}): label must be 'a' or 'b', got {trace['label']!r}")


def faithfulness_filter(traces: Sequence[Mapping[str, Any]], strip_think: bool = False) -> FilterResult:
    """Keep the traces whose scores put the labelled response strictly higher (paper §3.2) and,
    when the pair carries evidence, whose ``<eval>`` cites only numbers of its table.

    Each trace (a pair plus ``teacher`` and ``completion``; ``scores`` and ``faithful`` are
    recomputed) gets one outcome, checked in order: ``unparsed``, ``unfaithful`` (wrong or tied
    scores), ``uncited`` (right scores, a number the table lacks; the numbers go in its ``uncited``
    field), else ``faithful``. With ``strip_think`` ONE leading ``<think>…</think>`` block is
    stripped first (counted in ``n_stripped``). ``by_strategy`` has ``teacher, positive_kind,
    negative_kind, n, kept, unfaithful, uncited, unparsed, kept_fraction``.

    Raises ValueError for an empty trace set or a label other than ``a``/``b``, KeyError for a
    missing field (naming the trace and the field), EvidenceError for a malformed evidence record.
    """
    if len(traces) == 0:
        raise ValueError("faithfulness_filter got an empty trace set: generate traces first (notebook 01)")
    out: list[dict[str, Any]] = []
    failures: Counter[str] = Counter()
    rows = []
    n_stripped = 0
    for i, trace in enumerate(traces):
        _check_trace(trace, i)
        record = dict(trace)
        if strip_think:
            rest, stripped = strip_leading_think(trace["completion"])
            if stripped:  # the answer alone, as a teacher's completion is written (stripped)
                record["completion"] = str(rest).lstrip()
                n_stripped += 1
        verdict = read_verdict(record["completion"])
        if verdict.reason is not None:
            failures[reason_category(verdict.reason)] += 1
        faithful, uncited = verdict.outcome(trace["label"]) == CORRECT, False
        if has_evidence(trace):
            evaluation = parse_output(record["completion"]).evaluation if verdict.format_ok else None
            record["uncited"] = uncited_numbers(evaluation or "", trace)
            uncited = faithful and bool(record["uncited"])
            faithful = faithful and not uncited
        record["scores"], record["faithful"] = verdict.scores, faithful
        out.append(record)
        rows.append((*(str(trace[k]) for k in STRATEGY), faithful, uncited, not verdict.format_ok))
    frame = pd.DataFrame(rows, columns=[*STRATEGY, "faithful", "uncited", "unparsed"])
    table = _kept_table(frame, list(STRATEGY), ("uncited", "unparsed"))
    table["unfaithful"] = table["n"] - table["kept"] - table["uncited"] - table["unparsed"]
    table = table[[*STRATEGY, "n", "kept", "unfaithful", "uncited", "unparsed", "kept_fraction"]]
    kept = [r for r in out if r["faithful"]]
    return FilterResult(out, kept, table, dict(sorted(failures.items())), n_stripped, int(frame["uncited"].sum()))


HINTED_FIELD = "hinted"  # the tag every hinted trace carries (True)


def check_share(max_share: float) -> float:
    """``max_share`` if it is a share in [0, 1), else ValueError naming it."""
    if isinstance(max_share, bool) or not isinstance(max_share, int | float) or not 0.0 <= max_share < 1.0:
        raise ValueError(f"teacher.hinted_share must be a number in [0, 1), got {max_share!r}")
    return float(max_share)


def hint_budget(n_faithful: int, max_share: float) -> int:
    """The most hinted traces that keep their share of the SFT set at or below ``max_share``:
    ``floor(max_share * n_faithful / (1 - max_share))`` (e.g. 36 for 108 and 0.25).
    """
    check_share(max_share)
    if n_faithful < 0:
        raise ValueError(f"n_faithful must be at least 0, got {n_faithful}")
    return math.floor(max_share * n_faithful / (1.0 - max_share) + 1e-9)


def is_hinted(trace: Mapping[str, Any]) -> bool:
    """Whether a trace came from the hinted pass."""
    return bool(trace.get(HINTED_FIELD))


def merge_hinted(
    result: FilterResult, hinted_traces: Sequence[Mapping[str, Any]], max_share: float, strip_think: bool = False
) -> FilterResult:
    """Filter the hinted rewrites (RM-R1's second pass, :mod:`persrm_lib.teachers.hinted`) with
    :func:`faithfulness_filter` and add the faithful ones to ``kept``, capped.

    ``kept`` holds, in blind-trace order, each pair's faithful blind trace or else its faithful
    hinted one, at most :func:`hint_budget` hinted ones (the first in order). ``traces``,
    ``outcomes`` and ``kept_fraction`` still describe the blind pass; ``by_strategy`` gains the
    hinted rows (teacher ``<teacher>+hint``). ValueError for ``max_share`` outside [0, 1) or a
    hinted trace that is untagged, repeated, without or disagreeing with its blind trace, or whose
    blind trace was faithful (naming the id).
    """
    check_share(max_share)
    blind = {t["id"]: t for t in result.traces}
    seen: set[Any] = set()
    for i, t in enumerate(hinted_traces):
        _check_trace(t, i, "hinted trace")
        where = f"hinted trace {i} (id {t['id']!r})"
        if not is_hinted(t):
            raise ValueError(f"{where} is not tagged hinted: true")
        if t["id"] in seen:
            raise ValueError(f"{where} repeats an id: each wrong trace is rewritten at most once")
        seen.add(t["id"])
        if t["id"] not in blind:
            raise ValueError(f"{where} has no blind trace: the two files come from different runs")
        name = pair_mismatch(t, blind[t["id"]])
        if name is not None:
            raise ValueError(
                f"{where} disagrees with its blind trace on {name!r}: the two files come from different runs"
            )
        if blind[t["id"]]["faithful"]:
            raise ValueError(
                f"{where} rewrites a trace the filter keeps; only the ones it drops are hinted (was "
                "teacher.strip_think or the evidence changed after 01_synthesize?)"
            )
    if not hinted_traces:
        return result
    hinted = faithfulness_filter(hinted_traces, strip_think=strip_think)
    budget = hint_budget(len(result.kept) - result.n_hinted_kept, max_share)
    faithful_hinted = {t["id"]: t for t in hinted.kept}
    candidates = [t["id"] for t in result.traces if not t["faithful"] and t["id"] in faithful_hinted]
    allowed = set(candidates[:budget])
    kept = [
        t if t["faithful"] else faithful_hinted[t["id"]] for t in result.traces if t["faithful"] or t["id"] in allowed
    ]
    return dataclasses.replace(
        result,
        kept=kept,
        by_strategy=pd.concat([result.by_strategy, hinted.by_strategy], ignore_index=True),
        n_hinted_written=len(hinted.traces),
        n_hinted_kept=len(allowed),
        n_hinted_over_cap=len(candidates) - len(allowed),
    )


def chosen_rejected(pair: Mapping[str, Any]) -> tuple[str, str]:
    """The (chosen, rejected) texts of a pair, by its label."""
    if pair["label"] == "a":
        return pair["response_a"], pair["response_b"]
    return pair["response_b"], pair["response_a"]


def length_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per response: pair ``id``, ``negative_kind``, ``role`` (chosen/rejected), ``words``."""
    rows = [
        (r["id"], str(r.get("negative_kind")), role, len(words(text)))
        for r in records
        for role, text in zip(("chosen", "rejected"), chosen_rejected(r), strict=True)
    ]
    return pd.DataFrame(rows, columns=["id", "negative_kind", "role", "words"])


def chosen_longer_share(records: Sequence[Mapping[str, Any]]) -> float:
    """Share of pairs whose chosen response has more words than the rejected one (ties count
    half): the AUC of "pick the longer response"; 0.5 means length does not give the label away."""
    if not records:
        raise ValueError("chosen_longer_share got no records")
    chosen, rejected = np.array([[len(words(text)) for text in chosen_rejected(r)] for r in records]).T
    return float(np.mean((np.sign(chosen - rejected) + 1) / 2))


def position_balance(records: Sequence[Mapping[str, Any]], by: str = "negative_kind") -> pd.DataFrame:
    """Share of pairs whose chosen response is A, per value of ``by`` and overall, with a
    two-sided exact binomial p-value against 0.5 (a small p-value: the position leaks the label)."""
    from scipy.stats import binomtest

    if not records:
        raise ValueError("position_balance got no records")
    frame = pd.DataFrame({by: [str(r.get(by)) for r in records], "is_a": [r["label"] == "a" for r in records]})
    rows = []
    for key, group in [*frame.groupby(by, sort=True), ("all", frame)]:
        n, k = len(group), int(group["is_a"].sum())
        rows.append(
            {by: str(key), "n": n, "label_a": k, "share_a": k / n, "p_value": float(binomtest(k, n, 0.5).pvalue)}
        )
    return pd.DataFrame(rows)


def style_differences(records: Sequence[Mapping[str, Any]], relative_to_exemplars: bool = False) -> np.ndarray:
    """Per pair, style features of the chosen response minus those of the rejected one: a
    ``(len(records), len(SCALAR_FEATURES))`` array. With ``relative_to_exemplars``, each response is
    first replaced by its absolute distance to the mean of the pair's exemplars (feature by
    feature): which response is closer to the author, not how chosen texts differ in general.
    """
    names = tuple(SCALAR_FEATURES)
    rows = []
    for r in records:
        m = feature_matrix(list(chosen_rejected(r)), names)
        if relative_to_exemplars:
            m = np.abs(m - feature_matrix(exemplars_of(r), names).mean(axis=0))
        rows.append(m[0] - m[1])
    return np.array(rows, dtype=float).reshape(len(rows), len(names))


def separability_auc(differences: np.ndarray, n_splits: int = 5, seed: int = 0) -> float:
    """Cross-validated ROC AUC (scikit-learn) of a logistic regression without intercept telling
    chosen from rejected: each pair of ``differences`` (``(n_pairs, n_features)``) gives ``d``
    (class 1) and ``-d`` (class 0) in one fold (GroupKFold). 0.5: style does not separate them.
    ValueError for fewer pairs than ``n_splits`` or fewer than 2 folds.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = len(differences)
    if n_splits < 2:
        raise ValueError(f"separability_auc needs n_splits >= 2, got {n_splits}")
    if n < n_splits:
        raise ValueError(f"separability_auc needs at least {n_splits} pairs (one per fold), got {n}")
    x = np.vstack([differences, -differences])
    y = np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)]
    groups = np.r_[np.arange(n), np.arange(n)]
    model = make_pipeline(
        StandardScaler(with_mean=False),
        LogisticRegression(fit_intercept=False, C=1.0, max_iter=1000, random_state=seed),
    )
    scores = cross_val_predict(model, x, y, groups=groups, cv=GroupKFold(n_splits=n_splits), method="decision_function")
    return float(roc_auc_score(y, scores))


PAIR_CHECK_FIELDS = ("label", "response_a", "response_b", "exemplars")


def pair_mismatch(trace: Mapping[str, Any], pair: Mapping[str, Any]) -> str | None:
    """The first of :data:`PAIR_CHECK_FIELDS` on which ``trace`` and ``pair`` differ; None when they agree."""
    return next((name for name in PAIR_CHECK_FIELDS if trace.get(name) != pair.get(name)), None)


def check_against_pairs(traces: Sequence[Mapping[str, Any]], pairs: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Check that each trace belongs to a pair of ``pairs`` and agrees with it (else ValueError
    naming the id and the field); the ids of pairs without a trace (in pair order)."""
    by_id = {p["id"]: p for p in pairs}
    for trace in traces:
        pair = by_id.get(trace.get("id"))
        if pair is None:
            raise ValueError(
                f"trace {trace.get('id')!r} has no pair in the pair file: traces and pairs come from different runs"
            )
        name = pair_mismatch(trace, pair)
        if name is not None:
            raise ValueError(
                f"trace {trace['id']!r} disagrees with its pair on {name!r}: traces and pairs come from different runs"
            )
    traced = {t["id"] for t in traces}
    return [p["id"] for p in pairs if p["id"] not in traced]


def write_faithful(result: FilterResult, path: str | Path) -> Path:
    """Write the kept traces (``runfiles.faithful_traces_path(run)``) atomically, in order;
    ValueError when none was kept (SFT would have nothing to learn from)."""
    if not result.kept:
        raise ValueError(
            f"no trace survived the faithfulness filter (0 of {len(result.traces)}; outcomes {result.outcomes}); "
            "the teacher disagrees with every label: check the teacher and the pairs"
        )
    return write_jsonl_atomic(result.kept, path)


def _separability(records: Sequence[Mapping[str, Any]], prefix: str, n_splits: int, seed: int) -> dict:
    """Absolute and relative :func:`separability_auc` of ``records``; None below 2 folds."""
    folds = min(n_splits, len(records))
    return {
        f"{prefix}_{name}": separability_auc(style_differences(records, relative), folds, seed) if folds >= 2 else None
        for relative, name in ((False, "absolute"), (True, "relative"))
    }


def audit_summary(result: FilterResult, n_splits: int = 5, seed: int = 0) -> dict[str, float | int | None]:
    """The headline numbers of notebook 02, plain ints and floats: ``n_kept`` (the SFT set, hinted
    rewrites included), the hinted pass's counts and share, the outcomes, the kept fraction per
    negative kind, position balance, length and stylistic separability of all traces and of the
    kept set (None without kept traces or with fewer than 2 pairs)."""
    kept = result.kept
    metrics: dict[str, float | int | None] = {"n_traces": len(result.traces), "n_kept": len(kept)}
    for name in ("kept_fraction", "n_hinted_written", "n_hinted_kept", "n_hinted_over_cap", "hinted_share"):
        metrics[name] = getattr(result, name)
    metrics.update({f"n_{k}": v for k, v in result.outcomes.items()})
    by_kind = faithfulness_by(result, "negative_kind")
    for kind, fraction in zip(by_kind["negative_kind"], by_kind["kept_fraction"], strict=True):
        metrics[f"kept_fraction_{kind}"] = float(fraction)
    metrics["all_share_label_a"] = float(position_balance(result.traces).iloc[-1]["share_a"])
    metrics.update(_separability(result.traces, "all_separability_auc", n_splits, seed))
    kept_keys = ("share_label_a", "position_p_value", "chosen_longer_share", "mean_words_chosen", "mean_words_rejected")
    metrics.update({f"kept_{key}": None for key in kept_keys})  # no trace kept: the keys stay, as None
    if kept:
        overall = position_balance(kept).iloc[-1]
        mean_words = length_table(kept).groupby("role")["words"].mean()
        metrics["kept_share_label_a"] = float(overall["share_a"])
        metrics["kept_position_p_value"] = float(overall["p_value"])
        metrics["kept_chosen_longer_share"] = chosen_longer_share(kept)
        metrics["kept_mean_words_chosen"] = float(mean_words["chosen"])
        metrics["kept_mean_words_rejected"] = float(mean_words["rejected"])
    metrics.update(_separability(kept, "separability_auc", n_splits, seed))
    return metrics


def audit_metrics(
    result: FilterResult,
    summary: Mapping[str, float | int | None],
    pairs: Sequence[Mapping[str, Any]],
    untraced: Sequence[Any],
) -> dict[str, float | int | None]:
    """The headline metrics notebook 02 records: ``summary`` (:func:`audit_summary`), then
    ``n_pairs``, ``n_pairs_without_trace`` (``untraced``: :func:`check_against_pairs`),
    ``n_teachers``, ``n_stripped`` and ``teacher_agreement/<benchmark>`` (the kept fraction of each
    benchmark's traces)."""
    by_benchmark = faithfulness_by(result, "benchmark")
    return {
        **summary,
        "n_pairs": len(pairs),
        "n_pairs_without_trace": len(untraced),
        "n_teachers": len({t["teacher"] for t in result.traces}),
        "n_stripped": result.n_stripped,
        **{
            f"teacher_agreement/{row.benchmark}": round(float(row.kept_fraction), 4)
            for row in by_benchmark.itertuples()
        },
    }


def faithfulness_by(result: FilterResult, column: str) -> pd.DataFrame:
    """Kept fraction per value of any trace field (``negative_kind``, ``author`` ...) or provenance
    entry (``benchmark``: the teacher's agreement with the label per benchmark)."""
    values = [
        str(t[column] if column in t else (t.get("provenance") or {}).get(column, "unknown")) for t in result.traces
    ]
    faithful = [bool(t["faithful"]) for t in result.traces]
    return _kept_table(pd.DataFrame({column: values, "faithful": faithful}), [column])


def _kept_table(frame: pd.DataFrame, keys: list[str], counted: Sequence[str] = ()) -> pd.DataFrame:
    """Per group of ``keys``: ``n``, ``kept`` (faithful), the sum of each ``counted`` column, ``kept_fraction``."""
    sums = {name: (name, "sum") for name in counted}
    table = frame.groupby(keys, sort=True).agg(n=("faithful", "size"), kept=("faithful", "sum"), **sums).reset_index()
    table["kept_fraction"] = table["kept"] / table["n"]
    return table
