"""persrm: the thin library behind the PersRM-R1 companion notebooks (arXiv 2508.14076).

Importing it is cheap and never imports Unsloth; heavy libraries (torch, transformers, TRL) load
inside the functions that need them. One subpackage per pipeline stage (docs/design.md, "Pipeline");
each module's docstring says what it holds::

    core/       every stage: output_format (THE parser), verdict (THE verdict rule), reward, pointwise,
                prompt (THE prompt builder), config, setting_ranges, runfiles, jsonl, paths, text, cli, runlock
    data/       01: corpora, folders, documents, benchmarks; pool, sampler (THE sampler); pairs (THE pair
                files); personas; leaks, synthesis, evidence; stylometry, embeddings, synonyms
    models/     registry, backend (Unsloth or transformers+PEFT), generation, client (THE LLM client), context
    teachers/   01-02: base, stylometric, llm, mimic, persona, hinted; traces (THE trace files); filtering, swap
    train/      03-04: sft, grpo, order_robust, common, data, validation, adapters, scalar_rm, logs, figures, cli
    evaluate/   05: judges (THE factory make_judge), judge_base, lm_judges, authorship; judging (THE judging
                loop); metrics, persona_reasoning, suite, tables, records, cli, compare
    analysis/   07: classifiers, tallies, criteria, plots
    run/        runner (python -m persrm_lib.run), settings, notebook, regression, publish
"""

__version__ = "0.1.0"

# Registers the evidence table with the prompt builder (core.prompt.register_pair_block): the package
# is imported before any of its modules, so every prompt built anywhere shows a pair's evidence.
from .data import evidence as _evidence  # noqa: E402, F401
