"""Cognitive behaviours and task-specific behaviours in reward-model traces (PersRM-R1 §5.2–5.3).

Two questions about the reasoning traces the reward model writes during GRPO:

1. **Cognitive behaviours** (Gandhi et al. 2025, "Cognitive behaviors that enable self-improving
   reasoners"): how often a trace shows *verification*, *backtracking*, *subgoal setting* and
   *backward chaining*, per GRPO step. Two classifiers share one interface
   (:class:`BehaviorClassifier`): :class:`RuleBasedBehaviorClassifier` (transparent regular
   expressions, offline, CPU) and :class:`LLMBehaviorClassifier` (one prompt per behaviour, the
   model answers ``<count>N</count>``; any registry model or any HTTP chat endpoint). Their
   agreement is measured by :func:`agreement`.
2. **Task-specific behaviours**: new stylistic criteria (named in RFT outputs, never in the SFT
   traces), criteria diversity per step, re-prioritised criteria (their order against the SFT
   order), and how both relate to correct verdicts (:func:`criteria_table`, :func:`criteria_by_step`,
   :func:`accuracy_by_new_criteria`).

Inputs (run-folder paths, see :mod:`persrm_lib.core.runfiles`):

- ``rft/completions.jsonl`` (written by 04_rft_grpo), one JSON object per sampled completion:
  ``step`` (int, the GRPO step), ``id`` (the pair id, as ``reward.RewardTracker`` writes it;
  ``prompt_id`` and ``pair_id`` are read too), ``completion`` (str), ``label`` ("a" or "b": the
  chosen response), ``reward`` (float). Files of other accelerate processes
  (``completions.rank<k>.jsonl``) are read too. :func:`load_completions` checks these fields and
  names the file and line of any bad record.
- ``data/traces_faithful.jsonl``: the SFT traces (DESIGN.md's trace contract; ``completion`` and
  ``id`` are read).
- ``eval/**/*.jsonl`` or ``eval/**/*.json`` (optional, 05_evaluate): per-pair results with a
  ``completion`` field; the stage (base, sft, rft) comes from a field such as ``stage`` or
  ``model``, else from the file path (:func:`load_eval_completions`).

The **reasoning trace** of a completion (:func:`reasoning_trace`) is the text of its ``<criteria>``
and ``<eval>`` sections when :func:`persrm_lib.core.output_format.parse_output` accepts the completion,
and the raw completion otherwise (a model that breaks the format still reasons).

**Rule-based counting.** A trace is cut into *units* (:func:`split_units`): lines, then sentences
(a break after ``.``, ``!``, ``?`` or ``;`` followed by a space, except after a bare number such as
``1.``), and an inline enumerator that continues a numbered run ("1. rhythm 2. tone") starts a
new unit. A behaviour's count is the number of units in which at least one of its patterns
matches, so "Let me check again" counts once, not twice. The patterns are in
:data:`RULE_PATTERNS` (case-insensitive; ``^`` is the start of a unit):

- verification: "let me check/verify/confirm/re-read", "check/look/read/count ... again",
  "double-check", re-checking/re-examining/re-measuring ("re-count", "re-read", "reread"),
  "confirm(s/ed)", "verify/verified", "indeed", "on closer inspection", "to be sure".
- backtracking: a unit-initial "Wait" followed by punctuation ("Wait, ..." but not "wait time"),
  "hold on", "wait a moment"; a unit-initial "Actually" or "actually," (mid-sentence "actually"
  is emphasis: "B actually uses dashes"); "on second thought"; a unit-initial "Instead" or
  "let me/I will ... instead" (not "instead of": "B uses commas instead of dashes" describes
  style); "revise", "reconsider", "rethink", "I was wrong", "scratch that", "that is not right",
  "start over", "I made a mistake".
- subgoal setting: a unit-initial "First,/Second,/Next,/Then,/Finally," or "First I/we/let ..."
  (not "First-person ..."), "step 1" / "step one", "I will/we need to/I should examine, compare,
  check, assess ...", "let me/let's start, begin, look at, compare ...", "to decide/to do this",
  and numbered enumerations ("1. rhythm", "(2) vocabulary": a list of criteria to examine).
  Bullets ("- rhythm") are not counted: they also carry descriptions, not only plans.
- backward chaining: "for A to be (written by) the author('s)", "if B were/was/is (written by)
  the author", "assuming A is the author's", "we/I would expect", "would need/have to",
  "working backwards", "starting from the verdict/conclusion".

Known false positives, kept because the cue is usually right in these traces: "indeed" used as
emphasis ("the diction is indeed archaic"), "confirm" in a description ("B confirms the habit"),
"would need to" in forward reasoning. The tests list each guarded negative ("wait time",
"instead of", "First-person", "recounts").

**LLM counting.** :data:`BEHAVIOR_PROMPTS` holds one prompt per behaviour, written for style
analysis after Gandhi et al.'s design (a definition, examples from authorship judging, what does
not count), each asking for the number between ``<count>`` and ``</count>``. :func:`parse_count`
is strict: exactly one tag pair holding a non-negative integer. An answer that breaks it gives
``None`` for that behaviour (never 0) and a :class:`CountFailure` with the reason; summaries
report ``n_failed`` beside the means. Small local models never write the tag on their own:
:class:`LocalChatCompleter` can make the answer start with ``<count>`` (``answer_prefix``),
which the parser then reads as part of the answer.

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

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..core.jsonl import iter_jsonl
from ..core.output_format import outcome, parse_output

BEHAVIORS: tuple[str, ...] = ("verification", "backtracking", "subgoal_setting", "backward_chaining")
PAIR_ID_FIELDS: tuple[str, ...] = ("prompt_id", "pair_id", "id")

# ---------------------------------------------------------------------------------------------
# Reading the run folder
# ---------------------------------------------------------------------------------------------


def pair_id_of(record: Mapping[str, Any]) -> str | None:
    """The pair id of a record: the first of ``prompt_id``, ``pair_id``, ``id`` present."""
    for name in PAIR_ID_FIELDS:
        if record.get(name) is not None:
            return str(record[name])
    return None


def load_completions(path: str | Path) -> list[dict[str, Any]]:
    """Read and check ``rft/completions.jsonl`` (the fields are listed in the module docstring).

    Args:
        path: the JSONL file; ``<stem>.rank<k>.jsonl`` files beside it are appended in name order.

    Returns:
        Records with ``step`` (int), ``pair_id`` (str), ``completion``, ``label``, ``reward``.

    Raises:
        FileNotFoundError: the file is missing (run 04_rft_grpo first).
        ValueError: a record lacks a field or has a bad value; the message names file and line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run notebook 04_rft_grpo first (it writes the RFT completions)")
    ranks = sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"))
    records: list[dict[str, Any]] = []
    for source, number, row in ((p, n, r) for p in [path, *ranks] for n, r in iter_jsonl(p)):
        where = f"{source}:{number}"
        for name in ("step", "completion", "label"):
            if name not in row:
                raise ValueError(f"{where}: record lacks field {name!r}")
        step = row["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"{where}: step must be a non-negative integer, got {step!r}")
        if not isinstance(row["completion"], str):
            raise ValueError(f"{where}: completion must be text, got {type(row['completion']).__name__}")
        if row["label"] not in ("a", "b"):
            raise ValueError(f"{where}: label must be 'a' or 'b', got {row['label']!r}")
        pair_id = pair_id_of(row)
        if pair_id is None:
            raise ValueError(f"{where}: record lacks a pair id (one of {', '.join(PAIR_ID_FIELDS)})")
        reward = row.get("reward")
        if reward is not None and (isinstance(reward, bool) or not isinstance(reward, int | float)):
            raise ValueError(f"{where}: reward must be a number, got {reward!r}")
        records.append(
            {
                "step": step,
                "pair_id": pair_id,
                "completion": row["completion"],
                "label": row["label"],
                "reward": None if reward is None else float(reward),
            }
        )
    return records


def load_traces(path: str | Path) -> list[dict[str, Any]]:
    """Read the SFT traces (``data/traces_faithful.jsonl``): ``pair_id``, ``completion`` per trace.

    Raises:
        FileNotFoundError: the file is missing (run 01_synthesize and 02_filter_audit first).
        ValueError: a record lacks ``completion``; the message names file and line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run notebooks 01_synthesize and 02_filter_audit first")
    traces: list[dict[str, Any]] = []
    for number, row in iter_jsonl(path):
        if not isinstance(row.get("completion"), str):
            raise ValueError(f"{path}:{number}: trace lacks a text field 'completion'")
        traces.append({"pair_id": pair_id_of(row), "completion": row["completion"]})
    return traces


def _stage_from_text(text: str) -> str | None:
    tokens = set(re.split(r"[^a-z0-9]+", text.lower()))
    for stage in ("rft", "sft", "base"):  # "sft_rft" is the RFT model
        if stage in tokens:
            return stage
    return None


STAGE_FIELDS: tuple[str, ...] = ("stage", "model", "judge", "adapter", "variant")


def _eval_rows(path: Path) -> list[dict[str, Any]]:
    """Records of one evaluation file: JSONL lines, or a JSON document's ``results`` list."""
    if path.suffix == ".jsonl":
        return [row for _, row in iter_jsonl(path)]
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg})") from exc
    rows = document.get("results") if isinstance(document, dict) else document
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def load_eval_completions(eval_dir: str | Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Per-pair evaluation completions grouped by stage (``base``, ``sft``, ``rft``), if any.

    Files: ``eval/**/*.jsonl`` (one record a line) and ``eval/**/*.json`` (a document whose
    ``results`` list holds the per-pair records, as ``persrm_lib.evaluate`` writes). A record's
    stage is read from its first field of :data:`STAGE_FIELDS` naming ``base``, ``sft`` or ``rft``
    (``sft_rft`` is RFT), else from its file path (a path part ``base``, ``sft`` or ``rft``).
    Records without a text ``completion`` (non-generative judges) or without a stage are skipped.

    Returns:
        ``(by_stage, notes)``: stage -> records (``pair_id``, ``completion``, ``label`` when
        present), and human-readable notes on what was absent or skipped.
    """
    eval_dir = Path(eval_dir)
    by_stage: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    if not eval_dir.exists():
        return by_stage, [f"{eval_dir} is absent: no base or SFT completions to compare (run 05_evaluate)"]
    files = sorted(p for p in eval_dir.rglob("*") if p.suffix in (".jsonl", ".json") and p.is_file())
    for path in files:
        rel = path.relative_to(eval_dir).as_posix()
        skipped = 0
        for row in _eval_rows(path):
            if not isinstance(row.get("completion"), str):
                skipped += 1
                continue
            stage = next(
                (
                    _stage_from_text(row[f])
                    for f in STAGE_FIELDS
                    if isinstance(row.get(f), str) and _stage_from_text(row[f])
                ),
                None,
            )
            stage = stage or _stage_from_text(rel)
            if stage is None:
                skipped += 1
                continue
            label = row.get("label")
            by_stage.setdefault(stage, []).append(
                {
                    "pair_id": pair_id_of(row),
                    "completion": row["completion"],
                    "label": label if label in ("a", "b") else None,
                }
            )
        if skipped:
            notes.append(f"{rel}: {skipped} record(s) without a completion or a recognisable stage were skipped")
    if not files:
        notes.append(f"{eval_dir} holds no JSON or JSONL files: no base or SFT completions to compare")
    for stage in ("base", "sft"):
        if stage not in by_stage:
            notes.append(f"no {stage} completions under {eval_dir}")
    return by_stage, notes


def reasoning_trace(completion: str) -> tuple[str, bool]:
    """The reasoning text of a completion and whether the output format parsed.

    >>> reasoning_trace("<criteria>rhythm</criteria><eval>A fits</eval><scores>[7, 2]</scores>")
    ('rhythm\\nA fits', True)
    >>> reasoning_trace("Wait, A fits")
    ('Wait, A fits', False)
    """
    parsed = parse_output(completion)
    if parsed.ok:
        return f"{parsed.criteria}\n{parsed.evaluation}", True
    return completion, False


# ---------------------------------------------------------------------------------------------
# The classifier interface
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class BehaviorClassifier(Protocol):
    """Counts cognitive behaviours in a reasoning trace.

    ``count`` returns one entry per behaviour in :data:`BEHAVIORS`: a non-negative count, or
    ``None`` when the classifier could not tell (an LLM answer that did not parse). ``None`` is
    never the same as zero and is reported as a failure, not averaged in.
    """

    name: str
    behaviors: tuple[str, ...]

    def count(self, trace_text: str) -> dict[str, int | None]: ...

    def count_batch(self, traces: Sequence[str]) -> list[dict[str, int | None]]: ...


# ---------------------------------------------------------------------------------------------
# Rule-based classifier
# ---------------------------------------------------------------------------------------------

_S = r"^\W*"  # the start of a unit, after any quotes, bullets or brackets
_WHO = r"(?:response |text |passage )?(?:[ab]|it|this|either|each|one)"
_AUTHOR = r"(?:written by |by |from |the work of )?(?:the |this |our )?(?:same |target )?author"

# behaviour -> ((pattern, what it catches), ...). Matched case-insensitively against one unit.
RULE_PATTERNS: dict[str, tuple[tuple[str, str], ...]] = {
    "verification": (
        (
            r"\blet(?:'s| me| us) (?:double[- ]?)?(?:check|verify|confirm|re-?read|re-?count|look again)",
            "let me check / verify",
        ),
        (
            r"\b(?:check|checking|checked|look|looking|read|reading|count|counting)(?: \w+){0,3} again\b",
            "checking again",
        ),
        (r"\bdouble[- ]?check", "double-check"),
        (r"\bre-?(?:check|examin|measur)\w*|\bre-(?:count|read)\w*|\breread\w*", "re-checking, re-measuring"),
        (r"\bconfirm(?:s|ed|ing|ation)?\b", "confirm"),
        (r"\bverif(?:y|ies|ied|ying|ication)\b", "verify"),
        (r"\bindeed\b", "indeed"),
        (r"\bon closer (?:inspection|look|reading)\b|\bto be sure\b|\bsure enough\b", "on closer inspection"),
    ),
    "backtracking": (
        (_S + r"(?:(?:but|hmm+|oh|no|ok|okay)\W+)?wait\b\s*(?:[,!.…—–-]|$)", "unit-initial 'Wait,'"),
        (r"\bwait a (?:moment|minute|second)\b|\bhold on\b", "hold on"),
        (_S + r"(?:(?:but|hmm+|oh|no)\W+)?actually\b|\bactually,", "unit-initial 'Actually'"),
        (r"\bon (?:second|further) thought\b|\bon reflection\b", "on second thought"),
        (
            _S
            + r"instead\b(?! of\b)|\b(?:let me|let's|i will|i'll|i should|we should)(?: \w+){0,3} instead\b(?! of\b)",
            "'Instead, ...'",
        ),
        (r"\brevis(?:e|es|ed|ing|ion)\b|\breconsider\w*|\bre-?think\w*", "revise / reconsider"),
        (r"\b(?:i|we) (?:was|were) wrong\b|\bscratch that\b|\bstart over\b", "I was wrong / scratch that"),
        (
            r"\b(?:that|this)(?:'s not| is not| isn't) right\b|\b(?:i|we) (?:made|make) an? (?:mistake|error)\b",
            "that is not right / I made a mistake",
        ),
    ),
    "subgoal_setting": (
        (
            _S + r"(?:first(?:ly)?|second(?:ly)?|third(?:ly)?|next|then|finally|lastly)\b"
            r"(?:\s*,|\s+(?:i|we|let|let's|i'll|we'll|i will|compare|check|look|examine|consider|assess))",
            "unit-initial 'First,' / 'Next,' / 'Then I'",
        ),
        (r"\bstep (?:\d+|one|two|three|four|five)\b", "step 1"),
        (
            r"\b(?:i|we)(?:'ll| will| need to| should| must| have to) (?:first |then |now |next )?"
            r"(?:examine|compare|check|look at|assess|consider|evaluate|analy[sz]e|identify|break|start|focus on)\b",
            "I will examine / we need to compare",
        ),
        (
            r"\blet(?:'s| me| us) (?:first |now |next )?(?:start|begin|break|look at|examine|compare|consider|focus on)\b",
            "let me start",
        ),
        (r"\bto (?:do this|decide|judge this|answer this|determine (?:this|which))\b", "to decide"),
        (_S + r"(?:\d{1,2}[.)]|\(\d{1,2}\)|\(?[a-h]\))\s+\w", "numbered enumeration"),
    ),
    "backward_chaining": (
        (r"\bfor " + _WHO + r" to be " + _AUTHOR, "for A to be the author's"),
        (r"\bif " + _WHO + r" (?:were|was|is|had been) " + _AUTHOR, "if B were written by the author"),
        (r"\bassum(?:e|ing) (?:that )?" + _WHO + r" (?:is|was|were) " + _AUTHOR, "assuming A is the author's"),
        (r"\b(?:we|i|one)(?:'d| would) (?:expect|anticipate|need to see)\b|\bwould expect\b", "we would expect"),
        (r"\bwould (?:need|have) to\b", "it would need to"),
        (r"\b(?:work|working|reason|reasoning) backwards?\b", "working backwards"),
        (
            r"\b(?:start|starting|begin|beginning) (?:from|with) the (?:verdict|conclusion|answer|hypothesis)\b",
            "from the verdict",
        ),
    ),
}

_COMPILED: dict[str, tuple[re.Pattern[str], ...]] = {
    behavior: tuple(re.compile(pattern, re.IGNORECASE) for pattern, _ in patterns)
    for behavior, patterns in RULE_PATTERNS.items()
}

_SENTENCE_BREAK = re.compile(r"(?<=[!?;])\s+|(?<=[^\d\s][.])\s+|(?<=\.\.\.)\s+")
_LEADING_ENUMERATOR = re.compile(r"^\s*\(?(\d{1,2})[.)]\s")
_INLINE_ENUMERATOR = re.compile(r"(?<=\s)\(?(\d{1,2})[.)]\s")


def _split_enumeration(line: str) -> list[str]:
    """Cut a line before inline enumerators that continue a numbered run ("1. x 2. y 3. z").

    Only the next number of the run starts a piece, so "the score is 7. B is weaker" stays whole.
    """
    leading = _LEADING_ENUMERATOR.match(line)
    expect = int(leading.group(1)) + 1 if leading else 1
    cuts = [0]
    for match in _INLINE_ENUMERATOR.finditer(line):
        if int(match.group(1)) == expect:
            cuts.append(match.start())
            expect += 1
    return [line[a:b] for a, b in zip(cuts, [*cuts[1:], len(line)], strict=True)]


def split_units(text: str) -> list[str]:
    """Cut a trace into the units that rule-based counts are made of (see the module docstring).

    >>> split_units("1. rhythm 2. tone\\nWait, A is off. Let me check again.")
    ['1. rhythm', '2. tone', 'Wait, A is off.', 'Let me check again.']
    """
    units: list[str] = []
    for line in text.splitlines():
        for item in _split_enumeration(line):
            for piece in _SENTENCE_BREAK.split(item):
                if piece.strip():
                    units.append(piece.strip())
    return units


@dataclass
class RuleBasedBehaviorClassifier:
    """Counts behaviours with the regular expressions of :data:`RULE_PATTERNS`; offline and exact.

    A behaviour's count is the number of units (:func:`split_units`) matching any of its patterns.

    >>> clf = RuleBasedBehaviorClassifier()
    >>> clf.count("First, compare rhythm. Wait, A is off. Let me check again: indeed it is.")
    {'verification': 1, 'backtracking': 1, 'subgoal_setting': 1, 'backward_chaining': 0}
    """

    name: str = "rule"
    behaviors: tuple[str, ...] = BEHAVIORS

    def __post_init__(self) -> None:
        unknown = [b for b in self.behaviors if b not in RULE_PATTERNS]
        if unknown:
            raise ValueError(f"unknown behaviour(s) {unknown}; choose from {', '.join(BEHAVIORS)}")

    def matches(self, trace_text: str) -> dict[str, list[str]]:
        """The units in which each behaviour was found (the evidence behind :meth:`count`)."""
        units = split_units(trace_text)
        return {b: [u for u in units if any(p.search(u) for p in _COMPILED[b])] for b in self.behaviors}

    def count(self, trace_text: str) -> dict[str, int | None]:
        return {b: len(found) for b, found in self.matches(trace_text).items()}

    def count_batch(self, traces: Sequence[str]) -> list[dict[str, int | None]]:
        return [self.count(t) for t in traces]


# ---------------------------------------------------------------------------------------------
# LLM classifier
# ---------------------------------------------------------------------------------------------

_COUNT_TAG = re.compile(r"<\s*(/?)\s*count\s*>", re.IGNORECASE)
_NON_NEGATIVE_INT = re.compile(r"[0-9]+")


def count_parse_reason(text: object) -> tuple[int | None, str | None]:
    """Like :func:`parse_count`, and also say why an answer was rejected (``None`` when accepted)."""
    if not isinstance(text, str):
        return None, f"answer is a {type(text).__name__}, not text"
    tags = list(_COUNT_TAG.finditer(text))
    opens = [m for m in tags if not m.group(1)]
    closes = [m for m in tags if m.group(1)]
    if not opens or not closes:
        return None, "no <count>...</count> tag"
    if len(opens) > 1 or len(closes) > 1:
        return None, f"{len(opens)} <count> and {len(closes)} </count> tags, expected exactly one pair"
    if closes[0].start() < opens[0].end():
        return None, "</count> comes before <count>"
    body = text[opens[0].end() : closes[0].start()].strip()
    if not _NON_NEGATIVE_INT.fullmatch(body):
        return None, f"count {body[:20]!r} is not a non-negative integer"
    return int(body), None


def parse_count(text: object) -> int | None:
    """Read the classifier's answer: exactly one ``<count>N</count>``, N a non-negative integer.

    Whitespace around N is allowed, other text around the tag too; anything else is ``None``
    (a parse failure, never zero).

    >>> parse_count("Two checks. <count> 2 </count>")
    2
    >>> parse_count("<count>-1</count>") is None
    True
    """
    return count_parse_reason(text)[0]


_PROMPT_SYSTEM = (
    "You audit reasoning written by an authorship judge. The judge read writing samples by one author "
    "and two candidate texts, A and B, listed stylistic criteria and compared the candidates to decide "
    "which one the author wrote. You count one kind of reasoning move in that text. Count only clear, "
    "distinct instances; if there are none, the count is 0. Think briefly if you need to, then end with "
    "the number written between <count> and </count>, for example <count>0</count> when there is none."
)

BEHAVIOR_PROMPTS: dict[str, str] = {
    "verification": (
        "Move to count: VERIFICATION. The judge checks a claim it made, or an intermediate result, "
        "against the texts: it re-reads a sentence, re-measures a feature (sentence length, comma use, "
        "word choice), or confirms that an observation holds before relying on it. Examples: 'Checking "
        "again, A's sentences do average under ten words'; 'Looking back at the samples, the author "
        "really never uses semicolons, so this holds.' A plain first description of a text is not "
        "verification."
    ),
    "backtracking": (
        "Move to count: BACKTRACKING. The judge notices that an earlier observation, criterion or "
        "leaning was wrong or unhelpful and abandons or revises it. Examples: 'Wait, that dash appears in "
        "B, not A, so I take that back'; 'On second thought, vocabulary is a weak clue here; rhythm is "
        "better.' Contrasts between the texts ('A is formal whereas B is casual') are not backtracking."
    ),
    "subgoal_setting": (
        "Move to count: SUBGOAL SETTING. The judge breaks the decision into smaller steps it will take, "
        "such as a plan or an ordered list of criteria to examine. Examples: 'First I will compare "
        "sentence length, then punctuation, then tone'; 'Step 2: check the vocabulary against the "
        "samples.' Count each stated step or listed item to examine."
    ),
    "backward_chaining": (
        "Move to count: BACKWARD CHAINING. The judge starts from a possible verdict and reasons back to "
        "what would have to be true for it. Examples: 'If B were the author's, we would expect the long "
        "periodic sentences of the samples'; 'For A to be the author's text, it would need the same "
        "dry irony.' Reasoning forward from observations to a verdict is not backward chaining."
    ),
}


def behavior_messages(behavior: str, trace_text: str, max_trace_chars: int = 4000) -> list[dict[str, str]]:
    """The chat messages that ask for one behaviour's count in one trace."""
    if behavior not in BEHAVIOR_PROMPTS:
        raise ValueError(f"unknown behaviour {behavior!r}; choose from {', '.join(BEHAVIORS)}")
    trace = trace_text if len(trace_text) <= max_trace_chars else trace_text[:max_trace_chars] + " [...]"
    user = (
        f"{BEHAVIOR_PROMPTS[behavior]}\n\nReasoning text:\n<<<\n{trace}\n>>>\n\n"
        "How many distinct instances of this move does the text contain? "
        "End with the number between <count> and </count>."
    )
    return [{"role": "system", "content": _PROMPT_SYSTEM}, {"role": "user", "content": user}]


@runtime_checkable
class ChatCompleter(Protocol):
    """Anything that answers a list of chat messages with text: a local model, an HTTP teacher."""

    def complete(self, messages: list[dict[str, str]]) -> str: ...


@dataclass
class FunctionCompleter:
    """Wrap a plain ``messages -> str`` function (e.g. a teacher's method) as a :class:`ChatCompleter`."""

    fn: Callable[[list[dict[str, str]]], str]

    def complete(self, messages: list[dict[str, str]]) -> str:
        return self.fn(messages)


class LocalChatCompleter:
    """Greedy chat completion with a causal LM and its tokenizer (e.g. from ``registry.load_model``).

    Args:
        model: a transformers causal LM.
        tokenizer: its tokenizer, with a chat template.
        max_new_tokens: the answer's length limit (the count tag needs few tokens).
        batch_size: prompts generated together in :meth:`complete_batch` (left padding).
        answer_prefix: text the assistant turn is made to start with (e.g. ``"<count>"`` for small
            models that never write the tag on their own); it is put back in front of the answer,
            so the strict parser still reads the whole tag.
    """

    def __init__(
        self, model: Any, tokenizer: Any, max_new_tokens: int = 24, batch_size: int = 8, answer_prefix: str = ""
    ) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be at least 1")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.answer_prefix = answer_prefix

    @classmethod
    def from_registry(cls, name: str, **kwargs: Any) -> LocalChatCompleter:
        """Load a registry model (``"tiny-random"``, ``"smollm2-135m-instruct"``, a hub id or a path)."""
        from ..models.registry import load_model

        model, tokenizer = load_model(name)
        return cls(model, tokenizer, **kwargs)

    def complete(self, messages: list[dict[str, str]]) -> str:
        return self.complete_batch([messages])[0]

    def complete_batch(self, conversations: Sequence[list[dict[str, str]]]) -> list[str]:
        from ..models.generation import generate

        prompts = [
            self.tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) + self.answer_prefix
            for m in conversations
        ]
        texts = generate(self.model, self.tokenizer, prompts, self.max_new_tokens, self.batch_size).texts
        return [self.answer_prefix + text for text in texts]


@dataclass(frozen=True)
class CountFailure:
    """An LLM answer that did not parse: which behaviour, which trace (its index among all traces this
    classifier has counted, in order), why, and the answer itself (cut to 200 characters)."""

    behavior: str
    trace_index: int
    reason: str
    answer: str


@dataclass
class LLMBehaviorClassifier:
    """Counts behaviours by asking a language model, one prompt per behaviour (Gandhi et al. 2025).

    Every answer must hold exactly one ``<count>N</count>`` (:func:`parse_count`); an answer that
    does not gives ``None`` for that behaviour and is recorded in :attr:`failures`.

    Args:
        completer: a :class:`ChatCompleter` (``LocalChatCompleter.from_registry("tiny-random")``,
            an HTTP teacher, or ``FunctionCompleter(fn)``). A ``complete_batch`` method is used
            when present.
        behaviors: the behaviours to count.
        max_trace_chars: longer traces are cut to this many characters in the prompt.

    >>> clf = LLMBehaviorClassifier(FunctionCompleter(lambda messages: "<count>1</count>"))
    >>> clf.count("First, rhythm.")
    {'verification': 1, 'backtracking': 1, 'subgoal_setting': 1, 'backward_chaining': 1}
    """

    completer: Any
    behaviors: tuple[str, ...] = BEHAVIORS
    max_trace_chars: int = 4000
    name: str = "llm"
    failures: list[CountFailure] = field(default_factory=list)
    n_traces: int = 0

    @property
    def n_queries(self) -> int:
        """Prompts sent so far (one per behaviour and trace)."""
        return self.n_traces * len(self.behaviors)

    def __post_init__(self) -> None:
        if not callable(getattr(self.completer, "complete", None)):
            raise TypeError(
                f"completer {type(self.completer).__name__} has no complete(messages) method; "
                "wrap a function with FunctionCompleter"
            )
        unknown = [b for b in self.behaviors if b not in BEHAVIOR_PROMPTS]
        if unknown:
            raise ValueError(f"unknown behaviour(s) {unknown}; choose from {', '.join(BEHAVIORS)}")

    def count(self, trace_text: str) -> dict[str, int | None]:
        return self.count_batch([trace_text])[0]

    def count_batch(self, traces: Sequence[str]) -> list[dict[str, int | None]]:
        jobs = [(i, b) for i in range(len(traces)) for b in self.behaviors]
        conversations = [behavior_messages(b, traces[i], self.max_trace_chars) for i, b in jobs]
        batch = getattr(self.completer, "complete_batch", None)
        answers = list(batch(conversations)) if callable(batch) else [self.completer.complete(m) for m in conversations]
        offset = self.n_traces
        self.n_traces += len(traces)
        results: list[dict[str, int | None]] = [{} for _ in traces]
        for (i, behavior), answer in zip(jobs, answers, strict=True):
            value, reason = count_parse_reason(answer)
            results[i][behavior] = value
            if reason is not None:
                text = answer if isinstance(answer, str) else repr(answer)
                self.failures.append(CountFailure(behavior, offset + i, reason, text[:200]))
        return results

    def failure_report(self) -> dict[str, dict[str, float]]:
        """Per behaviour: queries asked, answers that failed to parse, and the failure rate."""
        per_behavior = self.n_traces
        failed = Counter(f.behavior for f in self.failures)
        return {
            b: {
                "queries": per_behavior,
                "failures": failed[b],
                "failure_rate": failed[b] / per_behavior if per_behavior else math.nan,
            }
            for b in self.behaviors
        }


def make_classifier(kind: str, llm_model: str = "tiny-random", completer: Any = None, **llm_kwargs: Any) -> list[Any]:
    """The classifiers a notebook parameter asks for: ``"rule"``, ``"llm"`` or ``"both"``.

    Args:
        kind: which classifier(s).
        llm_model: registry model for the LLM classifier (ignored when ``completer`` is given).
        completer: a ready :class:`ChatCompleter` (e.g. an HTTP teacher) to use instead of a local model.
        llm_kwargs: passed to :class:`LocalChatCompleter` (``max_new_tokens``, ``batch_size``).

    Returns:
        The classifiers, rule-based first.
    """
    if kind not in ("rule", "llm", "both"):
        raise ValueError(f"classifier must be 'rule', 'llm' or 'both', got {kind!r}")
    classifiers: list[Any] = []
    if kind in ("rule", "both"):
        classifiers.append(RuleBasedBehaviorClassifier())
    if kind in ("llm", "both"):
        if completer is None:
            completer = LocalChatCompleter.from_registry(llm_model, **llm_kwargs)
        classifiers.append(LLMBehaviorClassifier(completer))
    return classifiers


# ---------------------------------------------------------------------------------------------
# Tallies
# ---------------------------------------------------------------------------------------------


def behavior_counts(
    records: Sequence[Mapping[str, Any]], classifier: BehaviorClassifier, stage: str = "rft"
) -> pd.DataFrame:
    """One row per completion: ``stage, step, pair_id, format_ok, classifier`` and a count per behaviour.

    Counts are a nullable integer dtype: a missing value is a classifier failure, never zero.
    """
    read = [reasoning_trace(r["completion"]) for r in records]
    counts = classifier.count_batch([text for text, _ in read]) if read else []
    oks = [ok for _, ok in read]
    rows = []
    for record, ok, count in zip(records, oks, counts, strict=True):
        row = {
            "stage": stage,
            "step": record.get("step"),
            "pair_id": record.get("pair_id"),
            "format_ok": ok,
            "classifier": classifier.name,
        }
        row.update({b: count.get(b) for b in classifier.behaviors})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["stage", "step", "pair_id", "format_ok", "classifier", *classifier.behaviors])
    for b in classifier.behaviors:
        frame[b] = frame[b].astype("Int64")
    return frame


def summarize_by(counts: pd.DataFrame, by: str | Sequence[str] = "step") -> pd.DataFrame:
    """Long table per group and behaviour: mean count, share of traces showing it, failures.

    Means and shares are over the traces the classifier could count (``n_counted``);
    ``n_failed`` traces (``None`` counts) are reported beside them, never averaged in as zero.
    """
    keys = [by] if isinstance(by, str) else list(by)
    behaviors = [b for b in BEHAVIORS if b in counts.columns]
    rows = []
    for group, frame in counts.groupby(keys, sort=True, dropna=False):
        group = group if isinstance(group, tuple) else (group,)
        for b in behaviors:
            values = frame[b].dropna().astype(float)
            rows.append(
                {
                    **dict(zip(keys, group, strict=True)),
                    "behavior": b,
                    "mean_count": float(values.mean()) if len(values) else math.nan,
                    "share_present": float((values > 0).mean()) if len(values) else math.nan,
                    "n_counted": int(len(values)),
                    "n_failed": int(frame[b].isna().sum()),
                }
            )
    return pd.DataFrame(rows)


def failure_counts(counts: pd.DataFrame) -> dict[str, int]:
    """Traces whose count failed (``None``), per behaviour."""
    return {b: int(counts[b].isna().sum()) for b in BEHAVIORS if b in counts.columns}


def agreement(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Agreement of two classifiers on the same traces, per behaviour.

    Rows are matched by position (both frames come from :func:`behavior_counts` on the same
    records). Traces where either count failed are left out (``n``). Columns: Cohen's kappa on
    presence (count > 0, scikit-learn), Spearman and Pearson correlation on counts (SciPy), and
    ``note`` explaining any NaN: kappa is undefined when both classifiers give one presence value
    for every trace (chance agreement is 1, e.g. a behaviour that never occurs); a correlation is
    undefined when either classifier's counts are constant, or when fewer than 2 traces are left.
    """
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import cohen_kappa_score

    if len(first) != len(second):
        raise ValueError(f"the two count tables have {len(first)} and {len(second)} rows; count the same traces")
    rows = []
    for b in BEHAVIORS:
        if b not in first.columns or b not in second.columns:
            continue
        valid = first[b].notna().to_numpy() & second[b].notna().to_numpy()
        x = first[b].to_numpy()[valid].astype(float)
        y = second[b].to_numpy()[valid].astype(float)
        row: dict[str, Any] = {
            "behavior": b,
            "n": int(valid.sum()),
            "n_failed": int((~valid).sum()),
            "present_first": float((x > 0).mean()) if len(x) else math.nan,
            "present_second": float((y > 0).mean()) if len(y) else math.nan,
            "kappa": math.nan,
            "spearman": math.nan,
            "pearson": math.nan,
        }
        notes = []
        if len(x) < 2:
            notes.append(f"only {len(x)} trace(s) counted by both: no agreement statistic")
        else:
            px, py = (x > 0).astype(int), (y > 0).astype(int)
            if len(set(px) | set(py)) < 2:
                state = "present in every trace" if px[0] else "never occurs"
                notes.append(f"kappa undefined: the behaviour {state} for both classifiers (chance agreement is 1)")
            else:
                row["kappa"] = float(cohen_kappa_score(px, py))
            constant = [name for name, v in (("first", x), ("second", y)) if np.all(v == v[0])]
            if constant:
                notes.append(f"correlations undefined: counts are constant for the {' and '.join(constant)} classifier")
            else:
                row["spearman"] = float(spearmanr(x, y).statistic)
                row["pearson"] = float(pearsonr(x, y).statistic)
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows)


def behavior_examples(
    records: Sequence[Mapping[str, Any]], per_behavior: int = 2, max_chars: int = 240
) -> dict[str, list[dict[str, Any]]]:
    """Quoted units showing each behaviour (rule-based evidence), with step and pair id.

    Records are scanned in order of (step, pair id, position) and at most one unit per record is
    quoted, so the examples spread over traces.
    """
    clf = RuleBasedBehaviorClassifier()
    order = sorted(range(len(records)), key=lambda i: (records[i].get("step") or 0, str(records[i].get("pair_id")), i))
    examples: dict[str, list[dict[str, Any]]] = {b: [] for b in BEHAVIORS}
    for i in order:
        record = records[i]
        found = clf.matches(reasoning_trace(record["completion"])[0])
        for b in BEHAVIORS:
            if found[b] and len(examples[b]) < per_behavior:
                quote = found[b][0]
                quote = quote if len(quote) <= max_chars else quote[: max_chars - 3] + "..."
                examples[b].append({"step": record.get("step"), "pair_id": record.get("pair_id"), "quote": quote})
    return examples


# ---------------------------------------------------------------------------------------------
# Task-specific behaviours: stylistic criteria
# ---------------------------------------------------------------------------------------------

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
    """Summarise the criteria of the SFT traces.

    ``mean_position`` is each criterion's mean position ``i / (k - 1)`` in traces naming ``k >= 2``
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
            if trace.get("pair_id") is not None:
                first_by_pair.setdefault(str(trace["pair_id"]), criteria[0])
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

    Columns: ``step, pair_id, format_ok, correct`` (``outcome(completion, label) == 1``),
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
                "correct": outcome(record["completion"], record["label"]) == 1,
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


def nan_to_none(value: Any) -> Any:
    """Plain JSON value: floats that are NaN become ``None`` (JSON has no NaN), numpy scalars Python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------------------
# Notebook helpers: sampling, figures, headline metrics
# ---------------------------------------------------------------------------------------------


def evenly_spaced(records: Sequence[Any], n: int) -> list[Any]:
    """At most ``n`` records spread evenly over the sequence (all of them when ``n <= 0``).

    Deterministic: the same records for the same ``n``, so every training step stays represented.

    >>> evenly_spaced(list(range(10)), 4)
    [0, 3, 6, 9]
    """
    if n <= 0 or n >= len(records):
        return list(records)
    index = np.linspace(0, len(records) - 1, n).round().astype(int)
    return [records[i] for i in sorted(set(index.tolist()))]


def plot_behaviors_over_steps(summaries: Mapping[str, pd.DataFrame]) -> Any:
    """One panel per classifier: mean count per trace of each behaviour against the GRPO step."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(summaries), figsize=(5.5 * len(summaries), 3.8), squeeze=False, sharey=True)
    for ax, (name, summary) in zip(axes[0], summaries.items(), strict=True):
        for behavior in BEHAVIORS:
            rows = summary[summary["behavior"] == behavior]
            ax.plot(rows["step"], rows["mean_count"], marker="o", label=behavior.replace("_", " "))
        failed = int(summary["n_failed"].sum())
        ax.set_title(f"{name} classifier" + (f" ({failed} counts failed to parse)" if failed else ""))
        if summary["mean_count"].isna().all():
            ax.text(0.5, 0.5, "no count parsed", ha="center", va="center", transform=ax.transAxes)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("GRPO step")
        ax.set_ylabel("mean count per trace")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_stage_comparison(summary: pd.DataFrame, title: str, stage_order: Sequence[str] | None = None) -> Any:
    """Grouped bars: mean count per trace of each behaviour, per stage (teacher, base, sft, rft)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 3.8))
    data = summary.assign(behavior=summary["behavior"].str.replace("_", " "))
    order = [s for s in (stage_order or sorted(set(data["stage"]))) if s in set(data["stage"])]
    sns.barplot(data=data, x="behavior", y="mean_count", hue="stage", hue_order=order, ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel("mean count per trace")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_criteria_over_steps(by_step: pd.DataFrame) -> Any:
    """Three panels over GRPO steps: criteria diversity, new criteria, re-prioritisation."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    axes[0].plot(by_step["step"], by_step["distinct_criteria"], marker="o", label="distinct criteria")
    axes[0].plot(by_step["step"], by_step["entropy_bits"], marker="s", label="entropy (bits)")
    axes[0].set_title("criteria diversity")
    axes[1].plot(by_step["step"], by_step["share_with_new"], marker="o", label="outputs with a new criterion")
    axes[1].plot(by_step["step"], by_step["accuracy"], marker="s", label="accuracy (all outputs)")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].set_title("new stylistic criteria")
    axes[2].plot(by_step["step"], by_step["mean_order_rho"], marker="o", label="rank corr. with SFT order")
    axes[2].plot(by_step["step"], by_step["share_first_changed"], marker="s", label="first criterion changed")
    axes[2].set_ylim(-1.05, 1.05)
    axes[2].set_title("re-prioritised criteria")
    for ax in axes:
        ax.set_xlabel("GRPO step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def step_metrics(summary: pd.DataFrame, prefix: str) -> dict[str, Any]:
    """Headline numbers of a per-step summary: mean count per behaviour at the first and last step
    and over all steps (``<prefix>_<behavior>_first|last|all``), NaN as ``None``."""
    out: dict[str, Any] = {}
    if summary.empty:
        return out
    first, last = summary["step"].min(), summary["step"].max()
    for behavior in BEHAVIORS:
        rows = summary[summary["behavior"] == behavior]
        if rows.empty:
            continue
        counted = rows["n_counted"].sum()
        overall = float((rows["mean_count"].fillna(0) * rows["n_counted"]).sum() / counted) if counted else math.nan
        out[f"{prefix}_{behavior}_first"] = nan_to_none(float(rows.loc[rows["step"] == first, "mean_count"].iloc[0]))
        out[f"{prefix}_{behavior}_last"] = nan_to_none(float(rows.loc[rows["step"] == last, "mean_count"].iloc[0]))
        out[f"{prefix}_{behavior}_all"] = nan_to_none(overall)
    return out
