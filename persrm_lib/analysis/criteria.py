"""Task-specific behaviours in reward-model traces (PersRM-R1 §5.3): what the ``<criteria>`` section
of a completion names, against the SFT traces the model learned from: new criteria, criteria diversity
per GRPO step, re-prioritised criteria, and how both relate to correct verdicts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..core.output_format import parse_output
from ..core.verdict import CORRECT, read_verdict

# leading enumerators, repeated ("1. - x"): "1.", "(a)", "-", "#", "step 2:"
_ENUMERATORS = re.compile(r"^(?:(?:step\s+\d+\s*[:.)-]?|\(?\d{1,2}[.)]|\(?[a-z][.)]|[-*•·+]|#+)\s*)+", re.IGNORECASE)
_HEAD_SEP = re.compile(r":|\s[-–—]\s")
_KEEP_S = {"always", "perhaps", "various", "series", "species", "news", "politics", "thus", "ellipses"}


def _lemma(word: str) -> str:
    if len(word) < 4 or word in _KEEP_S or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is", "ys")):
        return word[:-1]
    return word


def _strip_prefix(text: str) -> str:
    """Lowercase, drop markdown emphasis, and strip leading enumerators."""
    text = text.lower().replace("*", "").replace("_", " ").replace("`", "").strip()
    return _ENUMERATORS.sub("", text).strip()


def normalize_criterion(piece: str) -> str:
    """One criterion name: lowercased, stripped of markdown, enumerators, leading articles and outer
    punctuation, each word without its plural suffix ("tendencies" -> "tendency"; no dictionary:
    deterministic, offline); ``""`` when nothing is left."""
    text = re.sub(r"^(?:the )?(?:a )?(?:an )?", "", _strip_prefix(piece).strip(" \t.,;:!?\"'()[]{}<>"))
    words = re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*", text)
    return " ".join(_lemma(w) for w in words)


def extract_criteria(criteria_text: str, max_words: int = 8) -> list[str]:
    """The criteria named in a ``<criteria>`` section (:func:`normalize_criterion`), in order, without
    repeats. The section is split on lines and semicolons; a piece with a colon (or " - " / " — ") keeps
    its head ("Tone: formal" -> "tone"), one without is split on commas. Pieces without letters or
    longer than ``max_words`` words (prose) are dropped."""
    names = []
    for segment in re.split(r"[\n;]", criteria_text):
        segment = _strip_prefix(segment)
        head = _HEAD_SEP.split(segment, maxsplit=1)
        names += [normalize_criterion(piece) for piece in ([head[0]] if len(head) > 1 else segment.split(","))]
    return [name for name in dict.fromkeys(names) if re.search(r"[a-z]", name) and len(name.split()) <= max_words]


def completion_criteria(completion: str, max_words: int = 8) -> list[str] | None:
    """Criteria of a completion whose format parses; ``None`` when it does not."""
    parsed = parse_output(completion)
    return extract_criteria(parsed.criteria or "", max_words) if parsed.ok else None


@dataclass(frozen=True)
class SFTCriteria:
    """What the SFT traces say about criteria: vocabulary, mean normalised position, first criteria."""

    vocabulary: frozenset[str]
    mean_position: dict[str, float]
    first_by_pair: dict[str, str]
    modal_first: str | None
    n_traces: int
    n_parsed: int


def sft_criteria(traces: Sequence[Mapping[str, Any]], max_words: int = 8) -> SFTCriteria:
    """The criteria of the SFT traces (``completion``, pair id in ``id``). ``mean_position``: each
    criterion's mean position ``i / (k - 1)`` in traces naming ``k >= 2`` criteria (0 first, 1
    last); ``modal_first``: the most common first criterion (ties broken alphabetically)."""
    parsed = [(t.get("id"), c) for t in traces if (c := completion_criteria(t["completion"], max_words)) is not None]
    firsts = Counter(criteria[0] for _, criteria in parsed if criteria)
    first_by_pair: dict[str, str] = {}
    positions: dict[str, list[float]] = {}
    for pair_id, criteria in parsed:
        if criteria and pair_id is not None:
            first_by_pair.setdefault(str(pair_id), criteria[0])
        if len(criteria) >= 2:
            for i, name in enumerate(criteria):
                positions.setdefault(name, []).append(i / (len(criteria) - 1))
    return SFTCriteria(
        vocabulary=frozenset(name for _, criteria in parsed for name in criteria),
        mean_position={name: float(np.mean(v)) for name, v in sorted(positions.items())},
        first_by_pair=first_by_pair,
        modal_first=min(firsts, key=lambda name: (-firsts[name], name)) if firsts else None,
        n_traces=len(traces),
        n_parsed=len(parsed),
    )


def order_correlation(criteria: Sequence[str], mean_position: Mapping[str, float]) -> float:
    """Spearman correlation (SciPy) of a completion's criteria order with the SFT order, over the
    criteria with an SFT position; NaN with fewer than 2 of them or equal positions. -1: reversed."""
    from scipy.stats import spearmanr

    known = [name for name in dict.fromkeys(criteria) if name in mean_position]
    reference = [mean_position[name] for name in known]
    if len(set(reference)) < 2:  # also fewer than 2 known criteria
        return math.nan
    return float(spearmanr(np.arange(len(known)), reference).statistic)


def criteria_table(records: Sequence[Mapping[str, Any]], sft: SFTCriteria, max_words: int = 8) -> pd.DataFrame:
    """One row per completion (``completion``, ``label``; ``step``, ``pair_id`` when present): its
    criteria and the task-specific behaviours they show.

    Columns: ``step, pair_id, format_ok, correct`` (``read_verdict(completion).outcome(label) ==
    CORRECT``), ``criteria``, ``n_criteria``, ``new_criteria`` (never in the SFT traces),
    ``has_new``, ``order_rho`` (:func:`order_correlation`), ``first_changed`` (against the SFT
    trace of the same pair, else the SFT's modal first criterion; ``None`` without criteria) and
    ``first_reference`` (``"pair"`` or ``"modal"``). A completion that does not parse has no criteria.
    """
    rows = []
    for record in records:
        criteria = completion_criteria(record["completion"], max_words)
        ok = criteria is not None
        criteria = criteria or []
        new = [name for name in criteria if name not in sft.vocabulary]
        pair_first = sft.first_by_pair.get(str(record.get("pair_id")))
        reference, kind = (pair_first, "pair") if pair_first is not None else (sft.modal_first, "modal")
        judged = bool(criteria) and reference is not None
        rows.append(
            {
                "step": record.get("step"),
                "pair_id": record.get("pair_id"),
                "format_ok": ok,
                "correct": read_verdict(record["completion"]).outcome(record["label"]) == CORRECT,
                "criteria": criteria,
                "n_criteria": len(criteria),
                "new_criteria": new,
                "has_new": bool(new) if ok else None,
                "order_rho": order_correlation(criteria, sft.mean_position) if ok else math.nan,
                "first_changed": criteria[0] != reference if judged else None,
                "first_reference": kind if judged else None,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "step", "pair_id", "format_ok", "correct", "criteria", "n_criteria", "new_criteria",
            "has_new", "order_rho", "first_changed", "first_reference",
        ],
    )  # fmt: skip


def criteria_entropy(criteria_lists: Iterable[Sequence[str]]) -> float:
    """Shannon entropy (bits, SciPy) of how often each criterion is named; NaN when none is named."""
    from scipy.stats import entropy

    counts = Counter(name for names in criteria_lists for name in names)
    return float(entropy([counts[k] for k in sorted(counts)], base=2)) if counts else math.nan


def criteria_by_step(table: pd.DataFrame) -> pd.DataFrame:
    """Per GRPO step: criteria diversity, new criteria and re-prioritisation over parsed completions
    (accuracy over all).

    Columns: ``step, n_completions, n_parsed, distinct_criteria, entropy_bits,
    mean_criteria_per_output, share_with_new, new_criteria (sorted list), mean_order_rho,
    share_first_changed, accuracy``.
    """
    rows = []
    for step, frame in table.groupby("step", sort=True):
        parsed = frame[frame["format_ok"]]
        lists = list(parsed["criteria"])
        rows.append(
            {
                "step": step,
                "n_completions": int(len(frame)),
                "n_parsed": int(len(parsed)),
                "distinct_criteria": len(set().union(*lists)),
                "entropy_bits": criteria_entropy(lists),
                "mean_criteria_per_output": float(parsed["n_criteria"].mean()),  # pandas: NaN when empty
                "share_with_new": float(parsed["has_new"].astype(bool).mean()),
                "new_criteria": new_criteria_names(parsed),
                "mean_order_rho": float(parsed["order_rho"].mean()),  # pandas skips NaN
                "share_first_changed": float(parsed["first_changed"].dropna().astype(bool).mean()),
                "accuracy": float(frame["correct"].mean()),
            }
        )
    return pd.DataFrame(rows)


def accuracy_by_new_criteria(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of parsed completions (so format failures do not drive it) with vs without new
    criteria, and with a changed vs kept first criterion; NaN where a group is empty."""
    parsed = table[table["format_ok"]]
    rows = []
    for feature, column in (("new criteria", "has_new"), ("first criterion changed", "first_changed")):
        known = parsed[parsed[column].notna()]
        for value in (True, False):
            correct = known.loc[known[column].astype(bool) == value, "correct"]
            rows.append({"feature": feature, "present": value, "n": len(correct), "accuracy": float(correct.mean())})
    return pd.DataFrame(rows)


def new_criteria_names(table: pd.DataFrame) -> list[str]:
    """The criteria named in any output of :func:`criteria_table` and never in the SFT traces, sorted."""
    return sorted({name for names in table["new_criteria"] for name in names})
