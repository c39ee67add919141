"""Behaviour analysis of reward-model traces (PersRM-R1 §5.2–5.3), by job:

- :mod:`.classifiers`: counting cognitive behaviours in one trace (rule-based and LLM classifiers);
- :mod:`.criteria`: the stylistic criteria a trace names, against the SFT traces;
- :mod:`.tallies`: counts over many traces, classifier agreement, notebook 07's headline metrics;
- :mod:`.plots`: notebook 07's figures.

The run files are read by their stage owners' readers, not here.
"""
