"""Teachers: judges that write a reasoning trace and scores for a pair, and the trace generator.

PersRM-R1 (arXiv 2508.14076, §3.2) has a large teacher LLM write a reasoning trace and scores
(r+, r-) for each contrastive pair; a faithfulness filter then drops traces whose scores
contradict the label. Every teacher here has the same interface (:class:`Teacher`: ``name``,
``judge(pair) -> completion``, ``judge_batch(pairs)``) and writes the output format of
:mod:`persrm_lib.core.output_format`:

- :class:`StylometricTeacher`: no LLM. It measures the exemplars and both responses
  (:mod:`persrm_lib.data.stylometry`), names the criteria that separate the responses most, cites
  the measurements and scores both responses by stylistic closeness to the exemplars. It never
  reads the label, so it is a genuine judge that can be wrong, and the filter has work to do.
- :class:`LocalTeacher`: any model of :func:`persrm_lib.models.registry.load_model`, greedy decoding.
- :class:`HTTPTeacher`: an OpenAI-compatible chat-completions endpoint (vLLM, or any API), with
  bounded concurrency, retries with exponential backoff, a timeout, and the API key read from an
  environment variable (never logged, never put in an error message).

:func:`generate_traces` writes the trace file and resumes after an interruption; see its
docstring for the file design (a ``.partial`` file while running, an atomic rename when done).

>>> pair = {"id": "p1", "query": "Write.", "exemplars": ["I came; I saw; I conquered."],
...         "response_a": "We came; we saw; we won.", "response_b": "Well, hello there, friend!",
...         "label": "a"}
>>> from persrm_lib.core.output_format import parse_output
>>> parse_output(StylometricTeacher().judge(pair)).preferred
'a'
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import TeacherSettings
from ..core.jsonl import JsonlAppender, read_jsonl, repair_torn_tail, write_jsonl_atomic
from ..core.output_format import render_output
from ..core.prompt import build_messages, build_prompt_text
from ..data import stylometry
from ..data.pairs import validate_pair
from .filtering import assess_completion

logger = logging.getLogger(__name__)

Pair = Mapping[str, Any]
TRACE_FIELDS = ("teacher", "completion", "scores", "faithful")
TEACHER_PAIR_FIELDS = ("id", "query", "exemplars", "response_a", "response_b", "label")  # what a trace needs


class TeacherError(RuntimeError):
    """A teacher cannot go on at all (endpoint down, refused credentials): generation stops."""


class TeacherResponseError(TeacherError):
    """One pair got no usable answer (invalid JSON, an unexpected body, a rejected request).

    Generation counts it under ``kind``, logs it, goes on with the other pairs, and leaves the
    trace file unfinished so that a rerun retries the pair.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def _exemplars(pair: Pair, n_exemplars: int | None) -> list[str]:
    exemplars = list(pair["exemplars"])
    n = n_exemplars if n_exemplars is not None else pair.get("n_exemplars")
    return exemplars[: int(n)] if n else exemplars


class Teacher(ABC):
    """A judge that writes a completion in the output format for a pair."""

    name: str

    @abstractmethod
    def judge(self, pair: Pair) -> str:
        """The completion (criteria, evaluation, scores) for one pair."""

    def prepare(self, pairs: Sequence[Pair]) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Called once by :func:`generate_traces` with ALL pairs of the set before judging."""

    def judge_each(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        """Yield ``(index, completion)`` as each pair is judged (not necessarily in order).

        A pair that got no usable answer yields its :class:`TeacherResponseError` instead of a
        completion; any other :class:`TeacherError` stops the iteration.
        """
        for i, pair in enumerate(pairs):
            try:
                yield i, self.judge(pair)
            except TeacherResponseError as exc:
                yield i, exc

    def judge_batch(self, pairs: Sequence[Pair]) -> list[str]:
        """Completions for ``pairs`` in input order; raises the first error met."""
        out: list[str | None] = [None] * len(pairs)
        for i, result in self.judge_each(pairs):
            if isinstance(result, TeacherResponseError):
                raise result
            out[i] = result
        return [text for text in out if text is not None]


# --------------------------------------------------------------------------------------------
# Stylometric teacher (CPU, no LLM)
# --------------------------------------------------------------------------------------------

ASPECTS: dict[str, str] = {
    "sentence_length_mean": "sentence rhythm",
    "sentence_length_std": "sentence rhythm",
    "word_length_mean": "vocabulary",
    "long_word_rate": "vocabulary",
    "type_token_ratio": "vocabulary",
    "mattr": "vocabulary",
    "yules_k": "vocabulary",
    "hapax_rate": "vocabulary",
    "capitalised_word_rate": "capitalisation",
    "uppercase_char_rate": "capitalisation",
    "digit_rate": "numbers",
    "function_word_rate": "function words",
}


def _aspect(name: str) -> str:
    if name in ASPECTS:
        return ASPECTS[name]
    return "function words" if name.startswith("fw_") else "punctuation"


@dataclass(frozen=True)
class Measurement:
    """One feature measured on the exemplars and both responses, with standardised distances."""

    feature: str
    exemplars: float
    value_a: float
    value_b: float
    distance_a: float
    distance_b: float

    @property
    def separation(self) -> float:
        return abs(self.distance_a - self.distance_b)

    @property
    def closer(self) -> str:
        if self.distance_a == self.distance_b:
            return "neither"
        return "A" if self.distance_a < self.distance_b else "B"


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


class StylometricTeacher(Teacher):
    """Scores both responses by measured stylistic closeness to the exemplars (no LLM, CPU).

    Each feature of :data:`persrm_lib.data.stylometry.FEATURE_NAMES` is standardised (a z-score): with
    the spread measured over a reference set of texts (:meth:`fit`; :func:`generate_traces`
    fits on all texts of the pair set), else over the pair's own texts. A response's style
    distance is Burrows' Delta, the mean absolute z-difference to the exemplars' mean. Its score
    in [0, 10] mixes the character 3-5-gram TF-IDF cosine to the exemplars and ``exp(-Delta)``.
    The criteria are the ``n_criteria`` named features (:data:`~persrm_lib.data.stylometry.SCALAR_FEATURES`)
    whose standardised distances to the exemplars differ most between A and B, then the
    function-word profile and the character n-gram profile, each cited with its measurements.

    Args:
        n_criteria: how many separating features to name.
        char_weight: the weight of the character n-gram similarity in the score (the rest goes
            to ``exp(-Delta)``). Measured on 240 sampler pairs (sotu train split, 120-word
            passages, one exemplar; agreement with the label): 0.5 gives 50% overall, 72% against
            random negatives, 53% same-era, 45% cross-author-retrieval and 30% against
            adversarial-retrieved negatives (chosen for their n-gram closeness to the exemplars,
            so an n-gram judge is fooled by construction); 0.8 gives 44% overall, 0.0 (Delta
            alone) 50%.
        n_exemplars: exemplars to read (default: the pair's ``n_exemplars``, else all).
        compact: write a short trace (one line of criteria, one terse line per criterion; about
            120 SmolLM2 tokens instead of about 430) that a small student can reproduce within a
            CPU-sized completion budget; the measurements and scores are the same.
    """

    name = "stylometric"

    def __init__(
        self, n_criteria: int = 3, char_weight: float = 0.5, n_exemplars: int | None = None, compact: bool = False
    ) -> None:
        if n_criteria < 1:
            raise ValueError(f"n_criteria must be at least 1, got {n_criteria}")
        if not 0.0 <= char_weight <= 1.0:
            raise ValueError(f"char_weight must be in [0, 1], got {char_weight}")
        self.n_criteria = n_criteria
        self.char_weight = char_weight
        self.n_exemplars = n_exemplars
        self.compact = compact
        self.scales: np.ndarray | None = None

    def fit(self, texts: Sequence[str]) -> StylometricTeacher:
        """Measure each feature's spread (standard deviation) over ``texts`` (deduplicated)."""
        unique = sorted({str(t) for t in texts if str(t).strip()})
        if len(unique) < 2:
            raise ValueError(f"StylometricTeacher.fit needs at least 2 distinct texts, got {len(unique)}")
        self.scales = _floor_scales(stylometry.feature_matrix(unique))
        return self

    def prepare(self, pairs: Sequence[Pair]) -> None:
        texts = [t for p in pairs for t in [*_exemplars(p, self.n_exemplars), p["response_a"], p["response_b"]]]
        if len({str(t) for t in texts}) >= 2:
            self.fit(texts)

    def measure(self, pair: Pair) -> tuple[list[Measurement], dict[str, float]]:
        """Measure a pair: per-feature measurements and the summary numbers behind the scores."""
        exemplars = _exemplars(pair, self.n_exemplars)
        texts = [*exemplars, str(pair["response_a"]), str(pair["response_b"])]
        matrix = stylometry.feature_matrix(texts)
        scales = self.scales if self.scales is not None else _floor_scales(matrix)
        exemplar_mean = matrix[: len(exemplars)].mean(axis=0)
        z_a = np.abs(matrix[-2] - exemplar_mean) / scales
        z_b = np.abs(matrix[-1] - exemplar_mean) / scales
        measurements = [
            Measurement(
                name, float(exemplar_mean[j]), float(matrix[-2, j]), float(matrix[-1, j]), float(z_a[j]), float(z_b[j])
            )
            for j, name in enumerate(stylometry.FEATURE_NAMES)
        ]
        char_a, char_b = stylometry.char_ngram_similarity(exemplars, texts[-2:])
        delta_a, delta_b = float(z_a.mean()), float(z_b.mean())
        w = self.char_weight
        summary = {
            "char_a": float(char_a),
            "char_b": float(char_b),
            "delta_a": delta_a,
            "delta_b": delta_b,
            "score_a": round(10.0 * (w * float(char_a) + (1 - w) * math.exp(-delta_a)), 1),
            "score_b": round(10.0 * (w * float(char_b) + (1 - w) * math.exp(-delta_b)), 1),
        }
        return measurements, summary

    def judge(self, pair: Pair) -> str:
        measurements, s = self.measure(pair)
        n_scalar = len(stylometry.SCALAR_FEATURES)
        # the most separating named features; ties broken by feature order (deterministic). The
        # 100 function words, each rare in a short passage, are judged together as one profile.
        ranked = sorted(enumerate(measurements[:n_scalar]), key=lambda im: (-im[1].separation, im[0]))
        top = [m for _, m in ranked[: self.n_criteria]]
        words = measurements[n_scalar:]
        fw_a, fw_b = float(np.mean([m.distance_a for m in words])), float(np.mean([m.distance_b for m in words]))
        telling = max(words, key=lambda m: m.separation)
        n_ex = len(_exemplars(pair, self.n_exemplars))
        if self.compact:
            return self._render_compact(top, fw_a, fw_b, s)
        criteria_lines = [f"{i}. {_aspect(m.feature)}: {stylometry.describe(m.feature)}" for i, m in enumerate(top, 1)]
        criteria_lines += [
            f"{len(top) + 1}. function words: the author's profile over {len(words)} common function words",
            f"{len(top) + 2}. character habits: the author's character 3-5-gram profile",
        ]
        eval_lines = [
            f"Measured on {n_ex} exemplar(s) and both responses; d is the distance to the exemplars in standard deviations."
        ]
        for m in top:
            eval_lines.append(
                f"- {stylometry.describe(m.feature)}: exemplars {_fmt(m.exemplars)}; A {_fmt(m.value_a)} (d={m.distance_a:.2f}); "
                f"B {_fmt(m.value_b)} (d={m.distance_b:.2f}); {m.closer} is closer."
            )
        eval_lines.append(
            f"- function-word profile: mean d A {fw_a:.2f}, B {fw_b:.2f}; the most telling word is "
            f"{telling.feature[3:]!r} (exemplars {_fmt(telling.exemplars)}, A {_fmt(telling.value_a)}, B {_fmt(telling.value_b)})."
        )
        eval_lines.append(f"- character 3-5-gram cosine to the exemplars: A {s['char_a']:.3f}, B {s['char_b']:.3f}.")
        eval_lines.append(
            f"- overall (Burrows' Delta, mean d over all {len(measurements)} features): A {s['delta_a']:.2f}, "
            f"B {s['delta_b']:.2f} (lower is closer)."
        )
        wins_a = sum(m.closer == "A" for m in top) + (fw_a < fw_b) + (s["char_a"] > s["char_b"])
        wins_b = sum(m.closer == "B" for m in top) + (fw_b < fw_a) + (s["char_b"] > s["char_a"])
        if s["score_a"] == s["score_b"]:
            verdict = "The two responses are equally close to the exemplars' style."
        else:
            better = "A" if s["score_a"] > s["score_b"] else "B"
            verdict = f"Response {better} is closer to the exemplars' style overall."
        eval_lines.append(f"A is closer on {wins_a} of {len(top) + 2} criteria, B on {wins_b}. {verdict}")
        return render_output("\n".join(criteria_lines), "\n".join(eval_lines), (s["score_a"], s["score_b"]))

    def _render_compact(self, top: list[Measurement], fw_a: float, fw_b: float, s: dict[str, float]) -> str:
        """The short trace: the same criteria and verdicts, fewer words."""
        names = [stylometry.describe(m.feature) for m in top] + ["function words", "character n-grams"]
        lines = [
            f"{stylometry.describe(m.feature).split(' per ')[0]}: author {_fmt(m.exemplars)}, A {_fmt(m.value_a)}, B {_fmt(m.value_b)}; {m.closer}."
            for m in top
        ]
        fw_closer = "A" if fw_a < fw_b else "B" if fw_b < fw_a else "neither"
        char_closer = "A" if s["char_a"] > s["char_b"] else "B" if s["char_b"] > s["char_a"] else "neither"
        lines.append(f"function words: A {fw_a:.1f}, B {fw_b:.1f}; {fw_closer}.")
        lines.append(f"character n-grams: A {s['char_a']:.2f}, B {s['char_b']:.2f}; {char_closer}.")
        if s["score_a"] == s["score_b"]:
            lines.append("Both are equally close to the author.")
        else:
            lines.append(f"{'A' if s['score_a'] > s['score_b'] else 'B'} is closer to the author.")
        return render_output("; ".join(names), "\n".join(lines), (s["score_a"], s["score_b"]))


def _floor_scales(matrix: np.ndarray) -> np.ndarray:
    """Per-feature standard deviations, floored so a constant feature does not divide by zero."""
    std = matrix.std(axis=0)
    floor = 0.05 * np.abs(matrix).mean(axis=0) + 1e-6
    return np.maximum(std, floor)


# --------------------------------------------------------------------------------------------
# Local model teacher
# --------------------------------------------------------------------------------------------


class LocalTeacher(Teacher):
    """A registry model (:func:`persrm_lib.models.registry.load_model`) judging with greedy decoding.

    The model is loaded on first use. Prompts come from :func:`persrm_lib.core.prompt.build_prompt_text`.

    Args:
        model_name: ``tiny-random``, ``smollm2-135m-instruct``, a local folder or a hub id.
        max_new_tokens: the completion length limit.
        batch_size: prompts per forward pass.
        n_exemplars: exemplars in the prompt (default: the pair's ``n_exemplars``, else all).
        device: where to run the model (default CPU).
    """

    def __init__(
        self,
        model_name: str,
        max_new_tokens: int = 512,
        batch_size: int = 4,
        n_exemplars: int | None = None,
        device: str | None = None,
    ) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_name = model_name
        self.name = f"local:{model_name}"
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.n_exemplars = n_exemplars
        self.device = device
        self._loaded: tuple[Any, Any] | None = None

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from ..models.registry import load_model

            self._loaded = load_model(self.model_name, device=self.device)
        return self._loaded

    def prompt(self, pair: Pair) -> str:
        """The chat-templated prompt for ``pair``."""
        _, tokenizer = self._model()
        n = self.n_exemplars if self.n_exemplars is not None else pair.get("n_exemplars")
        return build_prompt_text(tokenizer, pair, n)

    def judge(self, pair: Pair) -> str:
        return self.judge_batch([pair])[0]

    def complete(self, messages: list[dict[str, str]]) -> str:
        """Answer any chat ``messages`` greedily (e.g. a mimicry request, see :func:`make_mimic`)."""
        from ..models.generation import generate

        model, tokenizer = self._model()
        prompt = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return generate(model, tokenizer, [prompt], self.max_new_tokens, 1).texts[0].strip()

    def judge_each(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        from ..models.generation import generate

        model, tokenizer = self._model()
        for begin in range(0, len(pairs), self.batch_size):
            chunk = pairs[begin : begin + self.batch_size]
            result = generate(model, tokenizer, [self.prompt(p) for p in chunk], self.max_new_tokens, self.batch_size)
            for offset, text in enumerate(result.texts):
                yield begin + offset, text.strip()


# --------------------------------------------------------------------------------------------
# HTTP teacher (OpenAI-compatible chat completions)
# --------------------------------------------------------------------------------------------

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
PER_PAIR_STATUSES = frozenset({400, 413, 422})  # this request was refused (e.g. too long); others may pass


class HTTPTeacher(Teacher):
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint (vLLM, or any API).

    Requests run in a thread pool of ``max_concurrency`` workers over one ``httpx.Client``.
    Connection errors, timeouts and HTTP 408/425/429/5xx are retried up to ``max_retries`` times
    with exponential backoff (``backoff_s * 2**attempt``, capped at ``max_backoff_s``; a
    ``Retry-After`` header is honoured up to the cap); when the retries run out, a
    :class:`TeacherError` names the URL and stops generation. An answer that is not the expected
    JSON, or an HTTP 400/413/422, is a :class:`TeacherResponseError` for that pair only. Other
    HTTP errors (401, 403, 404 ...) stop generation at once.

    The key is read from the environment variable ``api_key_env`` when the teacher is made; with
    no key there, no ``Authorization`` header is sent (a local vLLM needs none). The key is never
    logged and never appears in an error message.

    Args:
        base_url: the API root, e.g. ``http://localhost:8000/v1``.
        model: the model id the server knows.
        api_key_env: the environment variable holding the key.
        max_concurrency: requests in flight at once.
        max_new_tokens: ``max_tokens`` of each request.
        seed: sent with each request (servers that support it sample reproducibly).
        temperature: 0 for greedy decoding.
        timeout_s: per-request timeout in seconds.
        max_retries: retries after the first attempt.
        backoff_s: the first backoff; it doubles each retry.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        max_new_tokens: int = 512,
        seed: int = 0,
        temperature: float = 0.0,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        n_exemplars: int | None = None,
    ) -> None:
        import httpx

        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {max_retries}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = f"http:{model}"
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.n_exemplars = n_exemplars
        key = os.environ.get(api_key_env) or None
        self._secret = key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if key is None:
            logger.info("no API key in $%s: sending requests without an Authorization header", api_key_env)
        self._client = httpx.Client(
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._lock = threading.Lock()
        self.stats: Counter[str] = Counter()

    def __repr__(self) -> str:  # never show the key
        return f"HTTPTeacher(url={self.url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def close(self) -> None:
        self._client.close()

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def payload(self, pair: Pair) -> dict[str, Any]:
        """The JSON body of the request for ``pair`` (the prompt of :func:`persrm_lib.core.prompt.build_messages`)."""
        n = self.n_exemplars if self.n_exemplars is not None else pair.get("n_exemplars")
        return self._body(build_messages(pair, n))

    def _body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
        }

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        if retry_after is not None:
            try:
                delay = min(self.max_backoff_s, max(delay, float(retry_after)))
            except ValueError:
                pass
        time.sleep(delay)

    def judge(self, pair: Pair) -> str:
        return self._request(self.payload(pair), f"pair {pair.get('id', '?')!r}")

    def complete(self, messages: list[dict[str, str]]) -> str:
        """Answer any chat ``messages`` with the same client, retries and limits (e.g. for the
        behaviour classifier of notebook 07)."""
        return self._request(self._body(list(messages)), "a chat request")

    def complete_batch(self, conversations: Sequence[list[dict[str, str]]]) -> list[str]:
        """:meth:`complete` for many conversations, ``max_concurrency`` at a time, in input order."""
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="teacher") as pool:
            return list(pool.map(self.complete, conversations))

    def _request(self, body: dict[str, Any], what: str) -> str:
        import httpx

        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}"
                logger.warning(
                    "%s: %s for %s (attempt %d of %d)", self.url, last, what, attempt + 1, self.max_retries + 1
                )
                if attempt < self.max_retries:
                    self._sleep(attempt, None)
                continue
            status = response.status_code
            if status in RETRY_STATUSES:
                last = f"HTTP {status}"
                logger.warning(
                    "%s: HTTP %d for %s (attempt %d of %d)", self.url, status, what, attempt + 1, self.max_retries + 1
                )
                if attempt < self.max_retries:
                    self._sleep(attempt, response.headers.get("retry-after"))
                continue
            snippet = self._redact(response.text[:200])
            if status in PER_PAIR_STATUSES:
                raise TeacherResponseError(
                    f"{self.url} refused {what}: HTTP {status}: {snippet}", kind=f"http_{status}"
                )
            if status >= 400:
                raise TeacherError(
                    f"{self.url} answered HTTP {status} (check base_url, model and ${self.api_key_env}): {snippet}"
                )
            return self._completion(response, what)
        raise TeacherError(
            f"{self.url} failed for {what} after {self.max_retries + 1} attempts (last: {last}); is the server up?"
        )

    def _completion(self, response: Any, what: str) -> str:
        try:
            data = response.json()
        except ValueError as exc:
            self._count("invalid_json")
            raise TeacherResponseError(
                f"{self.url} answered {what} with invalid JSON: {self._redact(response.text[:80])!r}",
                kind="invalid_json",
            ) from exc
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            self._count("unexpected_json")
            raise TeacherResponseError(
                f"{self.url} answered {what} without choices[0].message.content", kind="unexpected_json"
            ) from exc
        if not isinstance(content, str):
            self._count("unexpected_json")
            raise TeacherResponseError(
                f"{self.url} answered {what} with non-text content ({type(content).__name__})",
                kind="unexpected_json",
            )
        return content.strip()

    def judge_each(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        if not pairs:
            return
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="teacher") as pool:
            pending: dict[Future[str], int] = {}
            queue = iter(range(len(pairs)))
            # keep at most 2 * max_concurrency requests queued: memory stays flat for big sets
            for i in queue:
                pending[pool.submit(self.judge, pairs[i])] = i
                if len(pending) >= 2 * self.max_concurrency:
                    break
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in sorted(done, key=lambda f: pending[f]):
                        i = pending.pop(future)
                        try:
                            yield i, future.result()
                        except TeacherResponseError as exc:
                            yield i, exc
                        nxt = next(queue, None)
                        if nxt is not None:
                            pending[pool.submit(self.judge, pairs[nxt])] = nxt
            finally:
                for future in pending:
                    future.cancel()


# --------------------------------------------------------------------------------------------
# Factory and trace generation
# --------------------------------------------------------------------------------------------


MIMICRY_INSTRUCTION = (
    "You imitate writing styles. Read the author's exemplars, then write a new passage of about "
    "{n_words} words that answers the request in the author's style: the same sentence rhythm, "
    "vocabulary, punctuation and tone. Write only the passage."
)


def mimicry_messages(exemplars: Sequence[str], query: str, n_words: int) -> list[dict[str, str]]:
    """The chat request for a confounding adversarial negative (paper §3.1): a text made to
    mimic the author's style, written by the teacher LLM."""
    shown = "\n\n".join(f"Exemplar {i}:\n{text.strip()}" for i, text in enumerate(exemplars, start=1))
    return [
        {"role": "system", "content": MIMICRY_INSTRUCTION.format(n_words=n_words)},
        {"role": "user", "content": f"{shown}\n\nRequest:\n{query.strip()}"},
    ]


def make_mimic(teacher: Teacher) -> Callable[[Sequence[str], str, int], str] | None:
    """The sampler's ``mimic`` callable for an LLM teacher (one with ``complete(messages)``), or
    ``None`` for a teacher that cannot write text (the stylometric one), in which case the sampler
    falls back to retrieved adversaries, labelled ``adversarial-retrieved``.

    >>> make_mimic(StylometricTeacher()) is None
    True
    """
    complete = getattr(teacher, "complete", None)
    if complete is None:
        return None

    def mimic(exemplars: Sequence[str], query: str, n_words: int) -> str:
        return complete(mimicry_messages(exemplars, query, n_words))

    return mimic


def make_teacher(settings: TeacherSettings, seed: int = 0) -> Teacher:
    """Build the teacher that ``settings.kind`` names.

    Args:
        settings: the profile's teacher settings (``kind``: stylometric, local or http).
        seed: sent to HTTP servers; the other teachers are deterministic.

    Returns:
        A :class:`Teacher`.

    Raises:
        ValueError: an unknown kind, or a setting the kind needs that is missing.

    >>> from persrm_lib.core.config import TeacherSettings
    >>> make_teacher(TeacherSettings(kind="stylometric")).name
    'stylometric'
    """
    if settings.kind == "stylometric":
        return StylometricTeacher(n_criteria=settings.n_criteria, compact=settings.trace_style == "compact")
    if settings.kind == "local":
        if not settings.model:
            raise ValueError("teacher.kind='local' needs teacher.model (a registry name, folder or hub id)")
        return LocalTeacher(settings.model, max_new_tokens=settings.max_new_tokens)
    if settings.kind == "http":
        missing = [name for name in ("base_url", "model") if not getattr(settings, name)]
        if missing:
            raise ValueError(f"teacher.kind='http' needs teacher.{' and teacher.'.join(missing)}")
        return HTTPTeacher(
            settings.base_url,  # type: ignore[arg-type]
            settings.model,  # type: ignore[arg-type]
            api_key_env=settings.api_key_env,
            max_concurrency=settings.max_concurrency,
            max_new_tokens=settings.max_new_tokens,
            seed=seed,
        )
    raise ValueError(f"unknown teacher.kind {settings.kind!r}; choose stylometric, local or http")


class TraceGenerationError(RuntimeError):
    """Some pairs got no trace; the traces written so far are kept in the ``.partial`` file."""


@dataclass(frozen=True)
class GenerationReport:
    """What :func:`generate_traces` did."""

    path: Path
    n_pairs: int
    n_resumed: int  # traces found from an earlier, interrupted run
    n_new: int  # traces written by this call
    n_faithful: int
    failures: dict[str, int] = field(default_factory=dict)


def partial_path(out_path: str | Path) -> Path:
    """Where :func:`generate_traces` appends while it runs: ``<out_path>.partial``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".partial")


def make_trace(pair: Pair, teacher: str, completion: str) -> dict[str, Any]:
    """A trace record: the pair's fields, then ``teacher, completion, scores, faithful``."""
    scores, faithful, _ = assess_completion(completion, pair["label"])
    trace = {k: v for k, v in pair.items() if k not in TRACE_FIELDS}
    trace.update(teacher=teacher, completion=completion, scores=scores, faithful=faithful)
    return trace


def _load_done(path: Path, ids: set[Any], teacher: str) -> dict[Any, dict[str, Any]]:
    done: dict[Any, dict[str, Any]] = {}
    if not path.is_file():
        return done
    records = read_jsonl(path)
    strangers = [r.get("id") for r in records if r.get("id") not in ids]
    if strangers:
        raise ValueError(
            f"{path} holds traces of {len(strangers)} pair(s) not in the input (first: {strangers[0]!r}); "
            "it belongs to another pair set: delete it or write elsewhere"
        )
    others = sorted({str(r.get("teacher")) for r in records} - {teacher})
    if others:
        raise ValueError(f"{path} holds traces by teacher {others[0]!r}, not {teacher!r}: delete it or write elsewhere")
    for r in records:
        if r["id"] in done:
            logger.warning("%s: pair %r appears twice; keeping the first trace", path, r["id"])
            continue
        done[r["id"]] = r
    return done


def generate_traces(
    pairs: Sequence[Pair],
    teacher: Teacher,
    out_path: str | Path,
    progress: bool = False,
) -> GenerationReport:
    """Judge every pair with ``teacher`` and write the traces to ``out_path`` (JSONL), resumably.

    File design: while it runs, traces are appended to ``<out_path>.partial``, one flushed line
    each, in the order the teacher finishes them. When every pair has a trace, the records are
    rewritten in the order of ``pairs`` to a temporary file that is renamed to ``out_path``, and
    the ``.partial`` file is removed. So ``out_path`` exists only when it is complete, and its
    bytes depend only on the pairs and the teacher, whether or not the run was interrupted.

    On a rerun, pairs that already have a trace (in ``out_path`` or the ``.partial`` file) are
    skipped; a torn last line of the ``.partial`` file (a write cut short by a kill) is truncated
    away with a log line, and its pair is judged again. Pairs whose answer was unusable
    (:class:`TeacherResponseError`) are counted and logged; when any remain, the ``.partial``
    file is kept, no ``out_path`` is written, and :class:`TraceGenerationError` says how many.

    Args:
        pairs: pairs with unique ``id`` and a ``label`` (the teacher does not see the label; it
            only sets ``faithful``).
        teacher: any :class:`Teacher`.
        out_path: the final trace file (e.g. ``runfiles.traces_path(run)``).
        progress: show a tqdm progress bar.

    Returns:
        A :class:`GenerationReport`.

    Raises:
        ValueError: no pairs, repeated ids, an existing file written for other pairs or by
            another teacher, or (:class:`persrm_lib.data.pairs.PairFormatError`) a pair that lacks
            a field the teacher needs or breaks the pair contract.
        TraceGenerationError: some pairs got no trace.
        TeacherError: the teacher cannot go on (e.g. the endpoint is down).

    >>> import tempfile, pathlib
    >>> pair = {"id": "p1", "query": "Q", "exemplars": ["I came; I saw."], "response_a": "We came; we saw.",
    ...         "response_b": "Hello there, friend!", "label": "a"}
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "traces.jsonl"
    >>> report = generate_traces([pair], StylometricTeacher(), out)
    >>> report.n_new, report.n_faithful, out.exists(), partial_path(out).exists()
    (1, 1, True, False)
    """
    if not pairs:
        raise ValueError("generate_traces got no pairs")
    order: dict[Any, int] = {}
    for i, pair in enumerate(pairs):
        validate_pair(pair, f"pair {i}", required=TEACHER_PAIR_FIELDS)
        if pair["id"] in order:
            raise ValueError(f"pair id {pair['id']!r} is repeated (pairs {order[pair['id']]} and {i})")
        order[pair["id"]] = i
    out_path = Path(out_path)
    partial = partial_path(out_path)
    ids = set(order)

    done = _load_done(out_path, ids, teacher.name)
    if len(done) == len(pairs):
        if partial.exists():
            logger.warning("%s is complete; removing the stale %s", out_path, partial)
            partial.unlink()
        return GenerationReport(out_path, len(pairs), len(done), 0, sum(bool(r.get("faithful")) for r in done.values()))
    repair_torn_tail(partial)
    for key, record in _load_done(partial, ids, teacher.name).items():
        done.setdefault(key, record)
    n_resumed = len(done)
    if n_resumed:
        logger.info("resuming %s: %d of %d pairs already have a trace", out_path, n_resumed, len(pairs))
        if out_path.exists():
            # the final name must only ever hold a complete file: move its records to the partial one
            with JsonlAppender(partial) as out:
                held = {r["id"] for r in read_jsonl(partial)} if partial.exists() else set()
                for record in read_jsonl(out_path):
                    if record["id"] not in held:
                        out.write(record)
            out_path.unlink()

    remaining = [p for p in pairs if p["id"] not in done]
    teacher.prepare(pairs)
    failures: Counter[str] = Counter()
    n_new = 0
    results = teacher.judge_each(remaining)
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=len(remaining), desc=f"traces ({teacher.name})")
    with JsonlAppender(partial) as out:
        for i, result in results:
            pair = remaining[i]
            if isinstance(result, TeacherResponseError):
                failures[result.kind] += 1
                logger.warning("no trace for pair %r: %s", pair["id"], result)
                continue
            record = make_trace(pair, teacher.name, result)
            out.write(record)
            done[pair["id"]] = record
            n_new += 1
    if failures:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(failures.items()))
        raise TraceGenerationError(
            f"{sum(failures.values())} of {len(pairs)} pairs got no trace ({kinds}); the {len(done)} traces written "
            f"are kept in {partial}; run again to retry the rest. {out_path} was not written."
        )
    write_jsonl_atomic([done[p["id"]] for p in pairs], out_path)
    partial.unlink(missing_ok=True)
    n_faithful = sum(bool(r.get("faithful")) for r in done.values())
    logger.info("wrote %d traces to %s (%d new, %d faithful)", len(pairs), out_path, n_new, n_faithful)
    return GenerationReport(out_path, len(pairs), n_resumed, n_new, n_faithful, {})
