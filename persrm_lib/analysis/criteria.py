"""Task-specific behaviours in reward-model traces: new and re-prioritised stylistic criteria (PersRM-R1 §5.3).

What the ``<criteria>`` section of a completion names, against the SFT traces the model learned
from: new stylistic criteria (named in RFT outputs, never in the SFT traces), criteria diversity
per GRPO step (:func:`criteria_by_step`), re-prioritised criteria (their order against the SFT
order, and whether the first criterion changed), and how both relate to correct verdicts
(:func:`criteria_table`, :func:`accuracy_by_new_criteria`). Correctness is the one verdict rule,
:meth:`persrm_lib.core.verdict.Verdict.outcome`.

Inputs are records as the stage owners' readers return them: RFT completions
(:func:`persrm_lib.train.logs.read_grpo_completions`: ``step, pair_id, label, completion,
reward``) and SFT traces (:func:`persrm_lib.teachers.traces.read_traces`: a pair, its pair id in
``id``, plus ``teacher, completion, scores, faithful``).

**Criterion extraction** (:func:`extract_criteria`): the ``<criteria>`` section is split on lines
and semicolons; a piece with a colon (or " - " / " — ") keeps only its head ("Tone: formal" ->
"tone"), a piece without one is split on commas. Each piece is normalised: lowercase, markdown
and enumerators ("1.", "(a)", "-", "step 2:") stripped, leading articles dropped, outer punctuation
removed, and each word lemmatised lightly (plural suffixes only: "tendencies" -> "tendency",
"dashes" -> "dash", "sentences" -> "sentence"; no dictionary, so it is deterministic and
offline). Pieces with no letters or longer than ``max_words`` words (prose, not a criterion name)
are dropped. The *SFT order* of a criterion is its mean relative position (0 first, 1 last) in
the SFT traces that name two or more criteria (:func:`sft_criteria`).
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

_ENUMERATOR = re.compile(r"^(?:step\s+\d+\s*[:.)-]?|\(?\d{1,2}[.)]|\(?[a-z][.)]|[-*•·+]|#+)\s*", re.IGNORECASE)
_HEAD_SEP = re.compile(r":|\s[-–—]\s")
_ARTICLES = ("the ", "a ", "an ")
_KEEP_S = {"always", "perhaps", "various", "series", "species", "news", "politics", "thus", "ellipses"}


def _lemma(word: str) -> str:
    if len(word) < 4 or word in _KEEP_S or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith(("ches", "shes", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is", "ys")):
        return word[:-1]
    return word


def _strip_prefix(text: str) -> str:
    """Lowercase, drop markdown emphasis, and strip leading enumerators ("1.", "- ", "step 2:")."""
    text = text.lower().replace("*", "").replace("_", " ").replace("`", "").strip()
    previous = None
    while previous != text:
        previous = text
        text = _ENUMERATOR.sub("", text).strip()
    return text


def normalize_criterion(piece: str) -> str:
    """Normalise one criterion name (see the module docstring); ``""`` when nothing is left.

    >>> normalize_criterion("2. **Sentence Lengths**")
    'sentence length'
    """
    text = _strip_prefix(piece)
    text = text.strip(" \t.,;:!?\"'()[]{}<>")
    for article in _ARTICLES:
        if text.startswith(article):
            text = text[len(article) :]
    words = re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*", text)
    return " ".join(_lemma(w) for w in words)


def extract_criteria(criteria_text: str, max_words: int = 8) -> list[str]:
    """The criteria named in a ``<criteria>`` section, normalised, in order, without repeats.

    Args:
        criteria_text: the section's text.
        max_words: longer pieces are prose, not criterion names, and are dropped.

    >>> extract_criteria("1. Sentence rhythm\\n2. Vocabulary, punctuation; Tone: formal and dry")
    ['sentence rhythm', 'vocabulary', 'punctuation', 'tone']
    """
    found: list[str] = []
    for segment in re.split(r"[\n;]", criteria_text):
        segment = _strip_prefix(segment)
        if not segment:
            continue
        head = _HEAD_SEP.split(segment, maxsplit=1)
        pieces = [head[0]] if len(head) > 1 else segment.split(",")
        for piece in pieces:
            name = normalize_criterion(piece)
            if name and re.search(r"[a-z]", name) and len(name.split()) <= max_words and name not in found:
                found.append(name)
    return found


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
    """Summarise the criteria of the SFT traces (records of :func:`persrm_lib.teachers.traces.read_traces`).

    Each trace's ``completion`` is read, and its pair id from ``id`` (the trace contract: a pair
    plus teacher, completion, scores, faithful). ``mean_position`` is each criterion's mean
    position ``i / (k - 1)`` in traces naming ``k >= 2``
    criteria (0 = named first, 1 = named last); ``modal_first`` the most common first criterion
    (ties broken alphabetically).
    """
    vocabulary: set[str] = set()
    positions: dict[str, list[float]] = {}
    first_by_pair: dict[str, str] = {}
    firsts: Counter[str] = Counter()
    n_parsed = 0
    for trace in traces:
        criteria = completion_criteria(trace["completion"], max_words)
        if criteria is None:
            continue
        n_parsed += 1
        vocabulary.update(criteria)
        if criteria:
            firsts[criteria[0]] += 1
            if trace.get("id") is not None:
                first_by_pair.setdefault(str(trace["id"]), criteria[0])
        if len(criteria) >= 2:
            for i, name in enumerate(criteria):
                positions.setdefault(name, []).append(i / (len(criteria) - 1))
    modal = min(firsts, key=lambda name: (-firsts[name], name)) if firsts else None
    return SFTCriteria(
        vocabulary=frozenset(vocabulary),
        mean_position={name: float(np.mean(v)) for name, v in sorted(positions.items())},
        first_by_pair=first_by_pair,
        modal_first=modal,
        n_traces=len(traces),
        n_parsed=n_parsed,
    )


def order_correlation(criteria: Sequence[str], mean_position: Mapping[str, float]) -> float:
    """Spearman correlation between a completion's criteria order and the SFT order.

    Only criteria with an SFT position count; NaN with fewer than 2 of them or when their SFT
    positions are all equal. 1 = same order as SFT, -1 = reversed (re-prioritised).

    >>> round(order_correlation(["tone", "rhythm"], {"rhythm": 0.0, "tone": 1.0}), 6)
    -1.0
    """
    from scipy.stats import spearmanr

    known = [name for name in dict.fromkeys(criteria) if name in mean_position]
    if len(known) < 2:
        return math.nan
    reference = [mean_position[name] for name in known]
    if len(set(reference)) < 2:
        return math.nan
    return float(spearmanr(np.arange(len(known)), reference).statistic)


def criteria_table(records: Sequence[Mapping[str, Any]], sft: SFTCriteria, max_words: int = 8) -> pd.DataFrame:
    """One row per completion: its criteria and the task-specific behaviours they show.

    Args:
        records: RFT completions (``step, pair_id, label, completion``), or any records with a
            ``completion`` and a ``label``.
        sft: :func:`sft_criteria` of the SFT traces.
        max_words: see :func:`extract_criteria`.

    Columns: ``step, pair_id, format_ok, correct`` (the verdict rule:
    ``read_verdict(completion).outcome(label) == +1``),
    ``criteria`` (list), ``n_criteria``, ``new_criteria`` (named, never in the SFT traces),
    ``has_new``, ``order_rho`` (:func:`order_correlation`), ``first_changed`` (the first criterion
    differs from the SFT trace's first criterion for the same pair, else from the SFT's most common
    first criterion; ``None`` without criteria) and ``first_reference`` (``"pair"`` or ``"modal"``).
    Completions that do not parse have no criteria: their criteria columns are empty or NaN.
    """
    rows = []
    for record in records:
        criteria = completion_criteria(record["completion"], max_words)
        ok = criteria is not None
        criteria = criteria or []
        new = [name for name in criteria if name not in sft.vocabulary]
        reference, kind = None, None
        if criteria:
            pair_first = sft.first_by_pair.get(str(record.get("pair_id")))
            reference, kind = (pair_first, "pair") if pair_first is not None else (sft.modal_first, "modal")
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
                "first_changed": (criteria[0] != reference) if criteria and reference is not None else None,
                "first_reference": kind if criteria and reference is not None else None,
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
    """Shannon entropy (bits) of how often each criterion is named; NaN when none is named.

    >>> criteria_entropy([["rhythm", "tone"], ["rhythm", "tone"]])
    1.0
    """
    from scipy.stats import entropy

    counts = Counter(name for names in criteria_lists for name in names)
    if not counts:
        return math.nan
    return float(entropy([counts[k] for k in sorted(counts)], base=2))


def criteria_by_step(table: pd.DataFrame) -> pd.DataFrame:
    """Per GRPO step: criteria diversity, new criteria and re-prioritisation (parsed completions).

    Columns: ``step, n_completions, n_parsed, distinct_criteria, entropy_bits,
    mean_criteria_per_output, share_with_new, new_criteria (sorted list), mean_order_rho,
    share_first_changed, accuracy``.
    """
    rows = []
    for step, frame in table.groupby("step", sort=True):
        parsed = frame[frame["format_ok"]]
        lists = list(parsed["criteria"])
        first = parsed["first_changed"].dropna()
        rho = parsed["order_rho"].dropna()
        rows.append(
            {
                "step": step,
                "n_completions": int(len(frame)),
                "n_parsed": int(len(parsed)),
                "distinct_criteria": int(len({n for names in lists for n in names})),
                "entropy_bits": criteria_entropy(lists),
                "mean_criteria_per_output": float(parsed["n_criteria"].mean()) if len(parsed) else math.nan,
                "share_with_new": float(parsed["has_new"].astype(bool).mean()) if len(parsed) else math.nan,
                "new_criteria": sorted({n for names in parsed["new_criteria"] for n in names}),
                "mean_order_rho": float(rho.mean()) if len(rho) else math.nan,
                "share_first_changed": float(first.astype(bool).mean()) if len(first) else math.nan,
                "accuracy": float(frame["correct"].mean()) if len(frame) else math.nan,
            }
        )
    return pd.DataFrame(rows)


def accuracy_by_new_criteria(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of parsed completions with vs without new criteria, and with a changed vs kept first criterion.

    Unparsed completions are left out (they have no criteria and are never correct), so the
    comparison is not driven by format failures. NaN where a group is empty.
    """
    parsed = table[table["format_ok"]]
    rows = []
    for feature, column in (("new criteria", "has_new"), ("first criterion changed", "first_changed")):
        known = parsed[parsed[column].notna()]
        for value in (True, False):
            group = known[known[column].astype(bool) == value]
            rows.append(
                {
                    "feature": feature,
                    "present": value,
                    "n": int(len(group)),
                    "accuracy": float(group["correct"].mean()) if len(group) else math.nan,
                }
            )
    return pd.DataFrame(rows)


def new_criteria_names(table: pd.DataFrame) -> list[str]:
    """The criteria named in any output of :func:`criteria_table` and never in the SFT traces, sorted.

    >>> new_criteria_names(pd.DataFrame({"new_criteria": [["irony"], [], ["dash", "irony"]]}))
    ['dash', 'irony']
    """
    return sorted({name for names in table["new_criteria"] for name in names})
