"""The ONE LLM client: chat messages in, text out, from a local model or an OpenAI-compatible server.

Teachers, the mimicry writer, the behaviour classifier, the generative judge and GRPO validation
all hold a client (composition) instead of loading a model and chatting on their own:

- :class:`LocalChatClient`: a transformers causal LM (optionally PEFT-wrapped) and its tokenizer;
  the chat template, batched greedy generation (:func:`persrm_lib.models.generation.generate`).
- ``HTTPChatClient`` (same module): an OpenAI-compatible ``/chat/completions`` endpoint (vLLM).

Both satisfy :class:`ChatClient`: ``complete(messages) -> str`` and
``complete_batch(conversations) -> list[str]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from .generation import GenerationResult, generate

Messages = list[dict[str, str]]


@runtime_checkable
class ChatClient(Protocol):
    """Anything that answers chat messages with text."""

    def complete(self, messages: Messages) -> str: ...

    def complete_batch(self, conversations: Sequence[Messages]) -> list[str]: ...


class LocalChatClient:
    """Greedy chat completion with a local causal LM.

    Args:
        model: a transformers causal LM (or a PEFT model), or None to load ``model_name`` lazily.
        tokenizer: its tokenizer, with a chat template (None with ``model``=None).
        model_name: a registry name (``tiny-random``, ``smollm2-135m-instruct``), a folder or a hub
            id, loaded on first use by :func:`persrm_lib.models.registry.load_model`.
        max_new_tokens: the answer's length limit, in tokens.
        batch_size: prompts per forward pass (1: one at a time).
        answer_prefix: text the assistant turn is made to start with (e.g. ``"<count>"`` for a small
            model that never writes the tag on its own); it is put back in front of each answer.
        device: where a lazily loaded model runs (default: the registry's choice).

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
        self.last_result: GenerationResult | None = None

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
        """The chat-templated prompt text of ``messages``, ending with the assistant turn's opening."""
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def generate_prompts(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> GenerationResult:
        """Greedy completions of already templated prompts (kept in :attr:`last_result`)."""
        model, tokenizer = self.loaded()
        result = generate(model, tokenizer, list(prompts), max_new_tokens or self.max_new_tokens, self.batch_size)
        self.last_result = result
        return result

    def complete(self, messages: Messages) -> str:
        return self.complete_batch([messages])[0]

    def complete_batch(self, conversations: Sequence[Messages]) -> list[str]:
        """One greedy answer per conversation, in order, with :attr:`answer_prefix` in front."""
        prompts = [self.render(m) + self.answer_prefix for m in conversations]
        return [self.answer_prefix + text for text in self.generate_prompts(prompts).texts]
