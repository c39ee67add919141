"""Leak checks of the persona benchmark: does anything but the style operators give the label away?

Prints, for persona pairs built as notebook 01 builds them (:func:`persrm_lib.data.personas.build_persona_pairs`,
the neutral query), the label predictors of :func:`persrm_lib.data.leaks.label_shortcut_report`
(position, length, strategy, query overlap) and a **query-only judge**: the response with the higher
mean token log-likelihood under the base model given the query alone, no exemplars. Each should sit
near 0.5. A query-only judge far from 0.5 would mean the text's naturalness (an operator makes text
less likely) tells the label without the exemplars.

Usage (one thread is enough; about a minute)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/persona_leaks.py --pairs 300
"""

from __future__ import annotations

import json
import sys

from persrm_lib.core.cli import Parser, seed_number, whole_number


def parse_args(argv: list[str] | None):
    parser = Parser(prog="benchmarks/persona_leaks.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=whole_number(1, 5000), default=300, help="pairs per split (train, test)")
    parser.add_argument("--words", type=whole_number(5, 400), default=20, help="base passage length in words")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the query-only judge's model")
    parser.add_argument("--seed", type=seed_number, default=0)
    return parser.parse_args(argv)


def query_only_right(pairs: list[dict], model_name: str) -> list[float]:
    """Per pair: 1 when the chosen response has the higher mean log-likelihood given the query
    alone, 0 when the rejected one has, 0.5 for a tie."""
    from persrm_lib.evaluate.lm_judges import _sequence_logprobs
    from persrm_lib.models.registry import load_model

    model, tokenizer = load_model(model_name)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sequences = []
    for pair in pairs:
        context = tokenizer(pair["query"].strip() + "\n\n", add_special_tokens=False)["input_ids"]
        for side in "ab":
            response = tokenizer(pair[f"response_{side}"].strip(), add_special_tokens=False)["input_ids"]
            sequences.append((context + response, len(response)))
    scores = _sequence_logprobs(model, sequences, batch_size=8, pad_id=int(pad))
    right = []
    for k, pair in enumerate(pairs):
        s_a, s_b = scores[2 * k], scores[2 * k + 1]
        right.append(0.5 if s_a == s_b else float(("a" if s_a > s_b else "b") == pair["label"]))
    return right


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from persrm_lib.data.leaks import label_shortcut_report
    from persrm_lib.data.personas import build_persona_pairs, persona_base_passages, persona_splits
    from persrm_lib.data.pool import NEUTRAL_QUERY
    from persrm_lib.data.synonyms import WordNetSynonyms

    docs = persona_base_passages(args.words, 1000, args.seed)
    splits = persona_splits("ellipsis", 2, 0.3, args.seed)
    synonyms = WordNetSynonyms()
    for split in ("train", "test"):
        pairs = build_persona_pairs(
            docs[docs["split"] == split],
            splits[split],
            args.pairs,
            1,
            args.seed,
            query=NEUTRAL_QUERY,
            synonyms=synonyms,
        )
        report = {k: round(v, 3) for k, v in label_shortcut_report(pairs).items()}
        right = query_only_right(pairs, args.model)
        report["query_only_loglik"] = round(sum(right) / len(right), 3)
        for key in ("positive_kind", "negative_kind"):  # where the naturalness cue sits
            for kind in sorted({p[key] for p in pairs}):
                values = [r for r, p in zip(right, pairs, strict=True) if p[key] == kind]
                report[f"query_only_loglik/{kind}"] = round(sum(values) / len(values), 3)
        print(split, json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
