"""Evaluation (PersRM-R1 §4), by job:

- :mod:`.judges`: every judge and :func:`.judges.make_judge`, the one factory (base types in
  :mod:`.judge_base`; language-model judges in :mod:`.lm_judges`, authorship ones in :mod:`.authorship`);
- :mod:`.judging`: the judging loop, ``evaluate_pairs``, shared by :mod:`.cli` (``python -m
  persrm_lib.evaluate`` on any pair file) and :mod:`.suite` (notebook 05 over a run folder);
- :mod:`.metrics`: accuracy, intervals, consistency, paired comparisons, goals;
- :mod:`.tables`: tables (CSV, markdown) and plots; :mod:`.compare`: runs side by side;
- :mod:`.records`: the per-pair rows and the completions per stage, one writer and one reader each;
- :mod:`.persona_reasoning`: the reasoning scored against the persona benchmark's ground truth.
"""
