"""The LLM teacher (PersRM-R1, arXiv 2508.14076, §3.2: Qwen2.5-72B-Instruct there): the shared
prompt (:func:`persrm_lib.core.prompt.build_messages`) sent to a chat client, local
(:class:`LocalTeacher`) or OpenAI-compatible (:class:`HTTPTeacher`); :func:`make_teacher` builds
the teacher a profile names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..core.config import TeacherSettings
from ..core.prompt import build_messages
from ..core.verdict import exemplar_count
from ..models.client import ChatClient, HTTPChatClient, LocalChatClient, Messages
from ..models.context import PromptTooLongError, TooLong, find_too_long, known_budget
from .base import Pair, Teacher, TeacherResponseError, each_result
from .stylometric import StylometricTeacher

# RM-R1 (arXiv 2505.02387) gives its oracle the correct answer only for the pairs it judged wrong;
# the hint asks for the analysis that finds the evidence, not for an appeal to the hint.
HINT = (
    "Hint for this pair: the author of the exemplars wrote Response {side}. Write the analysis that finds the "
    "evidence for it in the texts, without mentioning this hint, and score Response {side} higher."
)


class LLMTeacher(Teacher):
    """A teacher that asks a chat model (any :class:`~persrm_lib.models.client.ChatClient`) to judge
    each pair; ``name`` is written into each trace (e.g. ``local:<model>``, ``http:<model>``) and
    ``n_exemplars`` defaults to :func:`persrm_lib.core.verdict.exemplar_count`.

    Completions are stripped. With a client's ``complete_each`` (both library clients) a pair
    without a usable answer (e.g. kind ``cut_off``: the token budget cut it) is reported as a
    :class:`TeacherResponseError`, not fatal.
    """

    def __init__(self, client: ChatClient, name: str, n_exemplars: int | None = None) -> None:
        self.client = client
        self.name = name
        self.n_exemplars = n_exemplars

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, client={self.client!r})"

    def messages(self, pair: Pair, hinted: bool = False) -> Messages:
        """The chat request for ``pair`` (system and user messages); ``hinted`` appends :data:`HINT`
        with the labelled response to the user message (RM-R1's hinted rewrite; KeyError without ``label``)."""
        messages = build_messages(pair, exemplar_count(pair, self.n_exemplars))
        if not hinted:
            return messages
        last = dict(messages[-1])
        last["content"] = f"{last['content']}\n\n{HINT.format(side=str(pair['label']).upper())}"
        return [*messages[:-1], last]

    def judge(self, pair: Pair) -> str:
        return self._one(self.judge_each([pair]))

    def judge_hinted(self, pair: Pair) -> str:
        """The hinted rewrite: the same request with :data:`HINT` naming the labelled response."""
        return self._one(self.judge_each_hinted([pair]))

    @staticmethod
    def _one(results: Iterator[tuple[int, str | TeacherResponseError]]) -> str:
        [(_, result)] = results  # one pair, one result
        if isinstance(result, TeacherResponseError):
            raise result
        return result

    def too_long(self, pairs: Sequence[Pair], conversations: Sequence[Messages]) -> dict[int, TeacherResponseError]:
        """The pairs whose prompt does not fit a local model's context minus ``max_new_tokens``
        (:mod:`persrm_lib.models.context`), as per-pair errors of kind ``too_long`` (an HTTP server
        checks its own context)."""
        if not isinstance(self.client, LocalChatClient) or not pairs:
            return {}
        model, tokenizer = self.client.loaded()
        budget = known_budget(model, tokenizer, reserved=self.client.max_new_tokens)
        if budget is None:
            return {}
        prompts = [self.client.render(m) + self.client.answer_prefix for m in conversations]
        found = find_too_long(tokenizer, prompts, list(range(len(prompts))), budget)
        return {
            t.id: TeacherResponseError(
                str(PromptTooLongError([TooLong(pairs[t.id].get("id", "?"), t.tokens)], budget)), "too_long"
            )
            for t in found
        }

    def judge_each(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        yield from self._judge_conversations(pairs, [self.messages(p) for p in pairs])

    def judge_each_hinted(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        yield from self._judge_conversations(pairs, [self.messages(p, hinted=True) for p in pairs])

    def _judge_conversations(
        self, pairs: Sequence[Pair], conversations: list[Messages]
    ) -> Iterator[tuple[int, str | TeacherResponseError]]:
        refused = self.too_long(pairs, conversations)
        yield from refused.items()
        index = [i for i in range(len(pairs)) if i not in refused]  # position in the request -> pair
        conversations = [conversations[i] for i in index]
        complete_each = getattr(self.client, "complete_each", None)
        if complete_each is None:  # a plain ChatClient: one request at a time
            results = each_result(conversations, self.client.complete)
        else:
            results = complete_each(conversations, [f"pair {pairs[i].get('id', '?')!r}" for i in index])
        for k, result in results:
            yield index[k], result if isinstance(result, TeacherResponseError) else result.strip()

    def complete(self, messages: Messages) -> str:
        """Answer any chat ``messages`` with the teacher's client, stripped (e.g. a mimicry request)."""
        return self.client.complete(list(messages)).strip()

    def close(self) -> None:
        """Close the client's connections, when it has any."""
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


class LocalTeacher(LLMTeacher):
    """An :class:`LLMTeacher` over a registry model (``tiny-random``, ``smollm2-135m-instruct``, a
    local folder or a hub id), greedy decoding, loaded on first use: ``max_new_tokens`` limits the
    completion (tokens), ``batch_size`` is prompts per forward pass (ValueError below 1 for either),
    ``device`` defaults to the registry's choice.
    """

    def __init__(
        self,
        model_name: str,
        max_new_tokens: int = 512,
        batch_size: int = 4,
        n_exemplars: int | None = None,
        device: str | None = None,
    ) -> None:
        client = LocalChatClient(
            model_name=model_name, max_new_tokens=max_new_tokens, batch_size=batch_size, device=device
        )
        super().__init__(client, f"local:{model_name}", n_exemplars)


class HTTPTeacher(LLMTeacher):
    """An :class:`LLMTeacher` over an OpenAI-compatible ``/chat/completions`` endpoint: ``base_url``
    is the API root (e.g. ``http://localhost:8000/v1``), ``model`` the id the server knows, the rest
    :class:`~persrm_lib.models.client.HTTPChatClient`'s settings (ValueError for one it refuses).
    """

    def __init__(self, base_url: str, model: str, n_exemplars: int | None = None, **client_settings: Any) -> None:
        super().__init__(HTTPChatClient(base_url, model, **client_settings), f"http:{model}", n_exemplars)


def make_teacher(settings: TeacherSettings, seed: int = 0) -> Teacher:
    """Build the teacher that ``settings.kind`` (stylometric, local or http) names; ``seed`` goes to
    HTTP servers (the other teachers are deterministic). ValueError for an unknown kind, or a
    setting the kind needs that is missing.
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
