"""The ONE LLM client: chat messages in, text out, from a local model (:class:`LocalChatClient`) or
an OpenAI-compatible server (:class:`HTTPChatClient`). Both have ``complete_each``, which yields
``(index, answer)`` and an unusable answer as a :class:`ChatResponseError` instead of stopping.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, NoReturn, Protocol, runtime_checkable

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ..core.jsonl import loads_json
from .generation import SCORES_STOP, GenerationResult, generate

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]


class ChatClientError(RuntimeError):
    """A client cannot go on at all (endpoint down, refused credentials): the caller stops."""


class ChatResponseError(ChatClientError):
    """One conversation got no usable answer; ``kind`` names why (``invalid_json``,
    ``unexpected_json``, ``empty_reply``, ``cut_off``, ``http_400`` ...)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@runtime_checkable
class ChatClient(Protocol):
    """Anything that answers chat messages with text."""

    def complete(self, messages: Messages) -> str: ...

    def complete_batch(self, conversations: Sequence[Messages]) -> list[str]: ...


class LocalChatClient:
    """Greedy chat completion (:func:`persrm_lib.models.generation.generate`) with a local causal LM
    (PEFT or not) and its tokenizer, or, without them, ``model_name`` (registry name, folder or hub id)
    loaded on first use, on ``device``; ``max_new_tokens`` tokens per answer, ``batch_size`` prompts per
    forward pass.

    Args:
        answer_prefix: text the assistant turn is made to start with (e.g. ``"<count>"`` for a small
            model that never writes the tag on its own); it is put back in front of each answer.
        stop_strings: an answer ends, and is cut, right after one of them (default: at
            ``</scores>``; ``()``: only at the end-of-turn token or ``max_new_tokens``).
        stop_when: an answer also ends right after the token that makes ``stop_when(answer_prefix +
            answer so far)`` true (:func:`persrm_lib.models.generation.generate`).

    Raises:
        ValueError: ``max_new_tokens`` or ``batch_size`` below 1, or neither a model nor a name.
    """

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        *,
        model_name: str | None = None,
        max_new_tokens: int = 256,
        batch_size: int = 8,
        answer_prefix: str = "",
        device: str | None = None,
        stop_strings: Sequence[str] = SCORES_STOP,
        stop_when: Callable[[str], bool] | None = None,
    ) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if model is None and model_name is None:
            raise ValueError("LocalChatClient needs a model and tokenizer, or a model_name to load")
        if (model is None) != (tokenizer is None):
            raise ValueError("give both model and tokenizer, or neither (with model_name)")
        self._model, self._tokenizer = model, tokenizer
        self.model_name = model_name
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.answer_prefix = answer_prefix
        self.device = device
        self.stop_strings = tuple(stop_strings)
        self.stop_when = stop_when
        self.last_result: GenerationResult | None = None
        self.stats: Counter[str] = Counter()

    def loaded(self) -> tuple[Any, Any]:
        """The model and tokenizer, loading them on first use."""
        if self._model is None:
            from .registry import load_model

            self._model, self._tokenizer = load_model(self.model_name, device=self.device)
        return self._model, self._tokenizer

    @property
    def tokenizer(self) -> Any:
        return self.loaded()[1]

    @property
    def model(self) -> Any:
        return self.loaded()[0]

    def render(self, messages: Messages) -> str:
        """The chat-templated prompt text of ``messages``, ending with the assistant turn's opening
        (``ChatTemplateError`` naming the model when its tokenizer has no chat template)."""
        from ..core.prompt import require_chat_template

        require_chat_template(self.tokenizer, self.model_name)
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def generate_prompts(self, prompts: Sequence[str]) -> GenerationResult:
        """Greedy completions of already templated prompts (kept in :attr:`last_result`)."""
        model, tokenizer = self.loaded()
        when = self.stop_when
        self.last_result = generate(
            model,
            tokenizer,
            list(prompts),
            self.max_new_tokens,
            self.batch_size,
            stop_strings=self.stop_strings,
            stop_when=None if when is None else (lambda text: when(self.answer_prefix + text)),
        )
        return self.last_result

    def complete(self, messages: Messages) -> str:
        """One greedy answer to ``messages`` (see :meth:`complete_batch`)."""
        return self.complete_batch([messages])[0]

    def complete_batch(self, conversations: Sequence[Messages]) -> list[str]:
        """One greedy answer per conversation, in order, with :attr:`answer_prefix` in front (an
        answer cut off by ``max_new_tokens`` included)."""
        return [self.answer_prefix + text for text in self._generate(conversations).texts]

    def _generate(self, conversations: Sequence[Messages]) -> GenerationResult:
        return self.generate_prompts([self.render(m) + self.answer_prefix for m in conversations])

    def complete_each(
        self, conversations: Sequence[Messages], labels: Sequence[str] | None = None
    ) -> Iterator[tuple[int, str | ChatResponseError]]:
        """Yield ``(index, answer)`` in input order, one generation call per batch of ``batch_size``;
        an answer that ran to ``max_new_tokens`` without an end-of-turn token or a stop string
        yields a :class:`ChatResponseError` of kind ``cut_off`` instead (counted in :attr:`stats`).
        ``labels`` name each request in errors."""
        names = _names(labels, len(conversations))
        for begin in range(0, len(conversations), self.batch_size):
            result = self._generate(conversations[begin : begin + self.batch_size])
            cut_off = result.cut_off or [False] * len(result.texts)
            for i, (text, cut) in enumerate(zip(result.texts, cut_off, strict=True), start=begin):
                if not cut:
                    yield i, self.answer_prefix + text
                    continue
                self.stats["cut_off"] += 1
                name = self.model_name or getattr(self._model, "name_or_path", None) or type(self._model).__name__
                message = (
                    f"local model {name} answered {names[i]} cut off at max_new_tokens={self.max_new_tokens} "
                    "(no end-of-turn token or stop string): raise the token budget (teacher.max_new_tokens)"
                )
                yield i, ChatResponseError(message, kind="cut_off")


def _names(labels: Sequence[str] | None, n: int) -> list[str]:
    return list(labels) if labels is not None else ["a chat request"] * n


RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
PER_ITEM_STATUSES = frozenset({400, 413, 422})  # this request was refused (e.g. too long); others may pass


def _failure(exc: BaseException) -> str:
    """How log lines and the final error name a failed attempt (``ConnectError``, ``HTTP 503``)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


class HTTPChatClient:
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint (``base_url`` e.g.
    ``http://localhost:8000/v1``; vLLM, or any API), ``max_concurrency`` requests at a time over one
    ``httpx.Client`` (``timeout_s`` seconds per request).

    ``tenacity`` retries connection errors, timeouts and HTTP 408/425/429/5xx ``max_retries`` times
    after the first attempt, waiting ``backoff_s * 2**retry`` seconds or the ``Retry-After`` header,
    at most ``max_backoff_s``; then a :class:`ChatClientError` names the URL. Invalid or unexpected
    JSON, an empty body, ``finish_reason: "length"`` (kind ``cut_off``) or HTTP 400/413/422 is a
    :class:`ChatResponseError` for that request only; a redirect (not followed: a redirected POST
    becomes a GET), a ``204`` and the other HTTP errors are a :class:`ChatClientError`.
    :attr:`stats` counts ``retries`` and bad answers by kind. The key, read from ``$api_key_env``
    (none: no ``Authorization`` header), is never logged, in an error message or in :func:`repr`.
    ``ValueError``: a ``base_url`` that is not http(s), ``max_concurrency`` below 1 or ``max_retries``
    below 0.
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
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {max_retries}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.temperature = temperature
        self.max_retries = max_retries
        self.max_backoff_s = max_backoff_s
        self._secret = os.environ.get(api_key_env) or None
        if self._secret is None:
            logger.info("no API key in $%s: sending requests without an Authorization header", api_key_env)
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {self._secret}"} if self._secret else {},
            timeout=timeout_s,
            follow_redirects=False,  # a redirect is an endpoint error (see _answer)
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._backoff = wait_exponential(multiplier=backoff_s, max=max_backoff_s)
        # one policy for every thread: tenacity keeps each call's state thread-local
        self._retrying = Retrying(
            stop=stop_after_attempt(max_retries + 1),
            wait=self._wait,
            # a connection error, a timeout, or (raised by _attempt) an HTTP status in RETRY_STATUSES
            retry=retry_if_exception_type((httpx.TransportError, httpx.HTTPStatusError)),
            after=self._log_failure,
            before_sleep=lambda _: self._count("retries"),
            retry_error_callback=self._give_up,
        )
        self._lock = threading.Lock()
        self.stats: Counter[str] = Counter()

    def __repr__(self) -> str:  # never show the key
        return f"HTTPChatClient(url={self.url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def _bad_answer(self, kind: str, what: str, how: str) -> ChatResponseError:
        """``<url> answered <what> <how>``, of ``kind``, counted in :attr:`stats`."""
        self._count(kind)
        return ChatResponseError(f"{self.url} answered {what} {how}", kind=kind)

    def complete(self, messages: Messages, label: str = "a chat request") -> str:
        """The answer to ``messages`` (stripped), with retries; ``label`` names the request in errors
        and log lines (e.g. ``"pair 'p1'"``). Raises :class:`ChatResponseError` (no usable answer to
        this request) or :class:`ChatClientError` (the endpoint down after the retries, or refusing)."""
        body = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
        }
        return self._retrying(self._attempt, body, what=label)

    def complete_batch(self, conversations: Sequence[Messages]) -> list[str]:
        """:meth:`complete` for many conversations, ``max_concurrency`` at a time, in input order;
        the first error is raised."""
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="chat") as pool:
            return list(pool.map(self.complete, conversations))

    def complete_each(
        self, conversations: Sequence[Messages], labels: Sequence[str] | None = None
    ) -> Iterator[tuple[int, str | ChatResponseError]]:
        """Yield ``(index, answer)`` as each answer arrives, at most ``2 * max_concurrency`` requests
        queued at a time. A conversation without a usable answer yields its
        :class:`ChatResponseError`; any other :class:`ChatClientError` stops the iteration (queued
        requests are cancelled). ``labels`` name each request in errors."""
        names = _names(labels, len(conversations))
        queue = iter(range(len(conversations)))
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="chat") as pool:
            pending: dict[Future[str], int] = {}

            def submit(count: int) -> None:
                for i in itertools.islice(queue, count):
                    pending[pool.submit(self.complete, conversations[i], names[i])] = i

            submit(2 * self.max_concurrency)
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in sorted(done, key=pending.__getitem__):
                        i = pending.pop(future)
                        try:
                            yield i, future.result()
                        except ChatResponseError as exc:
                            yield i, exc
                        submit(1)
            finally:
                for future in pending:
                    future.cancel()

    def _attempt(self, body: dict[str, Any], what: str) -> str:
        """One POST: the answer, an ``httpx`` error to retry, or a ChatClientError."""
        response = self._client.post(self.url, json=body)
        if response.status_code in RETRY_STATUSES:
            response.raise_for_status()
        return self._answer(response, what)

    def _wait(self, retry_state: RetryCallState) -> float:
        """tenacity's wait: the backoff, or ``Retry-After`` when longer, never above ``max_backoff_s``."""
        delay = self._backoff(retry_state)
        exc = retry_state.outcome.exception()
        retry_after = exc.response.headers.get("retry-after") if isinstance(exc, httpx.HTTPStatusError) else None
        try:
            return min(self.max_backoff_s, max(delay, float(retry_after)))
        except (TypeError, ValueError):  # no header, or an HTTP-date
            return delay

    def _log_failure(self, retry_state: RetryCallState) -> None:
        logger.warning(
            "%s: %s for %s (attempt %d of %d)",
            self.url,
            _failure(retry_state.outcome.exception()),
            retry_state.kwargs["what"],
            retry_state.attempt_number,
            self.max_retries + 1,
        )

    def _give_up(self, retry_state: RetryCallState) -> NoReturn:
        exc = retry_state.outcome.exception()
        raise ChatClientError(
            f"{self.url} failed for {retry_state.kwargs['what']} after {retry_state.attempt_number} attempts "
            f"(last: {_failure(exc)}); is the server up?"
        ) from exc

    def _answer(self, response: httpx.Response, what: str) -> str:
        status = response.status_code
        snippet = self._redact(response.text[:200])
        if 300 <= status < 400:
            location = self._redact(response.headers.get("location") or "no Location header")
            raise ChatClientError(
                f"{self.url} answered HTTP {status}, a redirect to {location}: set base_url to the address it "
                "names (redirects are not followed: a redirected POST would arrive as a GET)"
            )
        if status == 204:
            raise ChatClientError(
                f"{self.url} answered HTTP 204 No Content, an empty reply to {what}: is base_url an "
                "OpenAI-compatible /v1 root?"
            )
        if status in PER_ITEM_STATUSES:
            raise ChatResponseError(f"{self.url} refused {what}: HTTP {status}: {snippet}", kind=f"http_{status}")
        if status >= 400:
            raise ChatClientError(
                f"{self.url} answered HTTP {status} (check base_url, model and ${self.api_key_env}): {snippet}"
            )
        if not response.content.strip():
            raise self._bad_answer("empty_reply", what, f"with an empty reply (HTTP {status}, no body)")
        try:
            data = loads_json(response.text, self.url)
        except ValueError as exc:
            text = self._redact(response.text[:80])
            raise self._bad_answer("invalid_json", what, f"with invalid JSON: {text!r}") from exc
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise self._bad_answer("unexpected_json", what, "without choices[0].message.content") from exc
        if not isinstance(content, str):
            raise self._bad_answer("unexpected_json", what, f"with non-text content ({type(content).__name__})")
        if data["choices"][0].get("finish_reason") == "length":
            raise self._bad_answer(
                "cut_off",
                what,
                f"cut off at max_tokens={self.max_new_tokens} (finish_reason 'length'): raise the token budget "
                "(teacher.max_new_tokens)",
            )
        return content.strip()
