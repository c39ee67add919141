"""Cognitive-behaviour classifiers for reward-model traces (PersRM-R1 §5.2): how often a trace shows
*verification*, *backtracking*, *subgoal setting* and *backward chaining* (Gandhi et al. 2025,
"Cognitive behaviors that enable self-improving reasoners"), counted by rules (offline) or by asking an
LLM, behind one interface (:class:`BehaviorClassifier`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..core.prompt import neutralise_special_tokens
from ..models.client import ChatClient, LocalChatClient

BEHAVIORS: tuple[str, ...] = ("verification", "backtracking", "subgoal_setting", "backward_chaining")


@runtime_checkable
class BehaviorClassifier(Protocol):
    """Counts cognitive behaviours in a reasoning trace: per behaviour a non-negative count, or
    ``None`` when the classifier could not tell (a failure, never zero)."""

    name: str
    behaviors: tuple[str, ...]

    def count(self, trace_text: str) -> dict[str, int | None]: ...

    def count_batch(self, traces: Sequence[str]) -> list[dict[str, int | None]]: ...


def _check_behaviors(behaviors: Sequence[str]) -> None:
    unknown = [b for b in behaviors if b not in BEHAVIORS]
    if unknown:
        raise ValueError(f"unknown behaviour(s) {unknown}; choose from {', '.join(BEHAVIORS)}")


_S = r"^\W*"  # the start of a unit, after any quotes, bullets or brackets
_WHO = r"(?:response |text |passage )?(?:[ab]|it|this|either|each|one)"
_AUTHOR = r"(?:written by |by |from |the work of )?(?:the |this |our )?(?:same |target )?author"

# behaviour -> ((pattern, what it catches), ...). Matched case-insensitively against one unit. The guarded
# negatives are the cases of tests/test_behaviors.py; known false positives, kept because the cue is usually
# right in these traces: "indeed" as emphasis, "confirm" in a description, "would need to" in forward reasoning.
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
    """Cut a line before inline enumerators that continue its numbered run ("the score is 7. B" stays whole)."""
    leading = _LEADING_ENUMERATOR.match(line)
    expect = int(leading.group(1)) + 1 if leading else 1
    cuts = [0]
    for match in _INLINE_ENUMERATOR.finditer(line):
        if int(match.group(1)) == expect:
            cuts.append(match.start())
            expect += 1
    return [line[a:b] for a, b in zip(cuts, [*cuts[1:], len(line)], strict=True)]


def split_units(text: str) -> list[str]:
    """Cut a trace into the units that rule-based counts are made of: lines, then sentences, then the
    items of an inline numbered run ("1. x 2. y"); stripped, blank ones dropped."""
    items = (item for line in text.splitlines() for item in _split_enumeration(line))
    return [piece.strip() for item in items for piece in _SENTENCE_BREAK.split(item) if piece.strip()]


@dataclass
class RuleBasedBehaviorClassifier:
    """Counts the units (:func:`split_units`) matching each behaviour's :data:`RULE_PATTERNS`, so "Let me
    check again" counts once."""

    name: str = "rule"
    behaviors: tuple[str, ...] = BEHAVIORS

    def __post_init__(self) -> None:
        _check_behaviors(self.behaviors)

    def matches(self, trace_text: str) -> dict[str, list[str]]:
        """The units in which each behaviour was found (the evidence behind :meth:`count`)."""
        units = split_units(trace_text)
        return {b: [u for u in units if any(p.search(u) for p in _COMPILED[b])] for b in self.behaviors}

    def count(self, trace_text: str) -> dict[str, int | None]:
        """Units matching each behaviour in one trace (never ``None``)."""
        return {b: len(found) for b, found in self.matches(trace_text).items()}

    def count_batch(self, traces: Sequence[str]) -> list[dict[str, int | None]]:
        """:meth:`count` of each trace, in order."""
        return [self.count(t) for t in traces]


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
    """Exactly one ``<count>N</count>`` (N a non-negative integer, whitespace and other text around
    allowed) -> N; anything else -> ``None``."""
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


def behavior_messages(
    behavior: str, trace_text: str, max_trace_chars: int = 4000, *, tokenizer: Any = None
) -> list[dict[str, str]]:
    """System and user messages asking for one behaviour's count in one trace, the trace cut to
    ``max_trace_chars`` characters (then `` [...]``) and made plain text
    (:func:`persrm_lib.core.prompt.neutralise_special_tokens`, with ``tokenizer``'s own special tokens
    when given), so a trace holding ``<|im_end|>`` cannot close the user turn.

    Raises:
        ValueError: an unknown behaviour.
    """
    if behavior not in BEHAVIOR_PROMPTS:
        raise ValueError(f"unknown behaviour {behavior!r}; choose from {', '.join(BEHAVIORS)}")
    trace = trace_text if len(trace_text) <= max_trace_chars else trace_text[:max_trace_chars] + " [...]"
    trace = neutralise_special_tokens(trace, tokenizer)
    user = (
        f"{BEHAVIOR_PROMPTS[behavior]}\n\nReasoning text:\n<<<\n{trace}\n>>>\n\n"
        "How many distinct instances of this move does the text contain? "
        "End with the number between <count> and </count>."
    )
    return [{"role": "system", "content": _PROMPT_SYSTEM}, {"role": "user", "content": user}]


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
    """Counts behaviours by asking a language model, one prompt per behaviour (:data:`BEHAVIOR_PROMPTS`,
    after Gandhi et al.); an answer that :func:`parse_count` rejects gives ``None`` (never 0) and is
    recorded in :attr:`failures`.

    ``client``: a :class:`persrm_lib.models.client.ChatClient`, or any object with a
    ``complete(messages) -> str`` method (its ``complete_batch`` is used when present); traces longer
    than ``max_trace_chars`` are cut in the prompt.

    Raises:
        TypeError: ``client`` has no ``complete`` method.
        ValueError: an unknown behaviour.
    """

    client: ChatClient | Any
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
        if not callable(getattr(self.client, "complete", None)):
            raise TypeError(
                f"completer {type(self.client).__name__} has no complete(messages) method; "
                "pass a ChatClient (persrm_lib.models.client)"
            )
        _check_behaviors(self.behaviors)

    def count(self, trace_text: str) -> dict[str, int | None]:
        """The count of each behaviour in one trace; ``None`` where the answer did not parse."""
        return self.count_batch([trace_text])[0]

    def count_batch(self, traces: Sequence[str]) -> list[dict[str, int | None]]:
        """Counts of each trace, in order: one prompt per behaviour and trace, sent as one batch."""
        jobs = [(i, b) for i in range(len(traces)) for b in self.behaviors]
        conversations = [behavior_messages(b, traces[i], self.max_trace_chars) for i, b in jobs]
        batch = getattr(self.client, "complete_batch", None)
        answers = list(batch(conversations)) if callable(batch) else [self.client.complete(m) for m in conversations]
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
        n = self.n_traces
        failed = Counter(f.behavior for f in self.failures)
        return {
            b: {"queries": n, "failures": failed[b], "failure_rate": failed[b] / n if n else math.nan}
            for b in self.behaviors
        }


def make_classifier(
    kind: str,
    llm_model: str = "tiny-random",
    client: ChatClient | None = None,
    *,
    max_new_tokens: int = 24,
    batch_size: int = 8,
    answer_prefix: str = "",
) -> list[RuleBasedBehaviorClassifier | LLMBehaviorClassifier]:
    """The classifiers ``kind`` asks for (``"rule"``, ``"llm"`` or ``"both"``), rule-based first; the LLM
    one asks ``client``, else a :class:`persrm_lib.models.client.LocalChatClient` of ``llm_model`` with
    these settings, loaded here so that a bad name fails at once.

    Raises:
        ValueError: an unknown ``kind``, or local-model settings below 1.
    """
    if kind not in ("rule", "llm", "both"):
        raise ValueError(f"classifier must be 'rule', 'llm' or 'both', got {kind!r}")
    classifiers: list[RuleBasedBehaviorClassifier | LLMBehaviorClassifier] = []
    if kind != "llm":
        classifiers.append(RuleBasedBehaviorClassifier())
    if kind != "rule":
        if client is None:
            client = LocalChatClient(
                model_name=llm_model, max_new_tokens=max_new_tokens, batch_size=batch_size, answer_prefix=answer_prefix
            )
            client.loaded()
        classifiers.append(LLMBehaviorClassifier(client))
    return classifiers
