"""The canonical pair file, one JSON object per line (docs/design.md, "Pair"): its ONE reader,
writer and swap. A pair carries :data:`PAIR_FIELDS`; extra fields are kept, and an ``evidence``
record (:mod:`persrm_lib.data.evidence`) is checked when present.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.jsonl import JsonlFormatError, iter_jsonl, write_jsonl_atomic
from ..core.text import is_blank, same_text
from .evidence import EvidenceError, check_evidence, has_evidence, swap_evidence

PAIR_FIELDS: tuple[str, ...] = (
    "id",
    "query",
    "exemplars",
    "response_a",
    "response_b",
    "label",
    "positive_kind",
    "negative_kind",
    "author",
    "genre",
    "n_exemplars",
)
LABELS = ("a", "b")
SWAPPED_SUFFIX = ":swapped"  # the id of a pair's swapped copy (both orders in training)
_TEXT_FIELDS = ("query", "response_a", "response_b")
_NAME_FIELDS = ("positive_kind", "negative_kind", "author", "genre")
# extra fields that the evaluation groups its tables by (``metrics.BREAKDOWNS``): text when present
_GROUP_FIELDS = ("benchmark",)


class PairFormatError(ValueError):
    """A pair file or a pair breaks the contract; the message names the file, line and field."""


class IdIndex:
    """The ids seen so far in one file, keyed by their text: ``1`` and ``"1"`` collide (written as
    text, in file names, tables and JSON keys, they would merge)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Any, str]] = {}

    def add(self, value: Any, here: str, label: str, kind: str = "id") -> None:
        """Register ``value``, found at ``here``; later messages name it ``label``; ``kind`` is how
        messages call the id. PairFormatError when it repeats or collides with an earlier id."""
        key = str(value)
        if key in self._seen:
            first, first_label = self._seen[key]
            if first == value and type(first) is type(value):
                raise PairFormatError(f"{here}: {kind} {value!r} repeats {first_label}")
            raise PairFormatError(
                f"{here}: {kind} {value!r} collides with {kind} {first!r} of {first_label} "
                "(the same id once written as text)"
            )
        self._seen[key] = (value, label)


def validate_pair(pair: Any, where: str = "pair", required: Sequence[str] = PAIR_FIELDS) -> dict[str, Any]:
    """Check one pair (a decoded JSON object) against the contract; the pair as a new dict.

    Args:
        where: how to name its place in an error, e.g. ``"pairs.jsonl line 3"``.
        required: the fields that must be present.

    Raises:
        PairFormatError: naming ``where`` and the field that is missing or wrong (empty texts
            included), identical responses, or a malformed ``evidence`` record. Emptiness and
            identity are judged after Unicode normalisation (:mod:`persrm_lib.core.text`).
    """
    if not isinstance(pair, Mapping):
        raise PairFormatError(f"{where}: expected a JSON object, got {type(pair).__name__}")
    missing = [name for name in required if name not in pair]
    if missing:
        raise PairFormatError(f"{where}: missing field(s): {', '.join(missing)}")
    if "id" in pair and (not isinstance(pair["id"], str | int) or isinstance(pair["id"], bool) or pair["id"] == ""):
        raise PairFormatError(f"{where}: field 'id' must be a non-empty string or an integer, got {pair['id']!r}")
    if "label" in pair and pair["label"] not in LABELS:
        raise PairFormatError(f"{where}: field 'label' must be 'a' or 'b', got {pair['label']!r}")
    for name in _TEXT_FIELDS:
        if name in pair and not isinstance(pair[name], str):
            raise PairFormatError(f"{where}: field {name!r} must be a string, got {type(pair[name]).__name__}")
    for name in _TEXT_FIELDS:
        if name in pair and is_blank(pair[name]):
            raise PairFormatError(f"{where}: field {name!r} is empty")
    if "response_a" in pair and "response_b" in pair and same_text(pair["response_a"], pair["response_b"]):
        raise PairFormatError(
            f"{where}: pair {pair.get('id', '?')!r} has identical responses A and B: no judge can prefer the "
            "labelled one"
        )
    if "exemplars" in pair:
        exemplars = pair["exemplars"]
        if not isinstance(exemplars, list) or not exemplars:
            raise PairFormatError(f"{where}: field 'exemplars' must be a non-empty list of strings")
        for i, text in enumerate(exemplars):
            if not isinstance(text, str) or is_blank(text):
                raise PairFormatError(f"{where}: field 'exemplars' item {i} must be a non-empty string")
    for name in _NAME_FIELDS:
        if name in pair and pair[name] is not None and not isinstance(pair[name], str):
            raise PairFormatError(f"{where}: field {name!r} must be a string, got {type(pair[name]).__name__}")
    for name in _GROUP_FIELDS:
        value = pair.get(name)
        if value is not None and not isinstance(value, str):
            raise PairFormatError(
                f"{where}: field {name!r} must be a string (the evaluation groups by it), got {value!r}"
            )
    if "n_exemplars" in pair:
        n = pair["n_exemplars"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise PairFormatError(f"{where}: field 'n_exemplars' must be a positive integer, got {n!r}")
        if "exemplars" in pair and n > len(pair["exemplars"]):
            raise PairFormatError(
                f"{where}: field 'n_exemplars' is {n} but the pair has {len(pair['exemplars'])} exemplar(s)"
            )
    if has_evidence(pair):
        try:
            check_evidence(pair)
        except EvidenceError as exc:
            raise PairFormatError(f"{where}: field 'evidence': {exc}") from exc
    return dict(pair)


def swap_pair(pair: Mapping[str, Any], suffix: bool = False) -> dict[str, Any]:
    """The same pair in the other order (a new dict): responses A and B exchanged, and with them the
    label and the evidence's A and B values (:func:`persrm_lib.data.evidence.swap_evidence`).

    ``pair`` may be a trace; ``suffix`` appends :data:`SWAPPED_SUFFIX` to the id (a training copy
    beside the original).

    Raises:
        PairFormatError: a label other than ``a``/``b``, or ``suffix`` on a pair without an id
            (naming the pair).
    """
    out = dict(pair)
    out["response_a"], out["response_b"] = pair["response_b"], pair["response_a"]
    if pair.get("label") is not None:  # an unlabelled pair (None or no field) is judged, not trained on
        if pair["label"] not in LABELS:
            raise PairFormatError(
                f"pair {pair.get('id', '?')!r}: field 'label' must be 'a' or 'b' to swap, got {pair['label']!r}"
            )
        out["label"] = "b" if pair["label"] == "a" else "a"
    if has_evidence(pair):
        out["evidence"] = swap_evidence(pair["evidence"])
    if suffix:
        if "id" not in pair:
            raise PairFormatError("a pair without an id cannot be given a swapped id")
        out["id"] = f"{pair['id']}{SWAPPED_SUFFIX}"
    return out


def read_pairs(path: str | Path, required: Sequence[str] = PAIR_FIELDS) -> list[dict[str, Any]]:
    """Read a canonical pair file (``.jsonl``) strictly, in file order; blank lines are skipped.
    ``required``: the fields every pair must carry.

    Raises:
        FileNotFoundError: the file does not exist.
        PairFormatError: a line that is not UTF-8 or JSON (with its line number), a pair that
            breaks the contract (:func:`validate_pair`), a repeated or colliding id
            (:class:`IdIndex`), or a file without any pair.
    """
    pairs: list[dict[str, Any]] = []
    ids = IdIndex()
    try:
        for lineno, record in iter_jsonl(path):
            pair = validate_pair(record, f"{path} line {lineno}", required)
            if "id" in pair:
                ids.add(pair["id"], f"{path} line {lineno}", f"line {lineno}")
            pairs.append(pair)
    except JsonlFormatError as exc:
        raise PairFormatError(str(exc)) from exc
    if not pairs:
        raise PairFormatError(f"pair file {path} is empty: no pair to read")
    return pairs


def write_pairs(pairs: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Validate and write pairs as JSONL atomically, canonical fields first, then extra fields sorted;
    returns ``path`` (its folder is created).

    Raises:
        PairFormatError: a pair breaks the contract, an id is repeated or collides with another
            (nothing is written then), or there is none.
    """
    records: list[dict[str, Any]] = []
    seen: set[Any] = set()
    ids = IdIndex()  # 1 and "1" are one id once written
    for i, pair in enumerate(pairs):
        checked = validate_pair(pair, f"pair {i}")
        if checked["id"] in seen:
            raise PairFormatError(f"pair {i}: id {checked['id']!r} is repeated")
        seen.add(checked["id"])
        ids.add(checked["id"], f"pair {i}", f"pair {i}")
        ordered = {name: checked[name] for name in PAIR_FIELDS}
        ordered.update({k: checked[k] for k in sorted(checked) if k not in ordered})
        records.append(ordered)
    if not records:
        raise PairFormatError(f"no pair to write to {path}")
    return write_jsonl_atomic(records, path)
