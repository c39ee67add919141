"""The faithfulness filter and the audit of the filtered trace set (notebook 02_filter_audit).

PersRM-R1 (arXiv 2508.14076, §3.2) keeps a teacher trace only when its scores agree with the
label: the labelled (chosen) response must score strictly higher than the rejected one. The
scores are read by :func:`persrm_lib.core.output_format.parse_output`, the one parser; a completion
that does not parse is dropped and counted under its reason.

The audit helpers measure what the kept set would teach: counts per strategy, author and genre,
length of chosen and rejected responses, position balance (is the chosen text A as often as B?)
and stylistic separability (can style features alone tell chosen from rejected?).

>>> from persrm_lib.core.output_format import render_output
>>> trace = {"id": "p1", "label": "a", "teacher": "t", "positive_kind": "intra_author",
...          "negative_kind": "random", "completion": render_output("c", "e", (7, 3))}
>>> result = faithfulness_filter([trace])
>>> result.kept_fraction, result.kept[0]["scores"]
(1.0, [7.0, 3.0])
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.output_format import parse_output

TRACE_REQUIRED = ("id", "label", "completion", "teacher", "positive_kind", "negative_kind")
STRATEGY = ("teacher", "positive_kind", "negative_kind")


def assess_completion(completion: object, label: str) -> tuple[list[float] | None, bool, str | None]:
    """Read a completion against its label.

    Args:
        completion: the teacher's text.
        label: ``"a"`` or ``"b"``, the chosen response.

    Returns:
        ``(scores, faithful, reason)``: the parsed ``[s_a, s_b]`` (None when the completion does
        not parse), whether the chosen response scored strictly higher, and the parser's
        reason when it does not parse (else None).

    >>> from persrm_lib.core.output_format import render_output
    >>> assess_completion(render_output("c", "e", (4, 4)), "a")
    ([4.0, 4.0], False, None)
    >>> assess_completion("no tags", "b")
    (None, False, 'tag <criteria> is missing')
    """
    if label not in ("a", "b"):
        raise ValueError(f"label must be 'a' or 'b', got {label!r}")
    parsed = parse_output(completion)
    if not parsed.ok or parsed.scores is None:
        return None, False, parsed.reason
    return [float(parsed.scores[0]), float(parsed.scores[1])], parsed.preferred == label, None


def reason_category(reason: str) -> str:
    """Group a parser reason by kind: quoted details and the offending number are dropped.

    >>> reason_category("score '11' is not a number")
    'score … is not a number'
    >>> reason_category("scores must be written as [s_a, s_b], got '7 3'")
    'scores must be written as [s_a, s_b]'
    """
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

    @property
    def kept_fraction(self) -> float:
        return len(self.kept) / len(self.traces)

    @property
    def outcomes(self) -> dict[str, int]:
        """How many traces were faithful, unfaithful (wrong or tied scores), or unparsed."""
        unparsed = sum(self.parse_failures.values())
        return {
            "faithful": len(self.kept),
            "unfaithful": len(self.traces) - len(self.kept) - unparsed,
            "unparsed": unparsed,
        }


def _check_trace(trace: Any, i: int) -> None:
    if not isinstance(trace, Mapping):
        raise TypeError(f"trace {i} is a {type(trace).__name__}, not a mapping")
    missing = [name for name in TRACE_REQUIRED if name not in trace]
    if missing:
        raise KeyError(f"trace {i} (id {trace.get('id', '?')!r}) lacks field(s): {', '.join(missing)}")
    if trace["label"] not in ("a", "b"):
        raise ValueError(f"trace {i} (id {trace['id']!r}): label must be 'a' or 'b', got {trace['label']!r}")


def faithfulness_filter(traces: Sequence[Mapping[str, Any]]) -> FilterResult:
    """Keep the traces whose parsed scores put the labelled response strictly higher.

    Args:
        traces: trace records (a pair plus ``teacher`` and ``completion``); ``scores`` and
            ``faithful`` are recomputed from the completion, whatever they held.

    Returns:
        A :class:`FilterResult`: all traces with ``scores``/``faithful`` set, the kept ones, the
        kept fraction per strategy (``teacher, positive_kind, negative_kind`` with columns
        ``n, kept, unfaithful, unparsed, kept_fraction``) and the parse failures per reason.

    Raises:
        ValueError: an empty trace set, or a label other than ``a``/``b`` (naming the trace).
        KeyError: a trace without a required field (naming the trace and the field).
    """
    if len(traces) == 0:
        raise ValueError("faithfulness_filter got an empty trace set: generate traces first (notebook 01)")
    out: list[dict[str, Any]] = []
    failures: Counter[str] = Counter()
    rows = []
    for i, trace in enumerate(traces):
        _check_trace(trace, i)
        scores, faithful, reason = assess_completion(trace["completion"], trace["label"])
        if reason is not None:
            failures[reason_category(reason)] += 1
        record = dict(trace)
        record["scores"], record["faithful"] = scores, faithful
        out.append(record)
        rows.append({**{k: str(trace[k]) for k in STRATEGY}, "faithful": faithful, "unparsed": reason is not None})
    frame = pd.DataFrame(rows)
    table = (
        frame.groupby(list(STRATEGY), sort=True)
        .agg(n=("faithful", "size"), kept=("faithful", "sum"), unparsed=("unparsed", "sum"))
        .reset_index()
    )
    table["unfaithful"] = table["n"] - table["kept"] - table["unparsed"]
    table["kept_fraction"] = table["kept"] / table["n"]
    table = table[[*STRATEGY, "n", "kept", "unfaithful", "unparsed", "kept_fraction"]]
    kept = [r for r in out if r["faithful"]]
    return FilterResult(out, kept, table, dict(sorted(failures.items())))


# --------------------------------------------------------------------------------------------
# Audit
# --------------------------------------------------------------------------------------------


def chosen_rejected(pair: Mapping[str, Any]) -> tuple[str, str]:
    """The (chosen, rejected) texts of a pair, by its label."""
    if pair["label"] == "a":
        return pair["response_a"], pair["response_b"]
    return pair["response_b"], pair["response_a"]


def counts_by(records: Sequence[Mapping[str, Any]], column: str) -> pd.DataFrame:
    """How many records per value of ``column`` (sorted by value), with their share."""
    if not records:
        raise ValueError("counts_by got no records")
    frame = pd.DataFrame({column: [str(r.get(column)) for r in records]})
    table = frame.groupby(column, sort=True).size().rename("n").reset_index()
    table["share"] = table["n"] / table["n"].sum()
    return table


def length_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per response: pair ``id``, ``negative_kind``, ``role`` (chosen/rejected), ``words``."""
    from ..data.stylometry import words

    rows = []
    for r in records:
        chosen, rejected = chosen_rejected(r)
        for role, text in (("chosen", chosen), ("rejected", rejected)):
            rows.append(
                {"id": r["id"], "negative_kind": str(r.get("negative_kind")), "role": role, "words": len(words(text))}
            )
    return pd.DataFrame(rows, columns=["id", "negative_kind", "role", "words"])


def chosen_longer_share(records: Sequence[Mapping[str, Any]]) -> float:
    """Share of pairs whose chosen response has more words than the rejected one (ties count
    half): the AUC of "pick the longer response"; 0.5 means length does not give the label away."""
    from ..data.stylometry import words

    if not records:
        raise ValueError("chosen_longer_share got no records")
    wins = 0.0
    for r in records:
        chosen, rejected = chosen_rejected(r)
        a, b = len(words(chosen)), len(words(rejected))
        wins += 1.0 if a > b else 0.5 if a == b else 0.0
    return wins / len(records)


def position_balance(records: Sequence[Mapping[str, Any]], by: str = "negative_kind") -> pd.DataFrame:
    """Share of pairs whose chosen response is A, per value of ``by`` and overall, with a
    two-sided exact binomial p-value against 0.5 (a small p-value: the position leaks the label)."""
    from scipy.stats import binomtest

    if not records:
        raise ValueError("position_balance got no records")
    frame = pd.DataFrame({by: [str(r.get(by)) for r in records], "is_a": [r["label"] == "a" for r in records]})
    groups = [(str(k), g) for k, g in frame.groupby(by, sort=True)] + [("all", frame)]
    rows = []
    for key, group in groups:
        n, k = len(group), int(group["is_a"].sum())
        rows.append({by: key, "n": n, "label_a": k, "share_a": k / n, "p_value": float(binomtest(k, n, 0.5).pvalue)})
    return pd.DataFrame(rows)


def style_differences(records: Sequence[Mapping[str, Any]], relative_to_exemplars: bool = False) -> np.ndarray:
    """Per pair, style features of the chosen response minus those of the rejected one.

    With ``relative_to_exemplars``, each response is first replaced by its absolute distance to
    the mean of the pair's exemplars (feature by feature), so the difference says which response
    is closer to the author (what a reward model must learn) instead of how chosen texts differ
    from rejected ones in general (a shortcut that needs no exemplars).

    Returns:
        ``(len(records), len(SCALAR_FEATURES))`` array.
    """
    from ..data.stylometry import SCALAR_FEATURES, feature_matrix

    names = tuple(SCALAR_FEATURES)
    rows = []
    for r in records:
        chosen, rejected = chosen_rejected(r)
        m = feature_matrix([chosen, rejected], names)
        if relative_to_exemplars:
            n = r.get("n_exemplars") or len(r["exemplars"])
            center = feature_matrix(list(r["exemplars"])[:n], names).mean(axis=0)
            m = np.abs(m - center)
        rows.append(m[0] - m[1])
    return np.array(rows, dtype=float).reshape(len(rows), len(names))


def separability_auc(differences: np.ndarray, n_splits: int = 5, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a logistic regression telling chosen from rejected.

    Each pair gives two examples, ``d`` (chosen first, class 1) and ``-d`` (rejected first,
    class 0), kept in the same fold (GroupKFold over pairs, so no pair is on both sides). A
    model without intercept on standardised features must then find a direction in style space
    that points from rejected to chosen. 0.5: style features do not separate them; 1.0: always.

    Args:
        differences: ``(n_pairs, n_features)`` from :func:`style_differences`.
        n_splits: folds (at most the number of pairs).
        seed: the logistic regression's random state.

    Returns:
        The AUC over the out-of-fold decision values.

    Raises:
        ValueError: fewer pairs than ``n_splits`` (or fewer than 2 folds).
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


# --------------------------------------------------------------------------------------------
# Reading and writing the run folder's trace files
# --------------------------------------------------------------------------------------------


def load_traces(path: str | Path) -> list[dict[str, Any]]:
    """Read a complete trace file (``runfiles.traces_path(run)``) strictly.

    Raises:
        FileNotFoundError: the file is missing; when its ``.partial`` sibling exists, the message
            says that trace generation was interrupted and how to resume it.
        ValueError: a repeated trace id (naming it and its line), or an empty file.
    """
    from ..core.jsonl import iter_jsonl

    path = Path(path)
    if not path.is_file():
        partial = path.with_name(path.name + ".partial")
        if partial.is_file():
            raise FileNotFoundError(
                f"{path} is missing but {partial.name} exists: trace generation was interrupted or some pairs "
                "failed; run 01_synthesize again to resume it"
            )
        raise FileNotFoundError(f"{path} is missing: run 01_synthesize first")
    traces: list[dict[str, Any]] = []
    seen: dict[Any, int] = {}
    for lineno, record in iter_jsonl(path):
        key = record.get("id")
        if key in seen:
            raise ValueError(f"{path} line {lineno}: trace id {key!r} repeats line {seen[key]}")
        seen[key] = lineno
        traces.append(record)
    if not traces:
        raise ValueError(f"{path} holds no trace")
    return traces


PAIR_CHECK_FIELDS = ("label", "response_a", "response_b", "exemplars")


def check_against_pairs(traces: Sequence[Mapping[str, Any]], pairs: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Check that each trace belongs to a pair of ``pairs`` and agrees with it.

    Returns:
        The ids of pairs that have no trace (in pair order; empty when the traces cover them all).

    Raises:
        ValueError: a trace whose id is not a pair id, or whose label, responses or exemplars
            differ from its pair's (naming the id and the field).
    """
    by_id = {p["id"]: p for p in pairs}
    for trace in traces:
        pair = by_id.get(trace.get("id"))
        if pair is None:
            raise ValueError(
                f"trace {trace.get('id')!r} has no pair in the pair file: traces and pairs come from different runs"
            )
        for name in PAIR_CHECK_FIELDS:
            if trace.get(name) != pair.get(name):
                raise ValueError(
                    f"trace {trace['id']!r} disagrees with its pair on {name!r}: traces and pairs come from different runs"
                )
    traced = {t["id"] for t in traces}
    return [p["id"] for p in pairs if p["id"] not in traced]


def write_faithful(result: FilterResult, path: str | Path) -> Path:
    """Write the kept traces (``runfiles.faithful_traces_path(run)``) atomically, in input order.

    Raises:
        ValueError: no trace was kept (SFT would have nothing to learn from).
    """
    from ..core.jsonl import write_jsonl_atomic

    if not result.kept:
        raise ValueError(
            f"no trace survived the faithfulness filter (0 of {len(result.traces)}; outcomes {result.outcomes}); "
            "the teacher disagrees with every label: check the teacher and the pairs"
        )
    return write_jsonl_atomic(result.kept, path)


def audit_summary(result: FilterResult, n_splits: int = 5, seed: int = 0) -> dict[str, float | int | None]:
    """The headline numbers of notebook 02, plain ints and floats (for ``write_metrics``).

    Kept fraction overall and per negative kind, the outcomes, position balance of all traces and
    of the kept set, length (mean words, ``chosen_longer_share``) and stylistic separability of
    all traces and of the kept set (absolute and relative to the exemplars; None with fewer than
    2 pairs).
    """
    kept = result.kept
    metrics: dict[str, float | int | None] = {
        "n_traces": len(result.traces),
        "n_kept": len(kept),
        "kept_fraction": result.kept_fraction,
    }
    metrics.update({f"n_{k}": v for k, v in result.outcomes.items()})
    by_kind = faithfulness_by(result, "negative_kind")
    for kind, fraction in zip(by_kind["negative_kind"], by_kind["kept_fraction"], strict=True):
        metrics[f"kept_fraction_{kind}"] = float(fraction)
    overall = position_balance(result.traces).iloc[-1]
    metrics["all_share_label_a"] = float(overall["share_a"])
    folds = min(n_splits, len(result.traces))
    for relative, name in ((False, "absolute"), (True, "relative")):
        metrics[f"all_separability_auc_{name}"] = (
            separability_auc(style_differences(result.traces, relative), folds, seed) if folds >= 2 else None
        )
    for key in (
        "kept_share_label_a",
        "kept_position_p_value",
        "kept_chosen_longer_share",
        "kept_mean_words_chosen",
        "kept_mean_words_rejected",
        "separability_auc_absolute",
        "separability_auc_relative",
    ):
        metrics[key] = None
    if kept:
        overall = position_balance(kept).iloc[-1]
        metrics["kept_share_label_a"] = float(overall["share_a"])
        metrics["kept_position_p_value"] = float(overall["p_value"])
        metrics["kept_chosen_longer_share"] = chosen_longer_share(kept)
        words = length_table(kept).groupby("role")["words"].mean()
        metrics["kept_mean_words_chosen"] = float(words["chosen"])
        metrics["kept_mean_words_rejected"] = float(words["rejected"])
        folds = min(n_splits, len(kept))
        if folds >= 2:
            for relative, name in ((False, "absolute"), (True, "relative")):
                metrics[f"separability_auc_{name}"] = separability_auc(style_differences(kept, relative), folds, seed)
    return metrics


def faithfulness_by(result: FilterResult, column: str) -> pd.DataFrame:
    """Kept fraction per value of any trace field (``negative_kind``, ``author``, ``genre`` ...)."""
    frame = pd.DataFrame(
        {column: [str(t.get(column)) for t in result.traces], "faithful": [bool(t["faithful"]) for t in result.traces]}
    )
    table = frame.groupby(column, sort=True).agg(n=("faithful", "size"), kept=("faithful", "sum")).reset_index()
    table["kept_fraction"] = table["kept"] / table["n"]
    return table
