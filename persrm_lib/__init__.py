"""persrm: the thin library behind the PersRM-R1 companion notebooks (arXiv 2508.14076).

Importing it is cheap and never imports Unsloth; heavy libraries (torch, transformers, TRL) load
inside the functions that need them.

Where things live, by pipeline stage::

    core/       the contracts every stage shares
      output_format   THE parser of <criteria>/<eval>/<scores> (parse_output, render_output, strip_think)
      verdict         THE verdict type Verdict (reward, filter, judges, metrics) and its rule: preferred side,
                      outcome -1/0/+1 against a label (read_verdict reads a completion); exemplars a pair is read with
      reward          the GRPO reward persrm_reward (paper §3.3: -1 format, 0 wrong, +1 correct)
      pointwise       the pointwise formulation (prompt.mode): one response per prompt, <score>, the
                      midpoint reward pointwise_reward, side_rows, join/split of a pair's completions
      prompt          THE prompt builder (build_messages, build_pointwise_messages, build_prompt_text;
                      control tokens neutralised)
      config          the typed profiles tiny, smoke, cpu, device, gpu, paper (get_profile)
      runfiles        the run-folder layout: which file each notebook writes
      jsonl, paths    strict JSON/JSONL reading (UTF-8, ids, duplicated keys) and atomic writing; repository paths
      text            emptiness and identity after Unicode normalisation (is_blank)
      setting_ranges  the range of every numeric profile setting, checked by Profile.validate
      cli, runlock    the command lines' one-line refusals (exit 2); one writer per run folder
    data/       01_synthesize
      corpora, folders, documents, benchmarks   offline corpora and CCAT50/CMCC folders -> Document table, splits
      pool, sampler   THE sampler: contrastive pairs, one function per positive/negative strategy (§3.1)
      pairs           THE reader and writer of pair files (read_pairs, write_pairs, validate_pair)
      personas        the persona benchmark: style operators and detectors, persona splits, persona pairs
      leaks, synthesis, evidence   leak checks, pair tables, measured evidence for the prompt
      stylometry, embeddings, synonyms   features, MiniLM vectors, WordNet synonyms
    models/     registry (offline models, cache), backend (Unsloth or transformers+PEFT),
                generation (batched greedy), client (THE LLM client: local or OpenAI-compatible HTTP),
                context (prompt length against the model's context)
    teachers/   01_synthesize and 02_filter_audit
      stylometric, llm, mimic   the teachers (CPU stylometry; any LLM through a client); adversarial mimicry
      persona         the exact persona teacher (pairwise and pointwise traces; PersonaRouter for mixed runs)
      traces          THE reader and writer of trace files; generate_traces with resume
      filtering       the faithfulness filter and the audit of 02
      swap            a trace rewritten for the swapped order (both orders in SFT)
    train/      03_sft and 04_rft_grpo
      sft, grpo       train_sft, train_grpo through TRL; order_robust: the GRPO subclass (joint-order
                      advantages, stop at </scores>); data: checks and datasets; validation: greedy
                      validation during GRPO; adapters: saving, checking, loading; scalar_rm: the
                      Bradley-Terry baseline; logs: THE writer and reader of log.csv and GRPO completions;
                      figures: THE drawings of the training logs (03, 04, 06); cli: python -m persrm_lib.train
    evaluate/   05_evaluate
      judges, judge_base, lm_judges   the judges and THE factory make_judge (baselines, loglik, scalar RM,
                      the generative reward model)
      metrics         accuracy, order-consistent accuracy, A-preference, bootstrap intervals, paired
                      comparisons (accuracy or order-consistent), the reference run's targets
      judging         THE judging loop evaluate_pairs: every pair in both orders, averaged, one row each
      suite, tables, records   the notebook's suite, its tables and figures, the per-pair and completion files
      persona_reasoning  reasoning scored against ground truth on persona pairs (criteria, checks)
      cli             python -m persrm_lib.evaluate on any pair file (the judging loop behind a command line)
      compare         python -m persrm_lib.evaluate.compare: runs side by side, pair for pair (ablations)
    analysis/   07_behavior_analysis: classifiers (rule-based, LLM), tallies, criteria, plots
    run/        runner (python -m persrm_lib.run: typed notebook parameters, papermill; --set: run-wide
                profile overrides), settings (the overrides stored in the run folder), notebook
                (start, save_fig, write_metrics), regression (compare headline metrics), publish

Figures: every notebook saves through ``run.notebook.save_fig`` into ``<run>/figures/``, named after
the notebook (``02_kept_fraction``, ``05_rm_vs_baselines``, ...); the reference profile's copies are
``figures/``. Each notebook's last cell writes its headline metrics to ``<run>/metrics/<notebook>.json``.
"""

__version__ = "0.1.0"

# Registers the evidence table with the prompt builder (core.prompt.register_pair_block): the package
# is imported before any of its modules, so every prompt built anywhere shows a pair's evidence.
from .data import evidence as _evidence  # noqa: E402, F401
