"""Validation accuracy during GRPO (PersRM-R1 §5.1: accuracy over training)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core import verdict
from ..core.config import Profile
from ..core.pointwise import pair_verdict, pointwise_prompt_texts
from ..core.prompt import build_prompt_text
from ..models.client import LocalChatClient
from ..models.generation import SCORE_STOP, SCORES_STOP
from .logs import TrainingLog


class ValidationEval:
    """Greedy judgements of the validation pairs every ``every`` GRPO steps (no random numbers drawn,
    dropout off: the training run is unchanged), adding ``validation_accuracy`` (share with outcome
    +1) and ``validation_format`` (share that parses) to the :class:`TrainingLog` row of that step.
    The profile gives ``grpo.max_completion_length`` (tokens per judgement), ``grpo.batch_size``
    (prompts per forward pass) and ``prompt.mode``.
    """

    def __init__(
        self, profile: Profile, pairs: Sequence[Mapping[str, Any]], tokenizer: Any, log: TrainingLog, every: int
    ) -> None:
        self.pairs = list(pairs)
        self.mode = profile.prompt.mode
        if self.mode == "pointwise":  # both responses of each pair, scored alone (core.pointwise)
            self.prompts = [
                q for p in self.pairs for q in pointwise_prompt_texts(tokenizer, p, verdict.exemplar_count(p))
            ]
        else:
            self.prompts = [build_prompt_text(tokenizer, p, verdict.exemplar_count(p)) for p in self.pairs]
        self.tokenizer = tokenizer
        self.log = log
        self.every = every
        self.max_new_tokens = profile.grpo.max_completion_length
        self.batch_size = profile.grpo.batch_size

    def due(self, step: int, max_steps: int) -> bool:
        """Evaluate at every ``every``-th step (never at step 0)."""
        return step > 0 and step % self.every == 0 and (max_steps <= 0 or step <= max_steps)

    def evaluate(self, model: Any) -> dict[str, float]:
        """Accuracy and format share of greedy judgements of the validation pairs by ``model``."""
        client = LocalChatClient(
            model,
            self.tokenizer,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            stop_strings=SCORE_STOP if self.mode == "pointwise" else SCORES_STOP,
        )
        was_training = model.training
        model.eval()
        try:
            texts = client.generate_prompts(self.prompts).texts  # under torch.inference_mode
        finally:
            model.train(was_training)
        n = len(self.pairs)
        if self.mode == "pointwise":  # the two responses of pair k are prompts 2k and 2k + 1
            judged = [pair_verdict(a, b) for a, b in zip(texts[::2], texts[1::2], strict=True)]
        else:
            judged = [verdict.read_verdict(t) for t in texts]
        outcomes = [j.outcome(p["label"]) for j, p in zip(judged, self.pairs, strict=True)]
        return {
            "validation_accuracy": outcomes.count(verdict.CORRECT) / n,
            "validation_format": sum(j.format_ok for j in judged) / n,
        }

    def callback(self) -> Any:
        """A ``transformers.TrainerCallback`` that evaluates at the end of a due step and makes the
        trainer log it; added after the :class:`TrainingLog`'s, so ``seconds_per_step`` excludes it."""
        from transformers import TrainerCallback

        evaluator = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
                step = int(state.global_step)
                if model is not None and evaluator.due(step, int(state.max_steps or 0)):
                    values = evaluator.evaluate(model)
                    evaluator.log.add(step, values)
                    control.should_log = True

        return _Callback()
