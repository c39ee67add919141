"""Evaluation (PersRM-R1 §4), by job:

- :mod:`.judges`: every judge and :func:`.judges.make_judge`, the one factory (base types in
  :mod:`.judge_base`, the language-model judges in :mod:`.lm_judges`);
- :mod:`.cli`: ``python -m persrm_lib.evaluate`` on any pair file, and ``evaluate_pairs``;
- :mod:`.suite`: notebook 05's suite over a run folder and its headline metrics;
- :mod:`.metrics`: accuracy, intervals, consistency, paired comparisons;
- :mod:`.tables`: tables (CSV, markdown) and plots;
- :mod:`.records`: the per-pair rows and the completions per stage, one writer and one reader each.
"""
