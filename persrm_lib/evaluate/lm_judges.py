"""The judges that run a language model (PersRM-R1 §4): the generative reward model, the
log-likelihood (PMI) baseline and the Bradley-Terry scalar reward model; built by
:func:`persrm_lib.evaluate.judges.make_judge`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from ..core.output_format import can_still_parse, strip_think
from ..core.pointwise import join_completions, pair_verdict, pointwise_prompt_texts
from ..core.prompt import build_prompt_text, require_chat_template
from ..core.verdict import exemplar_count, exemplars_of, read_verdict
from ..models.client import LocalChatClient
from ..models.context import PromptTooLongError, count_tokens, find_too_long, known_budget
from ..models.generation import SCORE_STOP, SCORES_STOP
from ..models.registry import load_model, load_tokenizer
from ..train.adapters import adapter_mode, check_evidence_matches, load_adapter
from ..train.scalar_rm import scalar_rm_tokens, train_scalar_rm
from .judge_base import BaseJudge, Loaded, NotFittedError, Pair, Verdict


def _resolve(loaded: Loaded | None) -> tuple[Any, Any] | None:
    """A shared model and tokenizer, or what their loader returns."""
    return loaded() if callable(loaded) else loaded


def _cannot_parse(text: str) -> bool:
    return not can_still_parse(text)


class GenerativeJudge(BaseJudge):
    """The reward model: prompt (:func:`persrm_lib.core.prompt.build_prompt_text`) -> batched greedy
    completion (:class:`persrm_lib.models.client.LocalChatClient`) -> ``read_verdict``. Base
    zero-shot, SFT-only and SFT+RFT are this judge with no adapter, the SFT and the RFT adapter.

    ``loaded`` (a model and tokenizer, or a function returning them) is used as it is, adapter or
    not; otherwise ``model`` is loaded on first use and ``adapter`` applied and merged
    (:func:`persrm_lib.train.adapters.load_adapter`). ``mode`` (default: the adapter's own, else
    ``pairwise``): ``pointwise`` scores each response alone (:mod:`persrm_lib.core.pointwise`).
    ``count_too_long``: a prompt that does not fit the context (minus ``max_new_tokens``) is
    returned as ``too_long`` instead of refused. ``strip_think``: ONE leading ``<think>`` block is
    stripped before parsing (a reasoning model), counted in ``n_stripped``. ``stop_unparsable``: a
    completion ends at the first token after which it can no longer parse
    (:func:`persrm_lib.core.output_format.can_still_parse`), counted in ``n_stopped_unparsable``: the
    same scores and format verdicts in fewer tokens for a model that does not write the format (a
    base model); the kept completion, and the parser's ``reason``, are then those of that beginning
    (not with ``strip_think``, whose think block comes first).

    Raises ValueError: a mode other than pairwise or pointwise; ``stop_unparsable`` with ``strip_think``.
    """

    def __init__(
        self,
        model: str = "tiny-random",
        adapter: str | Path | None = None,
        max_new_tokens: int = 256,
        batch_size: int = 8,
        max_prompt_tokens: int | None = None,
        name: str | None = None,
        loaded: Loaded | None = None,
        strip_think: bool = False,
        count_too_long: bool = False,
        stop_strings: Sequence[str] | None = None,
        mode: str | None = None,
        stop_unparsable: bool = False,
    ) -> None:
        self.model_name = model
        self.adapter = str(adapter) if adapter else None
        self.mode = mode or (adapter_mode(self.adapter) if self.adapter else "pairwise")
        if self.mode not in ("pairwise", "pointwise"):
            raise ValueError(f"generative judge: mode must be pairwise or pointwise, got {self.mode!r}")
        self.position_invariant = self.mode == "pointwise"
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.max_prompt_tokens = max_prompt_tokens
        self.name = name or ("generative" if adapter is None else f"generative+{Path(adapter).parent.name}")
        self._loaded = loaded
        self._client: LocalChatClient | None = None
        self.strip_think = strip_think
        self.n_stripped = 0
        self.count_too_long = count_too_long
        self.n_too_long = 0  # prompts returned as too_long (count_too_long=True)
        # by default generation stops at the scores: anything after them is a violation anyway
        default_stop = SCORE_STOP if self.position_invariant else SCORES_STOP
        self.stop_strings = tuple(default_stop if stop_strings is None else stop_strings)
        if stop_unparsable and strip_think:
            raise ValueError(
                "generative judge: stop_unparsable and strip_think exclude each other (a leading <think> block "
                "would end the completion before its answer)"
            )
        self.stop_unparsable = stop_unparsable
        self.n_stopped_unparsable = 0

    @property
    def client(self) -> LocalChatClient:
        """The chat client, loading the model (and applying the adapter) on first use."""
        if self._client is None:
            loaded = _resolve(self._loaded)
            if loaded is None:
                model, tokenizer = load_model(self.model_name)
                if self.adapter is not None:
                    model = load_adapter(model, self.adapter, self.model_name)
                    model.eval()
                loaded = (model, tokenizer)
            self._client = LocalChatClient(
                *loaded,
                model_name=self.model_name,
                max_new_tokens=self.max_new_tokens,
                batch_size=self.batch_size,
                stop_strings=self.stop_strings,
                stop_when=_cannot_parse if self.stop_unparsable else None,
            )
        return self._client

    @property
    def last_generation(self) -> Any:
        """The last :class:`persrm_lib.models.generation.GenerationResult` (None before scoring)."""
        return None if self._client is None else self._client.last_result

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        """Greedy completions of the pairs' prompts, in order, read by the one parser.

        Raises, before anything is generated: ValueError for a prompt longer than ``max_prompt_tokens``
        (naming the pair); PromptTooLongError for one longer than the context minus ``max_new_tokens``
        (not with ``count_too_long``); AdapterEvidenceError for pairs whose evidence tables disagree
        with the adapter's training (:func:`persrm_lib.train.adapters.check_evidence_matches`).
        """
        prompts, fits = self._prompts(pairs, n_exemplars)
        per_pair = 2 if self.mode == "pointwise" else 1  # pointwise: A and B scored alone, one prompt each
        pair_fits = [all(fits[k * per_pair : (k + 1) * per_pair]) for k in range(len(pairs))]
        self.n_too_long += pair_fits.count(False)
        wanted = [q for k, ok in enumerate(pair_fits) if ok for q in prompts[k * per_pair : (k + 1) * per_pair]]
        generated = self.client.generate_prompts(wanted)
        self.n_stopped_unparsable += generated.extra.get("stopped_when", 0)
        texts = iter(generated.texts)
        verdicts = []
        for ok in pair_fits:
            if not ok:
                verdicts.append(Verdict(None, None, too_long=True))
            elif per_pair == 1:
                text = next(texts)
                verdicts.append(replace(read_verdict(self._answer(text)), completion=text))
            else:  # the pair's verdict compares the two scores (core.pointwise.pair_verdict)
                text_a, text_b = next(texts), next(texts)
                verdict = pair_verdict(self._answer(text_a), self._answer(text_b))
                verdicts.append(replace(verdict, completion=join_completions(text_a, text_b)))
        return verdicts

    def check_inputs(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> None:
        """Raise what :meth:`score_batch` would for any of ``pairs``, before anything is generated;
        also ChatTemplateError for a model without a chat template (from its tokenizer alone)."""
        if self.adapter is not None:  # before any model file is read
            check_evidence_matches(self.adapter, pairs)
        if self._client is None and self._loaded is None:  # the tokenizer alone: before the weights load
            require_chat_template(load_tokenizer(self.model_name), self.model_name)
        self._prompts(pairs, n_exemplars)

    def _prompts(self, pairs: Sequence[Pair], n_exemplars: int | None) -> tuple[list[str], list[bool]]:
        """The pairs' prompts (pointwise: two per pair, A then B) and whether each fits the context."""
        if self.adapter is not None:
            check_evidence_matches(self.adapter, pairs)
        client = self.client
        tokenizer = client.tokenizer
        require_chat_template(tokenizer, self.model_name)
        if self.mode == "pointwise":
            prompts = [q for p in pairs for q in pointwise_prompt_texts(tokenizer, p, exemplar_count(p, n_exemplars))]
            ids = [p.get("id", "?") for p in pairs for _ in (0, 1)]
        else:
            prompts = [build_prompt_text(tokenizer, p, exemplar_count(p, n_exemplars)) for p in pairs]
            ids = [p.get("id", "?") for p in pairs]
        tokens = count_tokens(tokenizer, prompts)
        for pid, n_tokens in zip(ids, tokens, strict=True):
            if self.max_prompt_tokens is not None and n_tokens > self.max_prompt_tokens:
                raise ValueError(
                    f"pair {pid!r}: prompt has {n_tokens} tokens, more than max_prompt_tokens={self.max_prompt_tokens}"
                )
        budget = known_budget(client.model, tokenizer, reserved=self.max_new_tokens)
        too_long = [] if budget is None else find_too_long(tokenizer, prompts, ids, budget, tokens)
        if too_long and budget is not None and not self.count_too_long:
            once: dict[str, Any] = {}  # a swapped pair (or a pointwise pair) repeats its id: name each pair once
            for item in too_long:
                once.setdefault(repr(item.id), item)
            raise PromptTooLongError(list(once.values()), budget)
        return prompts, [budget is None or n <= budget.limit for n in tokens]

    def _answer(self, text: str) -> str:
        """The text to parse: with ``strip_think``, one leading think block removed (and counted)."""
        if not self.strip_think:
            return text
        answer, stripped = strip_think(text)
        self.n_stripped += stripped
        return answer  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        return {
            "judge": self.name,
            "mode": self.mode,
            "model": self.model_name,
            "adapter": self.adapter,
            "max_new_tokens": self.max_new_tokens,
            "batch_size": self.batch_size,
            "stop_strings": list(self.stop_strings),
            **({"strip_think": True, "n_stripped": self.n_stripped} if self.strip_think else {}),
            **({"count_too_long": True, "n_too_long": self.n_too_long} if self.count_too_long else {}),
            **(
                {"stop_unparsable": True, "n_stopped_unparsable": self.n_stopped_unparsable}
                if self.stop_unparsable
                else {}
            ),
        }


def _padded_batches(model: Any, sequences: Sequence[Sequence[int]], batch_size: int, pad_id: int) -> Any:
    """Yield ``(indices, logits)`` per batch of ``sequences``, longest first, right-padded (call in inference mode)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    order = sorted(range(len(sequences)), key=lambda i: (-len(sequences[i]), i))
    device = next(model.parameters()).device
    for begin in range(0, len(order), batch_size):
        index = order[begin : begin + batch_size]
        rows = [torch.tensor(sequences[i], dtype=torch.long) for i in index]
        ids = pad_sequence(rows, batch_first=True, padding_value=pad_id)
        mask = pad_sequence([torch.ones_like(r) for r in rows], batch_first=True)
        yield index, model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits


def _sequence_logprobs(
    model: Any, sequences: Sequence[tuple[list[int], int]], batch_size: int, pad_id: int
) -> list[float]:
    """Mean log-probability of the last ``n`` tokens of each ``(ids, n)``, batched, right-padded."""
    import torch

    out = [0.0] * len(sequences)
    with torch.inference_mode():
        for index, logits in _padded_batches(model, [ids for ids, _ in sequences], batch_size, pad_id):
            for row, i in enumerate(index):
                seq, n = sequences[i]
                # the logits at positions len-1-n .. len-2 predict the last n tokens
                window = torch.log_softmax(logits[row, len(seq) - 1 - n : len(seq) - 1].float(), dim=-1)
                targets = torch.tensor(seq[len(seq) - n :], device=logits.device)
                out[i] = float(window.gather(-1, targets.unsqueeze(-1)).mean())
    return out


class LoglikJudge(BaseJudge):
    """Pointwise mutual information of each response with the exemplars under a causal LM.

    ``mode="pmi"`` (default): mean token log-likelihood after the exemplars minus the same without
    them. ``mode="conditional"``: the first term alone (at chance: docs/design.md, "Log-likelihood judge").
    ``loaded``: a model and tokenizer, or a function returning them; otherwise ``model`` is loaded on first use.
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
        loaded: Loaded | None = None,
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
        self._loaded = _resolve(self._loaded) or load_model(self.model_name)
        return self._loaded

    def _ids(self, tokenizer: Any, text: str) -> list[int]:
        # user text is plain text: a special-token string inside it never becomes a special token
        return tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

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
    """A Bradley-Terry scalar reward model (the paper's ScalarRM contrast), trained by :meth:`fit`
    (:func:`persrm_lib.train.scalar_rm.train_scalar_rm`: TRL's ``RewardTrainer``); each response is
    scored alone, through :func:`persrm_lib.train.scalar_rm.scalar_rm_tokens`."""

    name = "scalar-rm"
    learns_from = "labels"

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

    def fit(self, train_pairs: Sequence[Pair]) -> ScalarRMJudge:
        training = ("max_steps", "learning_rate", "batch_size", "max_length", "max_response_tokens", "lora_r", "seed")
        settings = {k: getattr(self, k) for k in (*training, "output_dir")}
        trained = train_scalar_rm(self.model_name, train_pairs, **settings)
        self.model, self.tokenizer, self.log_history = trained.model, trained.tokenizer, trained.log_history
        return self

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        import torch

        if self.model is None:
            raise NotFittedError("judge 'scalar-rm' must be fitted on training pairs first: call fit(train_pairs)")
        limits = (self.max_length, self.max_response_tokens)
        sequences = [
            scalar_rm_tokens(self.tokenizer, exemplars_of(pair, n_exemplars), pair["query"], pair[k], *limits)
            for pair in pairs
            for k in ("response_a", "response_b")
        ]
        rewards = [0.0] * len(sequences)
        with torch.inference_mode():
            for index, logits in _padded_batches(self.model, sequences, self.batch_size, self.tokenizer.pad_token_id):
                for row, i in enumerate(index):
                    rewards[i] = float(logits[row].float().squeeze(-1))
        return [Verdict(rewards[2 * k], rewards[2 * k + 1]) for k in range(len(pairs))]

    def describe(self) -> dict[str, Any]:
        recorded = ("max_steps", "learning_rate", "lora_r", "seed")
        return {"judge": self.name, "model": self.model_name, **{k: getattr(self, k) for k in recorded}}
